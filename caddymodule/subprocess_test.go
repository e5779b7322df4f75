//go:build linux

package caddymodule_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests that need a real Caddy process (kill -9, peak RSS) build ./caddy
// once per test binary, or use the binary named by this variable.
const envCaddyBinary = "SESSION_AUTH_TEST_CADDY"

var caddyBuild struct {
	once sync.Once
	path string
	err  error
	took time.Duration
}

// caddyBinary returns a caddy binary built from this checkout (without
// -race, so memory figures are the real ones). The build lands next to the
// test's XDG dirs, which TestMain removes.
func caddyBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs a caddy binary; skipped with -short")
	}
	if p := os.Getenv(envCaddyBinary); p != "" {
		return p
	}
	caddyBuild.once.Do(func() {
		start := time.Now()
		_, here, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(here))
		out := filepath.Join(filepath.Dir(os.Getenv("XDG_DATA_HOME")), "bin", "caddy")
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		cmd := exec.Command(goBin, "build", "-o", out, "./caddy")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			caddyBuild.err = fmt.Errorf("go build ./caddy: %v\n%s", err, b)
			return
		}
		caddyBuild.path, caddyBuild.took = out, time.Since(start)
	})
	if caddyBuild.err != nil {
		t.Fatal(caddyBuild.err)
	}
	t.Logf("caddy binary built in %v", caddyBuild.took.Round(time.Millisecond))
	return caddyBuild.path
}

// caddyProc is a caddy process running a Caddyfile.
type caddyProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string
	log    string
	exited chan struct{}
}

// caddyEnv is the environment of a caddy process the tests run: this
// one's, with HOME and Caddy's config and data directories under dir.
func caddyEnv(dir string) []string {
	return append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
}

// startCaddyProc runs bin with caddyfile (written to dir), XDG dirs in dir
// and env added to the environment, and waits until it answers on port.
func startCaddyProc(t *testing.T, bin, dir, caddyfile string, port int, env ...string) *caddyProc {
	t.Helper()
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &caddyProc{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), log: filepath.Join(dir, "caddy.log"),
		exited: make(chan struct{})}
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	p.cmd = exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	p.cmd.Env = append(caddyEnv(dir), env...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			t.Fatalf("caddy exited at start-up:\n%s", p.tail())
		default:
		}
		resp, err := http.Get(p.base + "/api/user/")
		if err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not answer within 30s:\n%s", p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to go.
func (p *caddyProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.exited
}

func (p *caddyProc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// status reads a field of /proc/<pid>/status, in kB for the memory ones.
func (p *caddyProc) status(field string) int64 {
	p.t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				p.t.Fatalf("%s: %v", field, err)
			}
			return n
		}
	}
	p.t.Fatalf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
	return 0
}
