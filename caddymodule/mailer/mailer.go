package mailer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// DefaultTimeout bounds one mail's delivery (connect, TLS, every SMTP
// command) when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// DefaultQueue is how many mails may wait for the sender.
const DefaultQueue = 256

// ErrQueueFull is returned by Enqueue when the queue is full: the mail is
// dropped.
var ErrQueueFull = errors.New("mailer: the outgoing queue is full")

// ErrClosed is returned by Enqueue after Close.
var ErrClosed = errors.New("mailer: closed")

// Config says where and as whom mail is sent.
type Config struct {
	// URL is the SMTP server: smtp:// or smtps://, see the package doc.
	URL string
	// From is the sender, an RFC 5322 address ("Name <addr>" or addr).
	From string
	// CAFile is a PEM file of CA certificates that sign the server's
	// certificate; empty uses the system roots.
	CAFile string
	// Timeout bounds one delivery. Default: DefaultTimeout.
	Timeout time.Duration
	// Queue is the number of mails that may wait. Default: DefaultQueue.
	Queue int
}

// Server is a parsed SMTP URL, without its password in String.
type Server struct {
	Host     string
	Port     int
	Implicit bool // smtps://
	User     string
	Password string
}

// ParseURL parses an smtp:// or smtps:// URL.
func ParseURL(raw string) (Server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Server{}, errors.New("smtp: not a URL (want smtp://[user:pass@]host:port or smtps://...)")
	}
	var s Server
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		s.Port = 25
	case "smtps":
		s.Port, s.Implicit = 465, true
	default:
		return Server{}, fmt.Errorf("smtp: scheme %q: want smtp:// or smtps://", u.Scheme)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Server{}, errors.New("smtp: want smtp://[user:pass@]host:port with no path or query")
	}
	s.Host = u.Hostname()
	if s.Host == "" {
		return Server{}, errors.New("smtp: the URL names no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Server{}, fmt.Errorf("smtp: invalid port %q", p)
		}
		s.Port = n
	}
	if u.User != nil {
		s.User = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	return s, nil
}

// String is the URL with the password redacted.
func (s Server) String() string {
	scheme := "smtp"
	if s.Implicit {
		scheme = "smtps"
	}
	user := ""
	if s.User != "" {
		user = url.User(s.User).String()
		if s.Password != "" {
			user += ":xxxxx"
		}
		user += "@"
	}
	return scheme + "://" + user + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// ParseFrom checks a sender address and returns it parsed.
func ParseFrom(from string) (*mail.Address, error) {
	a, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("email_from %q: %v (want \"Name <addr@example.com>\" or addr@example.com)", from, err)
	}
	return a, nil
}

// LoadCA reads a PEM file of CA certificates.
func LoadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("smtp_tls_ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("smtp_tls_ca %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// Message is one plain-text mail.
type Message struct {
	To      string
	Subject string
	Body    string
	// Kind names the mail for logs and metrics (e.g. "password_reset").
	Kind string
}

// Mailer sends Messages, one at a time, from a queue.
type Mailer struct {
	server  Server
	from    *mail.Address
	tls     *tls.Config
	timeout time.Duration
	logger  *slog.Logger
	// Sent is called after each delivery attempt (err nil: delivered).
	sent func(m *Message, err error)

	mu     sync.Mutex
	closed bool
	queue  chan job
	done   chan struct{}
	stop   context.CancelFunc
	ctx    context.Context
}

type job struct {
	prepare func(ctx context.Context) *Message // nil result: nothing to send
}

// New checks cfg and starts the sender. sent, if not nil, is told the
// outcome of every delivery attempt. Close stops it.
func New(cfg Config, logger *slog.Logger, sent func(m *Message, err error)) (*Mailer, error) {
	srv, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	from, err := ParseFrom(cfg.From)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{ServerName: srv.Host, MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		if tc.RootCAs, err = LoadCA(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	m := &Mailer{server: srv, from: from, tls: tc, timeout: cfg.Timeout, logger: logger, sent: sent,
		queue: make(chan job, cfg.Queue), done: make(chan struct{}), ctx: ctx, stop: stop}
	go m.run()
	return m, nil
}

// Server is the server mail goes to.
func (m *Mailer) Server() Server { return m.server }

// Enqueue queues a mail to be made by prepare (run by the sender, with a
// context bounded by the timeout, so that what it looks up takes the same
// time for the caller whatever it finds) and sent. It never blocks: a full
// queue drops the mail with ErrQueueFull.
func (m *Mailer) Enqueue(prepare func(ctx context.Context) *Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	select {
	case m.queue <- job{prepare: prepare}:
		return nil
	default:
		return ErrQueueFull
	}
}

// Close stops taking mail, lets the sender finish what is queued for at
// most wait, and then abandons the rest (logged).
func (m *Mailer) Close(wait time.Duration) {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.queue)
	}
	m.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-m.done:
	case <-t.C:
		m.stop()
		<-m.done
	}
}

func (m *Mailer) run() {
	defer close(m.done)
	for j := range m.queue {
		if m.ctx.Err() != nil {
			m.logger.Warn("mail not sent: the sidecar is shutting down")
			continue
		}
		ctx, cancel := context.WithTimeout(m.ctx, m.timeout)
		msg := j.prepare(ctx)
		if msg != nil {
			err := m.Send(ctx, msg)
			if m.sent != nil {
				m.sent(msg, err)
			}
		}
		cancel()
	}
}

// Send delivers msg now, within ctx and the timeout.
func (m *Mailer) Send(ctx context.Context, msg *Message) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	gm := gomail.NewMsg()
	gm.FromMailAddress(m.from)
	if err := gm.To(msg.To); err != nil {
		return fmt.Errorf("mailer: recipient: %w", err)
	}
	gm.Subject(msg.Subject)
	gm.SetDate()
	gm.SetMessageID()
	gm.SetBodyString(gomail.TypeTextPlain, msg.Body)
	opts := []gomail.Option{
		gomail.WithPort(m.server.Port),
		gomail.WithTimeout(m.timeout),
		gomail.WithTLSConfig(m.tls),
		// Our own dial, so that the connection closes when ctx ends
		// (Close, or the timeout), not only at go-mail's deadlines.
		gomail.WithDialContextFunc(m.dialer(ctx)),
	}
	if m.server.Implicit {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if m.server.User != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(m.server.User), gomail.WithPassword(m.server.Password))
	}
	c, err := gomail.NewClient(m.server.Host, opts...)
	if err != nil {
		return fmt.Errorf("mailer: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, gm); err != nil {
		return fmt.Errorf("mailer: sending to %s: %w", m.server, err)
	}
	return nil
}

// dialer dials the server (with TLS for smtps://) and ties the
// connection's life to ctx.
func (m *Mailer) dialer(ctx context.Context) gomail.DialContextFunc {
	return func(dctx context.Context, network, addr string) (net.Conn, error) {
		nd := &net.Dialer{}
		var c net.Conn
		var err error
		if m.server.Implicit {
			c, err = (&tls.Dialer{NetDialer: nd, Config: m.tls}).DialContext(dctx, network, addr)
		} else {
			c, err = nd.DialContext(dctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { c.Close() })
		return c, nil
	}
}
