package sessions

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// redisPipeline runs the session reads (GET) of every concurrent request
// over one shared connection, pipelined: callers queue their command, a
// writer goroutine sends whatever is queued in one write, and a reader
// goroutine hands the replies back in order. Under load, many reads share
// each write and read system call, on both sides: Redis answers a batch of
// pipelined GETs for about the CPU of one, where a connection per request
// costs each request its own round of system calls and wake-ups. With no
// concurrency, a read costs the same single round trip as before.
//
// The connection is dialed with the pool's own dial function (so AUTH,
// SELECT and TLS are the pool's), on first use and again after it fails.
// A failure (I/O error, read or write timeout) fails every read in flight on
// it, as it would have failed each on its own connection; the next read
// dials anew. Redis error replies are returned as errors and do not close
// the connection. The connection closes itself after idleTimeout without
// use, so a pipeline that is no longer used (e.g. after a config reload)
// leaves nothing behind.
type redisPipeline struct {
	dial        func(context.Context) (redis.Conn, error)
	idleTimeout time.Duration

	cur atomic.Pointer[pipeConn]
	mu  sync.Mutex // serialises dialing
}

// defaultPipelineIdle is how long the pipeline connection may stay unused
// before it is closed.
const defaultPipelineIdle = time.Minute

// newRedisPipeline returns a pipeline over connections from pool's dial
// function, or nil if the pool has none.
func newRedisPipeline(pool *redis.Pool) *redisPipeline {
	var dial func(context.Context) (redis.Conn, error)
	switch {
	case pool.DialContext != nil:
		dial = pool.DialContext
	case pool.Dial != nil:
		dial = func(context.Context) (redis.Conn, error) { return pool.Dial() }
	default:
		return nil
	}
	return &redisPipeline{dial: dial, idleTimeout: defaultPipelineIdle}
}

// get runs GET key. A missing key is redis.ErrNil.
func (p *redisPipeline) get(key string) ([]byte, error) {
	cl := callPool.Get().(*pipeCall)
	defer func() {
		cl.key, cl.reply, cl.err = "", nil, nil
		callPool.Put(cl)
	}()
	cl.key = key
	for attempt := 0; ; attempt++ {
		pc, err := p.conn()
		if err != nil {
			return nil, err
		}
		if err := pc.enqueue(cl); err != nil {
			// The connection broke (or idled out) between conn and
			// enqueue; nothing was sent, so trying a new one is safe.
			if attempt == 0 {
				continue
			}
			return nil, err
		}
		<-cl.done
		return cl.reply, cl.err
	}
}

// conn returns the live connection, dialing one if there is none.
func (p *redisPipeline) conn() (*pipeConn, error) {
	if pc := p.cur.Load(); pc != nil && !pc.broken.Load() {
		return pc, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pc := p.cur.Load(); pc != nil && !pc.broken.Load() {
		return pc, nil
	}
	c, err := p.dial(context.Background())
	if err != nil {
		return nil, err
	}
	pc := &pipeConn{
		c:       c,
		wake:    make(chan struct{}, 1),
		pending: make(chan *pipeCall, 256),
		idle:    p.idleTimeout,
	}
	go pc.writeLoop()
	go pc.readLoop()
	p.cur.Store(pc)
	return pc, nil
}

// close closes the current connection, if any; a later get dials again.
func (p *redisPipeline) close() {
	if pc := p.cur.Load(); pc != nil {
		pc.fail(errPipelineClosed)
	}
}

var (
	errPipelineClosed = errors.New("sessions: redis pipeline connection closed")
	errPipelineIdle   = errors.New("sessions: redis pipeline connection closed after idling")
)

// pipeCall is one queued GET; calls are pooled, with their done channel.
type pipeCall struct {
	key   string
	reply []byte
	err   error
	done  chan struct{}
}

var callPool = sync.Pool{New: func() any { return &pipeCall{done: make(chan struct{}, 1)} }}

// pipeConn is one pipelined connection and its two goroutines.
type pipeConn struct {
	c    redis.Conn
	idle time.Duration

	mu     sync.Mutex
	queue  []*pipeCall // queued, not yet sent
	spare  []*pipeCall // the writer's other queue buffer
	err    error       // why the connection stopped taking calls
	broken atomic.Bool // err != nil, readable without mu

	wake    chan struct{}  // one token: the queue became non-empty (or err was set)
	pending chan *pipeCall // sent, in order, awaiting their replies
}

// enqueue queues cl for the writer; it fails if the connection has stopped
// taking calls.
func (pc *pipeConn) enqueue(cl *pipeCall) error {
	pc.mu.Lock()
	if pc.err != nil {
		err := pc.err
		pc.mu.Unlock()
		return err
	}
	pc.queue = append(pc.queue, cl)
	first := len(pc.queue) == 1
	pc.mu.Unlock()
	if first {
		pc.signal()
	}
	return nil
}

func (pc *pipeConn) signal() {
	select {
	case pc.wake <- struct{}{}:
	default:
	}
}

// fail stops the connection taking calls and closes it, which fails the
// reads in flight (and unblocks the reader and the writer).
func (pc *pipeConn) fail(err error) {
	pc.mu.Lock()
	if pc.err == nil {
		pc.err = err
		pc.broken.Store(true)
	}
	pc.mu.Unlock()
	pc.c.Close()
	pc.signal()
}

// writeLoop sends each batch of queued calls with one flush, then hands the
// calls to the reader. It ends once the connection is broken and the last
// queued calls are handed over, closing pending so that the reader ends too.
func (pc *pipeConn) writeLoop() {
	defer close(pc.pending)
	tick := time.NewTicker(pc.idle)
	defer tick.Stop()
	used := false
	for {
		select {
		case <-pc.wake:
		case <-tick.C:
			if used {
				used = false
				continue
			}
			pc.mu.Lock()
			if len(pc.queue) == 0 && pc.err == nil {
				pc.err = errPipelineIdle
				pc.broken.Store(true)
			}
			pc.mu.Unlock()
			if pc.broken.Load() {
				pc.c.Close()
			}
		}
		// Let the goroutines that are ready to run (under load, other
		// requests about to queue their reads) run first, so that they
		// share this write; with nothing else to run, this returns at once.
		runtime.Gosched()
		pc.mu.Lock()
		batch := pc.queue
		pc.queue = pc.spare[:0]
		done := pc.err != nil
		pc.mu.Unlock()
		if len(batch) > 0 {
			used = true
			for _, cl := range batch {
				// Send only buffers; a write error surfaces in Flush, and
				// on a broken connection each Receive fails at once.
				pc.c.Send("GET", cl.key)
			}
			if err := pc.c.Flush(); err != nil {
				pc.fail(err)
			}
			// Handed over after the flush: the reader never waits on a
			// reply to a command still sitting in our buffer.
			for _, cl := range batch {
				pc.pending <- cl
			}
			clear(batch)
		}
		pc.spare = batch
		if done {
			return
		}
	}
}

// readLoop reads one reply per sent call, in order, and hands it back.
func (pc *pipeConn) readLoop() {
	for cl := range pc.pending {
		reply, err := pc.c.Receive()
		if err != nil {
			var rerr redis.Error
			if !errors.As(err, &rerr) {
				// Mark the connection broken before answering, so that a
				// caller retrying on this error gets a new connection.
				pc.fail(err)
			}
			cl.err = err
		} else {
			cl.reply, cl.err = redis.Bytes(reply, nil)
		}
		cl.done <- struct{}{}
	}
}

// find is redisstore's Find over the pipeline.
func (s *retryingStore) find(token string) ([]byte, bool, error) {
	if s.pipe == nil {
		return s.inner.Find(token)
	}
	b, err := s.pipe.get(s.prefix + token)
	if errors.Is(err, redis.ErrNil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}
