package throttle

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Redis is a Store in Redis, so that every instance behind a load balancer
// sees the same counts. Each operation is one atomic Lua script (one round
// trip); counters and bans carry a PEXPIRE so Redis drops them by itself.
type Redis struct {
	pool   *redis.Pool
	prefix string
	retry  func(op func() error) error
}

var _ Store = (*Redis)(nil)

// NewRedis returns a store keeping its keys under prefix in the Redis of
// pool. retry, if not nil, runs each idempotent operation (e.g. retrying
// once on a broken pooled connection): Admit, Fail, Succeed and Cancel,
// which act once per attempt ID however often they run. Take is not
// idempotent and always runs once. nil runs every operation once.
func NewRedis(pool *redis.Pool, prefix string, retry func(op func() error) error) *Redis {
	if retry == nil {
		retry = func(op func() error) error { return op() }
	}
	return &Redis{pool: pool, prefix: prefix, retry: retry}
}

// Attempt counters are hashes: attempt ID -> its place. A place is taken
// only once per ID, and given back or cleared by ID, so that every attempt
// script may be retried on another connection after a broken one, whether
// or not the first run happened.

// KEYS: n counters, then their n bans; ARGV: the attempt's ID, then per
// limit its max, window ms and ban ms. Returns {0, 0, place...} when
// admitted, else {wait ms, 1-based index of the refusing limit}.
var admitScript = redis.NewScript(-1, `
local n, id = #KEYS / 2, ARGV[1]
local places, seen = {}, 0
for i = 1, n do
  local p = redis.call('HGET', KEYS[i], id)
  if p then places[i], seen = tonumber(p), seen + 1 end
end
if seen == n then return {0, 0, unpack(places)} end
local wait, which = 0, 0
for i = 1, n do
  local t = redis.call('PTTL', KEYS[n + i])
  if t > wait then wait, which = t, i end
end
if which > 0 then return {wait, which} end
for i = 1, n do
  local ban = tonumber(ARGV[3 * i + 1])
  if not places[i] and redis.call('HLEN', KEYS[i]) >= tonumber(ARGV[3 * i - 1]) and ban > wait then
    wait, which = ban, i
  end
end
if which > 0 then return {wait, which} end
for i = 1, n do
  if not places[i] then
    places[i] = redis.call('HLEN', KEYS[i]) + 1
    redis.call('HSET', KEYS[i], id, places[i])
    if redis.call('PTTL', KEYS[i]) < 0 then
      redis.call('PEXPIRE', KEYS[i], ARGV[3 * i])
    end
  end
end
return {0, 0, unpack(places)}`)

// KEYS: n counters, then their n bans; ARGV: the attempt's ID, then per
// limit its max and ban ms. Returns per limit 1 if it banned its key. A ban
// holds the ID of the attempt that started it, so that a retry reports it
// too.
var failScript = redis.NewScript(-1, `
local n, id = #KEYS / 2, ARGV[1]
local banned = {}
for i = 1, n do
  banned[i] = 0
  local p = redis.call('HGET', KEYS[i], id)
  if p and tonumber(p) >= tonumber(ARGV[2 * i]) then
    redis.call('DEL', KEYS[i])
    redis.call('SET', KEYS[n + i], id, 'PX', ARGV[2 * i + 1])
    banned[i] = 1
  elseif redis.call('GET', KEYS[n + i]) == id then
    banned[i] = 1
  end
end
return banned`)

// KEYS: counters; ARGV: the attempt's ID, then per counter 1 to clear it
// or 0 to give back the attempt's place.
var releaseScript = redis.NewScript(-1, `
for i, k in ipairs(KEYS) do
  if ARGV[i + 1] == '1' then
    redis.call('DEL', k)
  else
    redis.call('HDEL', k, ARGV[1])
  end
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

// run runs script once on a pooled connection; retried, through r.retry,
// only if idempotent.
func (r *Redis) run(idempotent bool, script *redis.Script, args ...any) (reply any, err error) {
	op := func() error {
		conn := r.pool.Get()
		defer conn.Close()
		reply, err = script.Do(conn, args...)
		return err
	}
	if idempotent {
		return reply, r.retry(op)
	}
	return reply, op()
}

// attemptKeys returns the script arguments: KEYS' count, limits' counters,
// then (with bans) their bans.
func (r *Redis) attemptKeys(limits []Limit, bans bool, extra int) []any {
	n := len(limits)
	if bans {
		n *= 2
	}
	args := make([]any, 0, 1+n+extra)
	args = append(args, n)
	for _, l := range limits {
		args = append(args, r.prefix+attemptPrefix+l.Key)
	}
	if bans {
		for _, l := range limits {
			args = append(args, r.prefix+banPrefix+l.Key)
		}
	}
	return args
}

// Admit implements Store.
func (r *Redis) Admit(limits ...Limit) (*Attempt, time.Duration, int, error) {
	if err := checkLimits(limits); err != nil {
		return nil, 0, -1, err
	}
	id, err := newID()
	if err != nil {
		return nil, 0, -1, err
	}
	args := r.attemptKeys(limits, true, 1+3*len(limits))
	args = append(args, id)
	for _, l := range limits {
		args = append(args, l.Max, millis(l.Window), millis(l.Ban))
	}
	reply, err := redis.Int64s(r.run(true, admitScript, args...))
	if err != nil {
		return nil, 0, -1, err
	}
	if len(reply) < 2 {
		return nil, 0, -1, fmt.Errorf("throttle: unexpected reply %v", reply)
	}
	if reply[1] > 0 {
		return nil, time.Duration(reply[0]) * time.Millisecond, int(reply[1]) - 1, nil
	}
	if len(reply) != 2+len(limits) {
		return nil, 0, -1, fmt.Errorf("throttle: unexpected reply %v", reply)
	}
	a := &Attempt{ID: id, Limits: limits, Slots: make([]int, len(limits))}
	for i, p := range reply[2:] {
		a.Slots[i] = int(p)
	}
	return a, 0, -1, nil
}

// Fail implements Store.
func (r *Redis) Fail(a *Attempt) ([]bool, error) {
	banned := make([]bool, len(a.Limits))
	if !a.anyLast() { // nothing can be banned: spare the round trip
		return banned, nil
	}
	args := r.attemptKeys(a.Limits, true, 1+2*len(a.Limits))
	args = append(args, a.ID)
	for _, l := range a.Limits {
		args = append(args, l.Max, millis(l.Ban))
	}
	reply, err := redis.Int64s(r.run(true, failScript, args...))
	if err != nil {
		return banned, err
	}
	for i := range min(len(reply), len(banned)) {
		banned[i] = reply[i] == 1
	}
	return banned, nil
}

// Succeed implements Store.
func (r *Redis) Succeed(a *Attempt) error { return r.release(a, true) }

// Cancel implements Store.
func (r *Redis) Cancel(a *Attempt) error { return r.release(a, false) }

func (r *Redis) release(a *Attempt, success bool) error {
	args := r.attemptKeys(a.Limits, false, 1+len(a.Limits))
	args = append(args, a.ID)
	for _, l := range a.Limits {
		clear := 0
		if success && l.ClearOnSuccess {
			clear = 1
		}
		args = append(args, clear)
	}
	_, err := r.run(true, releaseScript, args...)
	return err
}

// Take implements Store.
func (r *Redis) Take(key string, limit int, window time.Duration) (time.Duration, error) {
	if err := checkArgs(limit, window); err != nil {
		return 0, err
	}
	// Not retried: INCR is not idempotent, and a script that ran before
	// its connection broke would count twice.
	ms, err := redis.Int64(r.run(false, takeScript, r.prefix+takePrefix+key, limit, millis(window)))
	if err != nil {
		return 0, err
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// newID returns a random attempt ID, unique across instances.
func newID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// millis rounds d up to whole milliseconds, at least 1.
func millis(d time.Duration) int64 {
	return max(1, int64((d+time.Millisecond-1)/time.Millisecond))
}
