package testredis

import (
	"bytes"
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
	client map[net.Conn]*sync.Mutex // client side of each connection: its write lock
	subbed map[net.Conn]bool        // clients that sent SUBSCRIBE
	answer func(fromClient []byte) []byte
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
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}, client: map[net.Conn]*sync.Mutex{}, subbed: map[net.Conn]bool{}, resume: make(chan struct{})}
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

// Retarget sends the connections made from now on to target; those open
// stay with the old one (as a virtual IP or DNS name moved to another
// server, say a replica promoted by hand).
func (p *Proxy) Retarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

func (p *Proxy) forward(c net.Conn) {
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	s, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	wmu := new(sync.Mutex)
	p.mu.Lock()
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.client[c] = wmu
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.copy(s, c, c, wmu) }()
	go func() { defer wg.Done(); p.copy(c, s, nil, wmu) }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	delete(p.client, c)
	delete(p.subbed, c)
	p.mu.Unlock()
}

// Answer makes the proxy answer, instead of the server, what a client
// sends: fn sees each chunk a client sends and returns the bytes to send
// back in the server's place, or nil to forward the chunk (nil fn: forward
// all). For replies no server would send (a fault of the server or the
// network in between).
func (p *Proxy) Answer(fn func(fromClient []byte) []byte) {
	p.mu.Lock()
	p.answer = fn
	p.mu.Unlock()
}

// InjectSubscribers sends raw bytes to every client connected through the
// proxy that sent a SUBSCRIBE, as if from the server, between two of the
// server's chunks.
func (p *Proxy) InjectSubscribers(raw []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c, wmu := range p.client {
		if !p.subbed[c] {
			continue
		}
		wmu.Lock()
		c.Write(raw)
		wmu.Unlock()
	}
}

// copy forwards src to dst until either fails, holding data back while
// the proxy is silent. client is src when src is a client (Answer applies),
// and wmu guards writes to the client.
func (p *Proxy) copy(dst, src, client net.Conn, wmu *sync.Mutex) {
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
			if client != nil {
				p.mu.Lock()
				answer := p.answer
				if bytes.Contains(buf[:n], []byte("SUBSCRIBE")) {
					p.subbed[client] = true
				}
				p.mu.Unlock()
				if answer != nil {
					if reply := answer(buf[:n]); reply != nil {
						wmu.Lock()
						_, werr := client.Write(reply)
						wmu.Unlock()
						if werr != nil {
							return
						}
						continue
					}
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
				continue
			}
			wmu.Lock()
			_, werr := dst.Write(buf[:n])
			wmu.Unlock()
			if werr != nil {
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
