package testredis

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP forwarder to a server, for network faults: Cut drops
// every connection through it and refuses new ones until Resume; Silence
// keeps the connections open but forwards nothing either way (a network
// partition that breaks nothing, until Resume).
type Proxy struct {
	// Addr is the proxy's listening host:port.
	Addr string

	target string
	ln     net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	down   bool
	silent bool
	resume chan struct{} // closed by Resume while silent
}

// NewProxy listens on a free 127.0.0.1 port and forwards to target; it is
// closed at t's cleanup.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}, resume: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.Resume()
	})
	return p
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.copy(s, c) }()
	go func() { defer wg.Done(); p.copy(c, s) }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// copy forwards src to dst until either fails, holding data back while
// the proxy is silent.
func (p *Proxy) copy(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			silent, resume := p.silent, p.resume
			p.mu.Unlock()
			if silent {
				<-resume
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}

// Cut closes every connection through the proxy and refuses new ones
// until Resume.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

// Silence stops forwarding (both ways, on every connection, new ones
// included) without closing anything, until Resume.
func (p *Proxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.silent {
		p.silent = true
		p.resume = make(chan struct{})
	}
}

// Resume undoes Cut and Silence.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
	if p.silent {
		p.silent = false
		close(p.resume)
	}
}
