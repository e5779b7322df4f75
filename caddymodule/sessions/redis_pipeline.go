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
// over one shared connection, pipelined. There are no goroutines of its
// own: the callers take turns at the two roles.
//
//   - Writer: a caller that queues its GET while nobody is writing becomes
//     the writer. It sends everything queued in one write (and again, as
//     long as more was queued meanwhile).
//   - Reader: the first caller to find replies owed and nobody reading
//     becomes the reader. It reads replies in order and hands each to its
//     caller until its own has come, then hands the role to the caller
//     whose reply is next.
//
// So a lone request does exactly one write and one read, like a connection
// of its own, with no hand-off between goroutines (waking a sleeping thread
// costs tens of microseconds on a small VM). Under load, GETs queued while a
// write is under way share the next one, and when replies are already owed
// the writer first lets the other ready goroutines run, so that more GETs
// join its batch: Redis then answers a batch for about the system calls of
// one GET, where a connection per request costs each request its own.
//
// The connection is dialed with the pool's own dial function (so AUTH,
// SELECT and TLS are the pool's), on first use and again after it fails.
// A failure (I/O error, read or write timeout) fails every GET in flight on
// it, as each would have failed on its own connection; the next GET dials
// anew. Redis error replies are returned as errors and keep the connection.
// It is closed after idleTimeout without use, so a pipeline that is no
// longer used (e.g. after a config reload) leaves nothing open.
type redisPipeline struct {
	dial        func(context.Context) (redis.Conn, error)
	idleTimeout time.Duration
	// masterGen, if set, is the current master generation (Sentinel): a
	// connection dialed at an older one is replaced.
	masterGen func() uint64

	cur atomic.Pointer[pipeConn]
	mu  sync.Mutex // serialises dialing
}

// defaultPipelineIdle is how long the connection may stay unused before it
// is closed.
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
	defer cl.release()
	cl.key = key
	for attempt := 0; ; attempt++ {
		pc, err := p.conn()
		if err != nil {
			return nil, err
		}
		if err := pc.do(cl); err != nil {
			// The connection broke (or idled out) before this GET was
			// queued; nothing was sent, so a new one is safe to try.
			if attempt == 0 && errors.Is(err, errNotQueued) {
				continue
			}
			return nil, err
		}
		return cl.reply, cl.err
	}
}

// conn returns the live connection, dialing one if there is none.
func (p *redisPipeline) conn() (*pipeConn, error) {
	if pc := p.cur.Load(); pc != nil && p.usable(pc) {
		return pc, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pc := p.cur.Load()
	if pc != nil && p.usable(pc) {
		return pc, nil
	}
	if pc != nil && !pc.broken.Load() {
		// Dialed to a master that is no more: GETs in flight on it fail
		// (and are retried by RedisClient.Do).
		pc.mu.Lock()
		pc.failLocked(errMasterChanged)
		pc.mu.Unlock()
	}
	c, err := p.dial(context.Background())
	if err != nil {
		return nil, err
	}
	pc = &pipeConn{c: c, idle: p.idleTimeout}
	pc.mu.Lock()
	pc.idleTimer = time.AfterFunc(pc.idle, pc.idleCheck)
	pc.mu.Unlock()
	p.cur.Store(pc)
	return pc, nil
}

// usable: not broken, and on the current master.
func (p *redisPipeline) usable(pc *pipeConn) bool {
	return !pc.broken.Load() && (p.masterGen == nil || connGen(pc.c) == p.masterGen())
}

// close closes the current connection, if any; a later get dials again.
func (p *redisPipeline) close() {
	if pc := p.cur.Load(); pc != nil {
		pc.mu.Lock()
		pc.failLocked(errPipelineClosed)
		pc.mu.Unlock()
	}
}

var (
	errPipelineClosed = errors.New("sessions: redis pipeline connection closed")
	errPipelineIdle   = errors.New("sessions: redis pipeline connection closed after idling")
	errNotQueued      = errors.New("sessions: redis pipeline connection not usable")
)

// pipeCall is one GET. Calls are pooled with their wake channel, which
// carries "your reply is in" and "read for us" alike: a waiter re-checks
// under the lock, so a stale or spurious token is harmless.
type pipeCall struct {
	key   string
	reply []byte
	err   error
	done  bool          // reply or err set; guarded by the conn's mu
	wake  chan struct{} // capacity 1
}

var callPool = sync.Pool{New: func() any { return &pipeCall{wake: make(chan struct{}, 1)} }}

func (cl *pipeCall) release() {
	cl.key, cl.reply, cl.err, cl.done = "", nil, nil, false
	select {
	case <-cl.wake:
	default:
	}
	callPool.Put(cl)
}

func (cl *pipeCall) signal() {
	select {
	case cl.wake <- struct{}{}:
	default:
	}
}

// pipeConn is one shared connection. redigo allows one concurrent writer
// (Send, Flush) and one concurrent reader (Receive) on a connection: the
// writing and reading flags hand out those two roles.
type pipeConn struct {
	c    redis.Conn
	idle time.Duration

	mu       sync.Mutex
	queue    []*pipeCall // queued, not yet sent
	spare    []*pipeCall // the other queue buffer, while not being sent
	inflight []*pipeCall // sent (or being sent), in order, from ihead on: replies owed
	ihead    int
	keys     []string // the batch's keys, while being sent (the writer's own)
	writing  bool
	reading  bool
	used     bool  // since the last idle check
	err      error // why the connection takes no more calls
	broken   atomic.Bool

	idleTimer *time.Timer
}

// do sends cl's GET and waits for its reply. It fails, with errNotQueued
// wrapped, only if the connection no longer takes calls; otherwise the
// outcome is in cl.reply and cl.err.
func (pc *pipeConn) do(cl *pipeCall) error {
	pc.mu.Lock()
	if pc.err != nil {
		err := pc.err
		pc.mu.Unlock()
		return errors.Join(errNotQueued, err)
	}
	pc.used = true
	pc.queue = append(pc.queue, cl)
	if !pc.writing {
		pc.write() // returns with mu held
	}
	for !cl.done {
		if !pc.reading && pc.owed() > 0 {
			pc.read(cl) // returns with mu held
			continue
		}
		pc.mu.Unlock()
		<-cl.wake
		pc.mu.Lock()
	}
	pc.mu.Unlock()
	return nil
}

// write sends the queue, batch after batch, until it is empty. It is
// called and returns with mu held; mu is released while sending.
func (pc *pipeConn) write() {
	pc.writing = true
	for len(pc.queue) > 0 {
		if pc.owed() > 0 {
			// Replies are owed, so other requests are under way: let the
			// goroutines that are ready to run queue their GETs first.
			pc.mu.Unlock()
			runtime.Gosched()
			pc.mu.Lock()
		}
		batch := pc.queue
		pc.queue, pc.spare = pc.spare[:0], nil
		if pc.err != nil {
			for _, cl := range batch {
				pc.deliver(cl, nil, pc.err)
			}
			pc.spare = clearCalls(batch)
			continue
		}
		pc.inflight = append(pc.inflight, batch...)
		if !pc.reading {
			// Someone must read these replies: the caller of the oldest
			// one owed takes the role (it may be us, once we are done).
			pc.inflight[pc.ihead].signal()
		}
		// The keys are copied under mu: once a call is in inflight, a
		// reader that fails the connection may deliver it an error, and
		// its caller release (and reuse) it while we are still sending.
		pc.keys = pc.keys[:0]
		for _, cl := range batch {
			pc.keys = append(pc.keys, cl.key)
		}
		pc.mu.Unlock()
		for _, key := range pc.keys { // only the writer touches keys
			// Send only buffers; a write error surfaces in Flush, and on a
			// broken connection every Receive fails at once.
			pc.c.Send("GET", key)
		}
		err := pc.c.Flush()
		pc.mu.Lock()
		clear(pc.keys)
		if err != nil {
			pc.failLocked(err)
		}
		pc.spare = clearCalls(batch)
	}
	pc.writing = false
}

func clearCalls(b []*pipeCall) []*pipeCall {
	clear(b)
	return b[:0]
}

// owed is the number of replies owed. mu is held.
func (pc *pipeConn) owed() int { return len(pc.inflight) - pc.ihead }

// pop removes the oldest call owed a reply. mu is held.
func (pc *pipeConn) pop() *pipeCall {
	cl := pc.inflight[pc.ihead]
	pc.inflight[pc.ihead] = nil
	pc.ihead++
	switch {
	case pc.ihead == len(pc.inflight):
		pc.inflight, pc.ihead = pc.inflight[:0], 0
	case pc.ihead >= 64 && 2*pc.ihead >= len(pc.inflight):
		// Never drained under steady load: compact, or it would grow.
		n := copy(pc.inflight, pc.inflight[pc.ihead:])
		clear(pc.inflight[n:])
		pc.inflight, pc.ihead = pc.inflight[:n], 0
	}
	return cl
}

// read reads replies in order and hands them out until cl's has come (or
// none is owed: cl is still queued behind a write under way), then passes
// the role on. It is called and returns with mu held; mu is released while
// reading.
func (pc *pipeConn) read(cl *pipeCall) {
	pc.reading = true
	for !cl.done && pc.owed() > 0 {
		pc.mu.Unlock()
		reply, err := pc.c.Receive()
		var b []byte
		if err == nil {
			b, err = redis.Bytes(reply, nil)
		}
		pc.mu.Lock()
		var rerr redis.Error
		if err != nil && !errors.Is(err, redis.ErrNil) && !errors.As(err, &rerr) {
			// Broken before anyone learns of it, so that a caller that
			// retries on this error gets a new connection.
			pc.failLocked(err)
		}
		pc.deliver(pc.pop(), b, err)
	}
	pc.reading = false
	if pc.owed() > 0 {
		pc.inflight[pc.ihead].signal()
	}
}

// deliver sets a call's outcome and wakes its caller. mu is held.
func (pc *pipeConn) deliver(cl *pipeCall, b []byte, err error) {
	cl.reply, cl.err, cl.done = b, err, true
	cl.signal()
}

// failLocked stops the connection taking calls and closes it, which fails
// the reads in flight. mu is held.
func (pc *pipeConn) failLocked(err error) {
	if pc.err != nil {
		return
	}
	pc.err = err
	pc.broken.Store(true)
	pc.c.Close()
	if pc.idleTimer != nil {
		pc.idleTimer.Stop()
	}
}

// idleCheck closes the connection if it was not used since the last check.
func (pc *pipeConn) idleCheck() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.err != nil {
		return
	}
	if pc.used || pc.writing || pc.reading || pc.owed() > 0 {
		pc.used = false
		pc.idleTimer.Reset(pc.idle)
		return
	}
	pc.failLocked(errPipelineIdle)
}
