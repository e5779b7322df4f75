package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// sentinel finds the Redis master through Redis Sentinel and follows
// failovers, as the Sentinel client guidelines describe:
//
//   - The master's address comes from the first Sentinel (in list order)
//     that answers SENTINEL get-master-addr-by-name; that Sentinel moves to
//     the front of the list.
//   - Every new connection is checked with ROLE: one to a server that is
//     not (or no longer) the master is closed and the master asked for
//     again. So nothing is ever written to a replica through a new
//     connection.
//   - A watcher stays subscribed to +switch-master on one Sentinel and
//     switches as soon as the Sentinels announce a failover. It asks again
//     whenever it (re)connects, so a failover missed while it was away is
//     caught up.
//   - A connection refused by the master's address, and a READONLY reply
//     (a master demoted to replica while a connection to it stayed open),
//     make the client ask again (RedisClient.Do).
//
// Each change of master bumps a generation; connections carry the
// generation they were dialed at, and the pool, the read pipeline and the
// session cache drop those of an older one.
type sentinel struct {
	master       string
	sentinelOpts []redis.DialOption // timeouts, TLS, Sentinel password
	masterOpts   []redis.DialOption // the URL's auth, database, TLS; timeouts
	redacted     string
	log          *slog.Logger

	refreshing sync.Mutex // held by the one goroutine asking the Sentinels
	mu         sync.Mutex // guards addrs, lastAsk, lastErr
	addrs      []string   // the Sentinels, the last one that answered first
	lastAsk    time.Time  // when the Sentinels were last asked
	lastErr    error      // and what came of it

	cur atomic.Pointer[masterAddr] // nil until first found

	roleDenied sync.Once

	stop chan struct{}
	done chan struct{}
}

// masterAddr is a master's address and the generation it came with.
type masterAddr struct {
	addr string
	gen  uint64
}

// Sentinel tunables.
const (
	// minSentinelAsk spaces out questions to the Sentinels while the
	// master cannot be reached: requests meanwhile fail fast (503).
	minSentinelAsk = 100 * time.Millisecond
	// sentinelPing and sentinelSilence keep the +switch-master watch
	// honest: a Sentinel that answers no PING for sentinelSilence is left
	// for the next one.
	sentinelPing    = time.Second
	sentinelSilence = 3 * time.Second
	// sentinelRetry is the pause after every Sentinel of the list failed.
	sentinelRetry = 500 * time.Millisecond
)

var errMasterChanged = errors.New("sessions: redis master changed (Sentinel failover)")

func newSentinel(t *redisTarget, sentinelOpts, masterOpts []redis.DialOption, log *slog.Logger) *sentinel {
	s := &sentinel{
		master:       t.master,
		sentinelOpts: sentinelOpts,
		masterOpts:   masterOpts,
		redacted:     t.redacted,
		log:          log,
		addrs:        append([]string(nil), t.sentinels...),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	go s.watch()
	return s
}

// close stops the watcher.
func (s *sentinel) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// gen is the current master generation (0 before the first is found).
func (s *sentinel) gen() uint64 {
	if m := s.cur.Load(); m != nil {
		return m.gen
	}
	return 0
}

// current returns the master, asking the Sentinels if none is known yet.
func (s *sentinel) current(ctx context.Context) (*masterAddr, error) {
	if m := s.cur.Load(); m != nil {
		return m, nil
	}
	if _, err := s.refresh(ctx, true); err != nil {
		return nil, err
	}
	if m := s.cur.Load(); m != nil {
		return m, nil
	}
	return nil, fmt.Errorf("sessions: no Sentinel of %s named a master yet", s.redacted)
}

// refresh asks the Sentinels for the master and reports whether it
// changed. Unless wait is set, it returns at once (no change) when another
// goroutine is asking. Either way, within minSentinelAsk of the last
// question it returns that question's error without asking again.
func (s *sentinel) refresh(ctx context.Context, wait bool) (bool, error) {
	if wait {
		s.refreshing.Lock()
	} else if !s.refreshing.TryLock() {
		return false, nil
	}
	defer s.refreshing.Unlock()
	s.mu.Lock()
	if !s.lastAsk.IsZero() && time.Since(s.lastAsk) < minSentinelAsk {
		err := s.lastErr
		s.mu.Unlock()
		return false, err
	}
	addrs := append([]string(nil), s.addrs...)
	s.mu.Unlock()

	changed, err := s.askAll(ctx, addrs)
	s.mu.Lock()
	s.lastAsk, s.lastErr = time.Now(), err
	s.mu.Unlock()
	return changed, err
}

func (s *sentinel) askAll(ctx context.Context, addrs []string) (bool, error) {
	var errs []error
	for i, a := range addrs {
		addr, err := s.ask(ctx, a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if i > 0 {
			s.promote(a)
		}
		return s.setMaster(addr, "Sentinel "+a), nil
	}
	return false, fmt.Errorf("sessions: no Sentinel of %s answered: %w", s.redacted, errors.Join(errs...))
}

// stillMaster asks the Sentinels (at most every minSentinelAsk) and
// reports whether the master is still the one of generation gen.
func (s *sentinel) stillMaster(gen uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*DefaultDialTimeout)
	defer cancel()
	s.refresh(ctx, true)
	return s.gen() == gen
}

// ask asks one Sentinel for the master's address.
func (s *sentinel) ask(ctx context.Context, sentinelAddr string) (string, error) {
	c, err := redis.DialContext(ctx, "tcp", sentinelAddr, s.sentinelOpts...)
	if err != nil {
		return "", err
	}
	defer c.Close()
	reply, err := redis.Strings(c.Do("SENTINEL", "get-master-addr-by-name", s.master))
	if errors.Is(err, redis.ErrNil) {
		return "", fmt.Errorf("Sentinel %s does not know a master named %q", sentinelAddr, s.master)
	}
	if err != nil {
		return "", fmt.Errorf("Sentinel %s: %w", sentinelAddr, err)
	}
	if len(reply) != 2 {
		return "", fmt.Errorf("Sentinel %s: unexpected reply %q", sentinelAddr, reply)
	}
	return net.JoinHostPort(reply[0], reply[1]), nil
}

// promote moves a Sentinel that answered to the front of the list.
func (s *sentinel) promote(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, a := range s.addrs {
		if a == addr {
			copy(s.addrs[1:i+1], s.addrs[:i])
			s.addrs[0] = addr
			return
		}
	}
}

// setMaster records addr as the master; it reports whether that is a
// change (and then bumps the generation).
func (s *sentinel) setMaster(addr, source string) bool {
	for {
		old := s.cur.Load()
		if old != nil && old.addr == addr {
			return false
		}
		next := &masterAddr{addr: addr, gen: 1}
		if old != nil {
			next.gen = old.gen + 1
		}
		if s.cur.CompareAndSwap(old, next) {
			if old == nil {
				s.log.Info("redis master found through Sentinel", "master_name", s.master, "master", addr, "source", source)
			} else {
				s.log.Warn("redis master changed (Sentinel failover)", "master_name", s.master,
					"old_master", old.addr, "master", addr, "source", source)
			}
			return true
		}
	}
}

// dial connects to the master, checking its ROLE; a server that is not the
// master makes it ask the Sentinels again, once.
func (s *sentinel) dial(ctx context.Context) (redis.Conn, error) {
	for attempt := 0; ; attempt++ {
		m, err := s.current(ctx)
		if err != nil {
			return nil, err
		}
		c, err := redis.DialContext(ctx, "tcp", m.addr, s.masterOpts...)
		if err == nil {
			if err = s.checkRole(c, m.addr); err == nil {
				return &masterConn{Conn: c, gen: m.gen}, nil
			}
			c.Close()
		}
		if attempt > 0 {
			return nil, fmt.Errorf("sessions: connecting to redis master %q at %s: %w", s.master, m.addr, err)
		}
		if changed, _ := s.refresh(ctx, false); !changed {
			return nil, fmt.Errorf("sessions: connecting to redis master %q at %s: %w", s.master, m.addr, err)
		}
	}
}

// checkRole makes sure c is connected to a master. A user whom ACLs deny
// ROLE is trusted to have reached the master the Sentinels named (one log
// line says so).
func (s *sentinel) checkRole(c redis.Conn, addr string) error {
	v, err := redis.Values(c.Do("ROLE"))
	if err != nil {
		var re redis.Error
		if errors.As(err, &re) && strings.HasPrefix(string(re), "NOPERM") {
			s.roleDenied.Do(func() {
				s.log.Warn("the Redis user may not run ROLE: new connections trust the Sentinels' word that they reach the master",
					"master_name", s.master)
			})
			return nil
		}
		return err
	}
	if len(v) == 0 {
		return fmt.Errorf("empty ROLE reply from %s", addr)
	}
	role, _ := redis.String(v[0], nil)
	if role != "master" {
		return fmt.Errorf("%s is a %s, not the master", addr, role)
	}
	return nil
}

// watch follows +switch-master announcements until close.
func (s *sentinel) watch() {
	defer close(s.done)
	for {
		s.mu.Lock()
		addrs := append([]string(nil), s.addrs...)
		s.mu.Unlock()
		for _, a := range addrs {
			s.watchOne(a)
			select {
			case <-s.stop:
				return
			default:
			}
		}
		select {
		case <-s.stop:
			return
		case <-time.After(sentinelRetry):
		}
	}
}

// watchOne subscribes to +switch-master on one Sentinel and follows it
// until that Sentinel fails or close.
func (s *sentinel) watchOne(addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultDialTimeout)
	c, err := redis.DialContext(ctx, "tcp", addr, s.sentinelOpts...)
	cancel()
	if err != nil {
		return
	}
	psc := redis.PubSubConn{Conn: c}
	defer psc.Close()
	if err := psc.Subscribe("+switch-master"); err != nil {
		return
	}
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		t := time.NewTicker(sentinelPing)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				psc.Close() // unblocks Receive
				return
			case <-quit:
				return
			case <-t.C:
				if psc.Ping("") != nil {
					return
				}
			}
		}
	}()
	for {
		switch v := psc.ReceiveWithTimeout(sentinelSilence).(type) {
		case redis.Subscription:
			if v.Kind == "subscribe" {
				// Catch up on what happened while nobody watched.
				ctx, cancel := context.WithTimeout(context.Background(), 3*DefaultDialTimeout)
				if _, err := s.refresh(ctx, true); err != nil {
					s.log.Warn("asking the Sentinels for the redis master", "error", err)
				}
				cancel()
			}
		case redis.Message:
			// "<master name> <old ip> <old port> <new ip> <new port>"
			f := strings.Fields(string(v.Data))
			if len(f) == 5 && f[0] == s.master {
				s.setMaster(net.JoinHostPort(f[3], f[4]), "+switch-master from Sentinel "+addr)
			}
		case redis.Pong:
		case error:
			return
		}
	}
}

// masterConn is a connection to the master of generation gen. It passes
// redigo's optional interfaces through, so that the pool's timeouts and
// contexts work as on a plain connection.
type masterConn struct {
	redis.Conn
	gen uint64
}

func (c *masterConn) DoWithTimeout(timeout time.Duration, cmd string, args ...interface{}) (interface{}, error) {
	return redis.DoWithTimeout(c.Conn, timeout, cmd, args...)
}

func (c *masterConn) ReceiveWithTimeout(timeout time.Duration) (interface{}, error) {
	return redis.ReceiveWithTimeout(c.Conn, timeout)
}

func (c *masterConn) DoContext(ctx context.Context, cmd string, args ...interface{}) (interface{}, error) {
	return redis.DoContext(c.Conn, ctx, cmd, args...)
}

func (c *masterConn) ReceiveContext(ctx context.Context) (interface{}, error) {
	return redis.ReceiveContext(c.Conn, ctx)
}

// connGen is the master generation a connection was dialed at; 0 for one
// not dialed through Sentinel.
func connGen(c redis.Conn) uint64 {
	if mc, ok := c.(*masterConn); ok {
		return mc.gen
	}
	return 0
}

// isReadOnly reports a write refused by a replica.
func isReadOnly(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.Contains(string(re), "READONLY")
}
