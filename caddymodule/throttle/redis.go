package throttle

import (
	"time"

	"github.com/gomodule/redigo/redis"
)

// Redis is a Store in Redis, so that every instance behind a load balancer
// sees the same counts. Each operation is one atomic Lua script (one round
// trip); counters carry a PEXPIRE so Redis drops them by itself.
type Redis struct {
	pool   *redis.Pool
	prefix string
	retry  func(op func() error) error
}

var _ Store = (*Redis)(nil)

// NewRedis returns a store keeping its keys under prefix in the Redis of
// pool. retry, if not nil, runs each operation (e.g. retrying once on a
// broken pooled connection); nil runs it once.
func NewRedis(pool *redis.Pool, prefix string, retry func(op func() error) error) *Redis {
	if retry == nil {
		retry = func(op func() error) error { return op() }
	}
	return &Redis{pool: pool, prefix: prefix, retry: retry}
}

// KEYS[i]: ban keys. Returns {the longest PTTL in milliseconds, its
// 1-based index}, or {0, 0} when none is banned.
var bannedScript = redis.NewScript(-1, `
local longest, which = 0, 0
for i, k in ipairs(KEYS) do
  local t = redis.call('PTTL', k)
  if t > longest then longest, which = t, i end
end
return {longest, which}`)

// KEYS[1]: failure counter, KEYS[2]: ban; ARGV: limit, window ms, ban ms.
// Returns the ban started in milliseconds (0: none).
var failScript = redis.NewScript(2, `
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if n >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return tonumber(ARGV[3])
end
return 0`)

// KEYS[1]: event counter; ARGV: limit, window ms. Returns 0 within the
// limit, else the window's remaining milliseconds.
var takeScript = redis.NewScript(1, `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
if n > tonumber(ARGV[1]) then
  return ttl
end
return 0`)

// do runs script on a pooled connection, through r.retry.
func (r *Redis) do(script *redis.Script, args ...any) (time.Duration, error) {
	var ms int64
	err := r.retry(func() error {
		conn := r.pool.Get()
		defer conn.Close()
		var err error
		ms, err = redis.Int64(script.Do(conn, args...))
		return err
	})
	if err != nil {
		return 0, err
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Banned implements Store.
func (r *Redis) Banned(keys ...string) (time.Duration, int, error) {
	if len(keys) == 0 {
		return 0, -1, nil
	}
	args := make([]any, 0, len(keys)+1)
	args = append(args, len(keys))
	for _, k := range keys {
		args = append(args, r.prefix+banPrefix+k)
	}
	var reply []int64
	err := r.retry(func() error {
		conn := r.pool.Get()
		defer conn.Close()
		var err error
		reply, err = redis.Int64s(bannedScript.Do(conn, args...))
		return err
	})
	if err != nil {
		return 0, -1, err
	}
	if len(reply) != 2 || reply[0] <= 0 {
		return 0, -1, nil
	}
	return time.Duration(reply[0]) * time.Millisecond, int(reply[1]) - 1, nil
}

// Fail implements Store.
func (r *Redis) Fail(key string, limit int, window, ban time.Duration) (time.Duration, error) {
	if err := checkArgs(limit, window, ban); err != nil {
		return 0, err
	}
	return r.do(failScript, r.prefix+failPrefix+key, r.prefix+banPrefix+key,
		limit, millis(window), millis(ban))
}

// Forget implements Store.
func (r *Redis) Forget(key string) error {
	return r.retry(func() error {
		conn := r.pool.Get()
		defer conn.Close()
		_, err := conn.Do("DEL", r.prefix+failPrefix+key)
		return err
	})
}

// Take implements Store.
func (r *Redis) Take(key string, limit int, window time.Duration) (time.Duration, error) {
	if err := checkArgs(limit, window); err != nil {
		return 0, err
	}
	return r.do(takeScript, r.prefix+takePrefix+key, limit, millis(window))
}

// millis rounds d up to whole milliseconds, at least 1.
func millis(d time.Duration) int64 {
	return max(1, int64((d+time.Millisecond-1)/time.Millisecond))
}
