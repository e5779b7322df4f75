package testredis

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testcert"
	"github.com/gomodule/redigo/redis"
)

// TLSServer is a private redis-server that speaks TLS only (its plain port
// is off), with a CA and certificates generated for it.
type TLSServer struct {
	// Addr is the server's host:port (TLS).
	Addr string
	// CAFile is the PEM certificate of the CA that signed the server's
	// certificate and the client one; CertFile and KeyFile are that client
	// certificate and its key.
	CAFile, CertFile, KeyFile string
	// OtherCAFile is a CA that signed nothing here: trusting it alone
	// must fail the handshake.
	OtherCAFile string

	t     testing.TB
	local *process
	admin []redis.DialOption
}

// StartTLS starts a TLS-only redis-server (Redis 6+ built with TLS, as
// Debian's is) on a free port. With clientCerts, it asks clients for a
// certificate signed by CAFile (tls-auth-clients yes). It skips, or fails
// with SESSION_AUTH_REQUIRE_REDIS=1, when redis-server is not installed.
func StartTLS(t testing.TB, clientCerts bool) *TLSServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("testredis: %s=1 but there is no redis-server on PATH (Debian package redis-server)", EnvRequire)
		}
		t.Skip("SKIPPING: no redis-server on PATH: the TLS tests need a private one (set " + EnvRequire + "=1 to make this a failure)")
	}
	dir := t.TempDir()
	s := &TLSServer{t: t}
	ca := testcert.NewCA(t, "session-auth test CA")
	other := testcert.NewCA(t, "some other CA")
	s.CAFile = testcert.WritePEM(t, dir, "ca.crt", "CERTIFICATE", ca.DER)
	s.OtherCAFile = testcert.WritePEM(t, dir, "other-ca.crt", "CERTIFICATE", other.DER)
	serverCert, serverKey := ca.Issue(t, "127.0.0.1", false)
	serverCertFile := testcert.WritePEM(t, dir, "server.crt", "CERTIFICATE", serverCert)
	serverKeyFile := testcert.WritePEM(t, dir, "server.key", "PRIVATE KEY", serverKey)
	clientCert, clientKey := ca.Issue(t, "session-auth client", true)
	s.CertFile = testcert.WritePEM(t, dir, "client.crt", "CERTIFICATE", clientCert)
	s.KeyFile = testcert.WritePEM(t, dir, "client.key", "PRIVATE KEY", clientKey)

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	pair, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	s.admin = []redis.DialOption{
		redis.DialUseTLS(true),
		redis.DialTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}),
		redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(2 * time.Second), redis.DialWriteTimeout(2 * time.Second),
	}
	authClients := "no"
	if clientCerts {
		authClients = "yes"
	}
	p := &process{bin: bin, dir: dir}
	p.cmdline = func(host, port string) []string {
		return []string{"--port", "0", "--tls-port", port, "--bind", host,
			"--tls-cert-file", serverCertFile, "--tls-key-file", serverKeyFile,
			"--tls-ca-cert-file", s.CAFile, "--tls-auth-clients", authClients,
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--logfile", ""}
	}
	p.ready = func(addr string) error {
		c, err := redis.Dial("tcp", addr, s.admin...)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Do("PING")
		return err
	}
	s.local = startCustom(t, p)
	s.Addr = s.local.addr
	t.Cleanup(s.local.stop)
	return s
}

// URL returns rediss://[userinfo@]addr/0.
func (s *TLSServer) URL(userinfo string) string {
	if userinfo != "" {
		userinfo += "@"
	}
	return "rediss://" + userinfo + s.Addr + "/0"
}

// Do runs a command as the default (administrator) user.
func (s *TLSServer) Do(cmd string, args ...any) (any, error) {
	c, err := redis.Dial("tcp", s.Addr, s.admin...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(cmd, args...)
}

// AddUser creates a Redis 6 ACL user with password and the given ACL
// rules (e.g. "~session_auth:*", "+@all"), failing the test if Redis
// refuses.
func (s *TLSServer) AddUser(name, password string, rules ...string) {
	s.t.Helper()
	args := []any{name, "reset", "on", ">" + password}
	for _, r := range rules {
		args = append(args, r)
	}
	if _, err := s.Do("ACL", append([]any{"SETUSER"}, args...)...); err != nil {
		s.t.Fatalf("testredis: ACL SETUSER %s: %v", name, err)
	}
}
