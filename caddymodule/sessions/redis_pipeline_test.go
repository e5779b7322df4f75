package sessions

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/gomodule/redigo/redis"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
)

func newPipeline(t testing.TB, pool *redis.Pool) *redisPipeline {
	t.Helper()
	p := newRedisPipeline(pool)
	if p == nil {
		t.Fatal("no pipeline for a pool with a dial function")
	}
	t.Cleanup(p.close)
	return p
}

func TestRedisPipelineGet(t *testing.T) {
	srv := testredis.Start(t)
	pool := newRedisPool(t, srv.URL(), PoolOptions{})
	p := newPipeline(t, pool)
	c := pool.Get()
	defer c.Close()
	if _, err := c.Do("SET", srv.Prefix+"k", "v"); err != nil {
		t.Fatal(err)
	}
	if b, err := p.get(srv.Prefix + "k"); err != nil || string(b) != "v" {
		t.Fatalf("get = %q, %v", b, err)
	}
	if b, err := p.get(srv.Prefix + "missing"); !errors.Is(err, redis.ErrNil) || b != nil {
		t.Fatalf("get(missing) = %q, %v; want ErrNil", b, err)
	}
	// An error reply is an error, and the connection stays usable.
	if _, err := c.Do("HSET", srv.Prefix+"h", "f", "v"); err != nil {
		t.Fatal(err)
	}
	var rerr redis.Error
	if _, err := p.get(srv.Prefix + "h"); !errors.As(err, &rerr) {
		t.Fatalf("get(hash) err = %v, want a WRONGTYPE reply", err)
	}
	first := p.cur.Load()
	if b, err := p.get(srv.Prefix + "k"); err != nil || string(b) != "v" {
		t.Fatalf("get after error reply = %q, %v", b, err)
	}
	if p.cur.Load() != first {
		t.Error("an error reply replaced the connection")
	}
}

func TestNewRedisPipelineWithoutDial(t *testing.T) {
	if p := newRedisPipeline(&redis.Pool{}); p != nil {
		t.Fatal("pipeline for a pool that cannot dial")
	}
}

// Run with -race: many goroutines, each reading its own key, get their own
// value back in every interleaving.
func TestRedisPipelineConcurrent(t *testing.T) {
	srv := testredis.Start(t)
	pool := newRedisPool(t, srv.URL(), PoolOptions{})
	p := newPipeline(t, pool)
	const keys = 50
	c := pool.Get()
	for i := range keys {
		if _, err := c.Do("SET", fmt.Sprint(srv.Prefix, i), fmt.Sprint("value-", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for g := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 200 {
				i := (g + n) % keys
				b, err := p.get(fmt.Sprint(srv.Prefix, i))
				if want := fmt.Sprint("value-", i); err != nil || string(b) != want {
					errs <- fmt.Errorf("get key %d = %q, %v; want %q", i, b, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Error replies in the middle of concurrent batches keep every reply
// matched to its request.
func TestRedisPipelineConcurrentErrorReplies(t *testing.T) {
	srv := testredis.Start(t)
	pool := newRedisPool(t, srv.URL(), PoolOptions{})
	p := newPipeline(t, pool)
	const keys = 40
	c := pool.Get()
	for i := range keys {
		var err error
		if i%2 == 0 {
			_, err = c.Do("SET", fmt.Sprint(srv.Prefix, i), fmt.Sprint("value-", i))
		} else {
			_, err = c.Do("HSET", fmt.Sprint(srv.Prefix, i), "f", "v") // GET: WRONGTYPE
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 300 {
				i := (g*7 + n) % (keys + 2) // keys and keys+1 do not exist
				b, err := p.get(fmt.Sprint(srv.Prefix, i))
				var rerr redis.Error
				switch {
				case i >= keys:
					if !errors.Is(err, redis.ErrNil) {
						t.Errorf("get missing key %d = %q, %v", i, b, err)
						return
					}
				case i%2 == 1:
					if !errors.As(err, &rerr) {
						t.Errorf("get hash key %d = %q, %v; want WRONGTYPE", i, b, err)
						return
					}
				default:
					if want := fmt.Sprint("value-", i); err != nil || string(b) != want {
						t.Errorf("get key %d = %q, %v; want %q", i, b, err, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// A restart under concurrent load: every read ends, with the right value,
// a miss (the data went with the restart) or a broken-connection error;
// none hangs or gets another key's value.
func TestRedisPipelineRestartUnderLoad(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: cannot restart it")
	}
	pool := newRedisPool(t, srv.URL(), PoolOptions{})
	p := newPipeline(t, pool)
	c := pool.Get()
	for i := range 10 {
		if _, err := c.Do("SET", fmt.Sprint(srv.Prefix, i), fmt.Sprint("value-", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	var wg sync.WaitGroup
	var gets atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 200 {
				gets.Add(1)
				i := (g + n) % 10
				b, err := p.get(fmt.Sprint(srv.Prefix, i))
				switch {
				case err == nil:
					if want := fmt.Sprint("value-", i); string(b) != want {
						t.Errorf("get key %d = %q, want %q", i, b, want)
						return
					}
				case errors.Is(err, redis.ErrNil), brokenConn(err):
				default:
					t.Errorf("get key %d: unexpected error %v", i, err)
					return
				}
			}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); gets.Load() < 500 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	srv.Restart() // from the test's goroutine, as testredis requires
	wg.Wait()
	if _, err := p.get(srv.Prefix + "0"); !errors.Is(err, redis.ErrNil) {
		t.Fatalf("get after the restart = %v, want ErrNil", err)
	}
}

// A Redis restart fails the reads in flight on the old connection with a
// broken-connection error (which RedisClient retries), and the next read
// dials a new one.
func TestRedisPipelineRedialsAfterRestart(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: cannot restart it")
	}
	pool := newRedisPool(t, srv.URL(), PoolOptions{})
	p := newPipeline(t, pool)
	if _, err := p.get(srv.Prefix + "k"); !errors.Is(err, redis.ErrNil) {
		t.Fatalf("get = %v", err)
	}
	srv.Restart()
	_, err := p.get(srv.Prefix + "k")
	if err != nil && !brokenConn(err) {
		t.Fatalf("first get after restart: %v, not a broken-connection error", err)
	}
	if _, err := p.get(srv.Prefix + "k"); !errors.Is(err, redis.ErrNil) {
		t.Fatalf("second get after restart = %v, want ErrNil", err)
	}
}

// Through NewRedisStore (with RedisClient's retry), a restart costs no
// failed Find at all.
func TestRedisStoreFindAfterRestart(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: cannot restart it")
	}
	store := NewRedisStore(NewRedisClient(newRedisPool(t, srv.URL(), PoolOptions{})), srv.Prefix, 0)
	if _, found, err := store.Find("t"); err != nil || found {
		t.Fatalf("Find = %v, %v", found, err)
	}
	srv.Restart()
	if _, found, err := store.Find("t"); err != nil || found {
		t.Fatalf("first Find after restart = %v, %v", found, err)
	}
	if err := store.Commit("t", []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b, found, err := store.Find("t"); err != nil || !found || string(b) != "x" {
		t.Fatalf("Find = %q, %v, %v", b, found, err)
	}
}

func TestRedisPipelineWhileDown(t *testing.T) {
	srv := testredis.Start(t)
	if !srv.Private() {
		t.Skip("external Redis: cannot stop it")
	}
	p := newPipeline(t, newRedisPool(t, srv.URL(), PoolOptions{}))
	srv.Stop()
	for i := range 3 {
		if _, err := p.get(srv.Prefix + "k"); err == nil {
			t.Fatalf("get %d succeeded with Redis down", i)
		}
	}
	srv.Restart()
	if _, err := p.get(srv.Prefix + "k"); !errors.Is(err, redis.ErrNil) {
		t.Fatalf("get after Redis came back = %v", err)
	}
}

// An unused connection closes itself; the next read dials again.
func TestRedisPipelineIdleClose(t *testing.T) {
	srv := testredis.Start(t)
	p := newPipeline(t, newRedisPool(t, srv.URL(), PoolOptions{}))
	p.idleTimeout = 20 * time.Millisecond
	if _, err := p.get(srv.Prefix + "k"); !errors.Is(err, redis.ErrNil) {
		t.Fatal(err)
	}
	first := p.cur.Load()
	deadline := time.Now().Add(5 * time.Second)
	for !first.broken.Load() {
		if time.Now().After(deadline) {
			t.Fatal("idle connection not closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := first.c.Err(); err == nil {
		t.Fatal("idle connection marked broken but not closed")
	}
	if _, err := p.get(srv.Prefix + "k"); !errors.Is(err, redis.ErrNil) {
		t.Fatalf("get after idle close = %v", err)
	}
	if p.cur.Load() == first {
		t.Fatal("no new connection after idle close")
	}
}

// BenchmarkRedisFind compares the session read over the pipeline with
// redisstore's (a pooled connection per read): one at a time (latency), and
// from GOMAXPROCS×1 and GOMAXPROCS×16 goroutines (throughput).
func BenchmarkRedisFind(b *testing.B) {
	srv := testredis.Start(b)
	pool, err := NewRedisPool(srv.URL(), PoolOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	data, _ := Codec{}.Encode(time.Now().Add(time.Hour), authSession())
	token := fmt.Sprintf("%043d", 1)
	if err := redisstore.NewWithPrefix(pool, srv.Prefix).Commit(token, data, time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	p := newPipeline(b, pool)
	for _, bc := range []struct {
		name string
		find func() ([]byte, error)
	}{
		{"redisstore", func() ([]byte, error) {
			b, _, err := redisstore.NewWithPrefix(pool, srv.Prefix).Find(token)
			return b, err
		}},
		{"pipeline", func() ([]byte, error) { return p.get(srv.Prefix + token) }},
	} {
		b.Run(bc.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if v, err := bc.find(); err != nil || len(v) == 0 {
					b.Fatal(err)
				}
			}
		})
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", bc.name, par), func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(par)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if v, err := bc.find(); err != nil || len(v) == 0 {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}
