package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// trackingCache keeps session reads in memory and drops them when Redis
// says they changed, with Redis 6's client-side caching in broadcast mode:
// one dedicated connection per cache runs
//
//	CLIENT ID
//	CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX <key prefix>
//	SUBSCRIBE __redis__:invalidate
//
// after which Redis sends it the name of every key under the prefix that
// any client changes, deletes or lets expire, whoever read it (a null name
// for FLUSHDB/FLUSHALL). In RESP2 the messages come as Pub/Sub messages on
// that channel, hence the redirect to the subscribed connection itself.
//
// The rules that make it exact:
//
//   - Nothing is served from memory unless the invalidation connection is
//     subscribed and (with Sentinel) on the current master.
//   - Every invalidation, every (de)activation and every local write bumps
//     a generation under the lock, and a read that missed fills the cache
//     only if the generation is still the one it saw before it asked Redis
//     (users.userCache works the same way). So a value read before an
//     invalidation is never served after it: if the invalidation was
//     processed first, the fill is dropped; if the fill came first, the
//     invalidation deletes it.
//   - This instance's own Commit and Delete invalidate their key as soon as
//     Redis has answered them, before the notification comes back.
//   - The connection is PINGed every invalPing, each PING carrying the time
//     it was sent, and a session is served from memory only while the
//     answer to a PING sent at most freshFor ago has been read. Redis
//     answers in order on the connection, so every invalidation of a write
//     it executed before that PING was read first. Hence a write that
//     returned more than freshFor before a read began is never hidden from
//     it, however late this process gets to run the goroutine that reads
//     the invalidations (a stalled or overloaded process reads from Redis
//     meanwhile), and a network partition that breaks nothing stops the
//     cache within freshFor too.
//   - When the connection drops (or stays silent for invalSilence, or the
//     Sentinels name a new master), the cache is flushed and every read goes
//     to Redis until a new connection is subscribed.
//   - A Redis without CLIENT TRACKING (older than 6, or an ACL user without
//     the CLIENT command) leaves the cache off, with one log line; it is
//     tried again every trackingRetry.
//   - At most max sessions are held (a random one makes room), and expired
//     ones are never served.
type trackingCache struct {
	c      *RedisClient
	prefix string
	max    int
	log    *slog.Logger

	mu     sync.RWMutex
	gen    uint64
	active bool
	onGen  uint64 // master generation of the invalidation connection
	onRun  uint64 // run_id generation (RedisClient.serverGen) it was subscribed at
	m      map[string]cachedSession

	state atomic.Int32 // cacheState, for Status
	// fresh is when (monoNow) the PING whose answer was read last was
	// sent; 0 while not subscribed.
	fresh atomic.Int64

	stop chan struct{}
	done chan struct{}
}

// The invalidation connection's keep-alive: a PING every invalPing; the
// cache serves nothing while the last PING answered was sent more than
// freshFor ago, and the connection is given up when nothing came back for
// invalSilence.
const (
	invalPing    = 10 * time.Millisecond
	freshFor     = 50 * time.Millisecond
	invalSilence = time.Second
	// trackingRetry is how often a Redis that refused CLIENT TRACKING is
	// asked again.
	trackingRetry = time.Minute
	invalChannel  = "__redis__:invalidate"
)

type cacheState int32

const (
	cacheConnecting cacheState = iota
	cacheActive
	cacheUnsupported
	cacheClosed
)

// CacheStatus names a session cache's state: "off" (none), "active",
// "connecting" (reads go to Redis until the invalidation connection is up)
// or "unsupported" (Redis refused CLIENT TRACKING).
func (s cacheState) String() string {
	switch s {
	case cacheActive:
		return "active"
	case cacheUnsupported:
		return "unsupported"
	case cacheClosed:
		return "closed"
	}
	return "connecting"
}

var errTrackingUnsupported = errors.New("redis refused client tracking")

// errBadReply is a reply on the invalidation connection that is not what
// the protocol says (empty, short, of an unknown kind): the cache is
// dropped and the connection made anew, after a back-off.
var errBadReply = errors.New("unexpected reply on the session cache's invalidation connection")

func newTrackingCache(c *RedisClient, prefix string, max int) *trackingCache {
	tc := &trackingCache{c: c, prefix: prefix, max: max, log: c.log,
		m: make(map[string]cachedSession), stop: make(chan struct{}), done: make(chan struct{})}
	go tc.run()
	return tc
}

func (tc *trackingCache) close() {
	select {
	case <-tc.stop:
	default:
		close(tc.stop)
	}
	<-tc.done
	tc.state.Store(int32(cacheClosed))
}

// get returns a copy of token's cached session, if it may be served, and
// the generation to pass to put after reading Redis on a miss.
func (tc *trackingCache) get(token string) ([]byte, bool, uint64) {
	tc.mu.RLock()
	e, ok := tc.m[token]
	gen, active, onGen, onRun := tc.gen, tc.active, tc.onGen, tc.onRun
	tc.mu.RUnlock()
	if !ok || !active || onGen != tc.c.masterGen() || onRun != tc.c.serverGen() {
		return nil, false, gen
	}
	now := time.Now()
	if e.expiry <= now.UnixNano() || int64(now.Sub(monoEpoch))-tc.fresh.Load() > int64(freshFor) {
		return nil, false, gen
	}
	return append([]byte(nil), e.data...), true, gen
}

// put caches data, read from Redis after get returned gen, unless the
// cache went off or anything was invalidated since.
func (tc *trackingCache) put(token string, data []byte, gen uint64) {
	expiry, ok := dataDeadline(data)
	if !ok || expiry <= time.Now().UnixNano() {
		return
	}
	e := cachedSession{expiry: expiry, data: append([]byte(nil), data...)}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if !tc.active || tc.gen != gen || tc.onGen != tc.c.masterGen() || tc.onRun != tc.c.serverGen() {
		return
	}
	if _, ok := tc.m[token]; !ok && len(tc.m) >= tc.max {
		for k := range tc.m { // map order is random: a random eviction
			delete(tc.m, k)
			break
		}
	}
	tc.m[token] = e
}

// invalidate drops tokens (every one if all) and fails fills in flight.
func (tc *trackingCache) invalidate(all bool, tokens ...string) {
	tc.mu.Lock()
	tc.gen++
	if all {
		clear(tc.m)
	}
	for _, t := range tokens {
		delete(tc.m, t)
	}
	tc.mu.Unlock()
}

// setActive turns serving from memory on (on the master of generation
// onGen, the server of run_id generation onRun) or off, flushing either way.
func (tc *trackingCache) setActive(active bool, onGen, onRun uint64) {
	if !active {
		tc.fresh.Store(0)
	}
	tc.mu.Lock()
	tc.gen++
	tc.active, tc.onGen, tc.onRun = active, onGen, onRun
	clear(tc.m)
	tc.mu.Unlock()
}

// run keeps an invalidation connection subscribed until close.
func (tc *trackingCache) run() {
	defer close(tc.done)
	const minBackoff, maxBackoff = 50 * time.Millisecond, time.Second
	saidUnsupported, saidLost := false, false
	backoff := minBackoff
	for {
		wasActive, err := tc.subscribe(func() {
			if saidLost {
				saidLost = false
				tc.log.Info("session cache back on: invalidation connection to redis subscribed")
			}
		})
		tc.setActive(false, 0, 0)
		select {
		case <-tc.stop:
			return
		default:
		}
		bad := errors.Is(err, errBadReply) // no tight loop on a server that keeps sending them
		if wasActive && !bad {
			backoff = minBackoff
		}
		wait := backoff
		if errors.Is(err, errTrackingUnsupported) {
			tc.state.Store(int32(cacheUnsupported))
			if !saidUnsupported {
				saidUnsupported = true
				tc.log.Warn("redis does not support client-side caching (CLIENT TRACKING, Redis 6+): session reads go to Redis every time",
					"error", err)
			}
			wait = trackingRetry
		} else {
			tc.state.Store(int32(cacheConnecting))
			if (wasActive || bad) && !saidLost {
				saidLost = true
				tc.log.Warn("session cache off: its invalidation connection to redis was lost; reading sessions from Redis until it is back",
					"error", err)
			}
			if wasActive && !bad {
				wait = 0 // e.g. a new master: reconnect at once
			}
		}
		select {
		case <-tc.stop:
			return
		case <-time.After(wait):
		}
		if (!wasActive || bad) && backoff < maxBackoff {
			backoff *= 2
		}
	}
}

// subscribe dials the master, turns tracking on, subscribes, and serves
// from memory until the connection fails, stays silent, the master
// changes, or close. It reports whether it got as far as serving.
func (tc *trackingCache) subscribe(onActive func()) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultDialTimeout)
	conn, err := tc.c.dial(ctx)
	cancel()
	if err != nil {
		return false, err
	}
	defer conn.Close()
	gen, run := connGen(conn), tc.c.serverGen() // the dial noted the server's run_id
	id, err := redis.Int64(conn.Do("CLIENT", "ID"))
	if err != nil {
		return false, trackingErr(err)
	}
	if _, err := conn.Do("CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST", "PREFIX", tc.prefix); err != nil {
		return false, trackingErr(err)
	}
	subscribed := monoNow()
	if err := conn.Send("SUBSCRIBE", invalChannel); err != nil {
		return false, err
	}
	if err := conn.Flush(); err != nil {
		return false, err
	}
	v, err := redis.Values(redis.ReceiveWithTimeout(conn, invalSilence))
	if err != nil {
		return false, trackingErr(err)
	}
	if len(v) != 3 {
		return false, fmt.Errorf("%w: a reply to SUBSCRIBE of %d elements", errBadReply, len(v))
	}
	if kind, _ := redis.String(v[0], nil); kind != "subscribe" {
		return false, fmt.Errorf("%w: a reply to SUBSCRIBE of kind %q", errBadReply, kind)
	}

	// The keep-alive: a PING every invalPing; it also notices a new master
	// and close, and closes the connection, which ends the loop below.
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		t := time.NewTicker(invalPing)
		defer t.Stop()
		for {
			select {
			case <-tc.stop:
				conn.Close()
				return
			case <-quit:
				return
			case <-t.C:
				if tc.c.masterGen() != gen || tc.c.serverGen() != run {
					conn.Close()
					return
				}
				if conn.Send("PING", strconv.FormatInt(monoNow(), 10)) != nil || conn.Flush() != nil {
					conn.Close()
					return
				}
			}
		}
	}()

	tc.setActive(true, gen, run)
	tc.fresh.Store(subscribed)
	tc.state.Store(int32(cacheActive))
	onActive()
	for {
		reply, err := redis.ReceiveWithTimeout(conn, invalSilence)
		if err != nil {
			return true, err
		}
		msg, ok := reply.([]interface{})
		if !ok || len(msg) == 0 {
			return true, fmt.Errorf("%w: %T of %d elements", errBadReply, reply, len(msg))
		}
		kind, _ := redis.String(msg[0], nil)
		switch {
		case kind == "pong" && len(msg) == 2:
			if sent, err := strconv.ParseInt(string(asBytes(msg[1])), 10, 64); err == nil && sent > tc.fresh.Load() {
				tc.fresh.Store(sent)
			}
		case kind == "message" && len(msg) == 3:
			if !tc.invalidation(msg[2]) {
				return true, fmt.Errorf("%w: an invalidation message holding %T", errBadReply, msg[2])
			}
		default:
			return true, fmt.Errorf("%w: a %q message of %d elements", errBadReply, kind, len(msg))
		}
	}
}

// invalidation applies an invalidation message's data: the keys changed
// (an array), or nil for all (FLUSHDB, FLUSHALL). Anything else (say, a
// client's PUBLISH on the channel) drops every entry and reports false.
func (tc *trackingCache) invalidation(data interface{}) bool {
	if data == nil {
		tc.invalidate(true)
		return true
	}
	keys, ok := data.([]interface{})
	if !ok {
		tc.invalidate(true)
		return false
	}
	tokens := make([]string, 0, len(keys))
	for _, k := range keys {
		b, ok := k.([]byte)
		if !ok {
			tc.invalidate(true)
			return false
		}
		// The user index's hashes share the prefix (BCAST tracks them too):
		// a write to one (a login, a last-seen mark) caches nothing, so it
		// neither takes the lock nor fails the fills in flight.
		if t, ok := strings.CutPrefix(string(b), tc.prefix); ok && !strings.HasPrefix(t, userKeyInfix) {
			tokens = append(tokens, t)
		}
	}
	if len(tokens) > 0 {
		tc.invalidate(false, tokens...)
	}
	return true
}

// monoEpoch and monoNow give monotonic times as integers (nanoseconds),
// which a wall-clock step cannot move.
var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) }

func asBytes(v interface{}) []byte {
	b, _ := v.([]byte)
	return b
}

// trackingErr marks a Redis error reply (unknown command, NOPERM, a server
// too old for CLIENT TRACKING) as "unsupported"; I/O errors pass.
func trackingErr(err error) error {
	var re redis.Error
	if errors.As(err, &re) {
		return fmt.Errorf("%w: %v", errTrackingUnsupported, err)
	}
	return err
}

// status reports the cache's state.
func (tc *trackingCache) status() string { return cacheState(tc.state.Load()).String() }
