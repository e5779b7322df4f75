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
// or not the first run happened. A ban is a string holding the ID of the
// attempt that started it, with a PEXPIRE, or none for a ban until lifted.
// Passes are sorted sets: pass -> when it was recorded (ms).

// forever stands for a ban without expiry in the scripts' arithmetic; they
// return -1 for it.
const foreverMillis = "4611686018427387904"

// KEYS: n counters, then their n bans, then their n pass sets; ARGV: the
// attempt's ID, now (ms), then per limit its max, window ms, ban ms (0:
// until lifted), pass ("" for none) and pass TTL ms. Returns {0, 0,
// place...} when admitted, else {wait ms (-1: until lifted), 1-based index
// of the refusing limit}.
var admitScript = redis.NewScript(-1, `
local n, id, now = #KEYS / 3, ARGV[1], tonumber(ARGV[2])
local forever = tonumber('`+foreverMillis+`')
local function arg(i, k) return ARGV[2 + 5 * (i - 1) + k] end
local places, seen = {}, 0
for i = 1, n do
  local p = redis.call('HGET', KEYS[i], id)
  if p then places[i], seen = tonumber(p), seen + 1 end
end
if seen == n then return {0, 0, unpack(places)} end
local passed = {}
for i = 1, n do
  passed[i] = false
  if arg(i, 4) ~= '' then
    local at = redis.call('ZSCORE', KEYS[2 * n + i], arg(i, 4))
    passed[i] = at ~= false and tonumber(at) > now - tonumber(arg(i, 5))
  end
end
local function refuse(wait, which)
  if wait >= forever then wait = -1 end
  return {wait, which}
end
local wait, which = 0, 0
for i = 1, n do
  if not passed[i] then
    local t = redis.call('PTTL', KEYS[n + i])
    if t == -1 then t = forever end
    if t > wait then wait, which = t, i end
  end
end
if which > 0 then return refuse(wait, which) end
for i = 1, n do
  local ban = tonumber(arg(i, 3))
  if ban == 0 then ban = forever end
  if not places[i] and not passed[i] and redis.call('HLEN', KEYS[i]) >= tonumber(arg(i, 1)) and ban > wait then
    wait, which = ban, i
  end
end
if which > 0 then return refuse(wait, which) end
for i = 1, n do
  if not places[i] then
    places[i] = redis.call('HLEN', KEYS[i]) + 1
    redis.call('HSET', KEYS[i], id, places[i])
    if redis.call('PTTL', KEYS[i]) < 0 then
      redis.call('PEXPIRE', KEYS[i], arg(i, 2))
    end
  end
end
return {0, 0, unpack(places)}`)

// KEYS: n counters, then their n bans; ARGV: the attempt's ID, then per
// limit its max and ban ms (0: until lifted). Returns per limit 1 if it
// banned its key. A ban holds the ID of the attempt that started it, so
// that a retry reports it too.
var failScript = redis.NewScript(-1, `
local n, id = #KEYS / 2, ARGV[1]
local banned = {}
for i = 1, n do
  banned[i] = 0
  local p = redis.call('HGET', KEYS[i], id)
  if p and tonumber(p) >= tonumber(ARGV[2 * i]) then
    redis.call('DEL', KEYS[i])
    if ARGV[2 * i + 1] == '0' then
      redis.call('SET', KEYS[n + i], id)
    else
      redis.call('SET', KEYS[n + i], id, 'PX', ARGV[2 * i + 1])
    end
    banned[i] = 1
  elseif redis.call('GET', KEYS[n + i]) == id then
    banned[i] = 1
  end
end
return banned`)

// KEYS: n counters, then their n bans, then their n pass sets; ARGV: the
// attempt's ID, now (ms), the number of passes kept, then per counter 1
// to clear it or 0 to give back the attempt's place, the pass to record
// ("" for none: nothing else happens to the ban and the set) and its TTL
// ms.
var releaseScript = redis.NewScript(-1, `
local n, id, now, keep = #KEYS / 3, ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, n do
  local base = 3 + 3 * (i - 1)
  if ARGV[base + 1] == '1' then
    redis.call('DEL', KEYS[i])
  else
    redis.call('HDEL', KEYS[i], id)
  end
  local pass, ttl = ARGV[base + 2], tonumber(ARGV[base + 3])
  if pass ~= '' then
    local set = KEYS[2 * n + i]
    redis.call('DEL', KEYS[n + i])
    redis.call('ZADD', set, now, pass)
    redis.call('ZREMRANGEBYSCORE', set, '-inf', now - ttl)
    redis.call('ZREMRANGEBYRANK', set, 0, -(keep + 1))
    redis.call('PEXPIRE', set, ttl)
  end
end
return 0`)

// KEYS: n counters, then their n bans. Returns 1 if any ban was lifted.
var unbanScript = redis.NewScript(-1, `
local n, lifted = #KEYS / 2, 0
for i = 1, n do
  redis.call('DEL', KEYS[i])
  if redis.call('DEL', KEYS[n + i]) == 1 then lifted = 1 end
end
return lifted`)

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

// scriptKeys returns the script arguments: KEYS' count, then a key per
// limit and prefix, prefix by prefix.
func (r *Redis) scriptKeys(limits []Limit, extra int, prefixes ...string) []any {
	n := len(limits) * len(prefixes)
	args := make([]any, 0, 1+n+extra)
	args = append(args, n)
	for _, p := range prefixes {
		for _, l := range limits {
			args = append(args, r.prefix+p+l.Key)
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
	args := r.scriptKeys(limits, 2+5*len(limits), attemptPrefix, banPrefix, passPrefix)
	args = append(args, id, nowMillis())
	for _, l := range limits {
		args = append(args, l.Max, millis(l.Window), banMillis(l.Ban), l.Pass, passMillis(l))
	}
	reply, err := redis.Int64s(r.run(true, admitScript, args...))
	if err != nil {
		return nil, 0, -1, err
	}
	if len(reply) < 2 {
		return nil, 0, -1, fmt.Errorf("throttle: unexpected reply %v", reply)
	}
	if reply[1] > 0 {
		wait := time.Duration(reply[0]) * time.Millisecond
		if reply[0] < 0 {
			wait = Indefinitely
		}
		return nil, wait, int(reply[1]) - 1, nil
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
	args := r.scriptKeys(a.Limits, 1+2*len(a.Limits), attemptPrefix, banPrefix)
	args = append(args, a.ID)
	for _, l := range a.Limits {
		args = append(args, l.Max, banMillis(l.Ban))
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
	args := r.scriptKeys(a.Limits, 3+3*len(a.Limits), attemptPrefix, banPrefix, passPrefix)
	args = append(args, a.ID, nowMillis(), MaxPasses)
	for _, l := range a.Limits {
		clear, pass := 0, ""
		if success && l.ClearOnSuccess {
			clear = 1
		}
		if success {
			pass = l.Pass
		}
		args = append(args, clear, pass, passMillis(l))
	}
	_, err := r.run(true, releaseScript, args...)
	return err
}

// Unban implements Store.
func (r *Redis) Unban(keys ...string) (bool, error) {
	if len(keys) == 0 {
		return false, nil
	}
	args := make([]any, 0, 1+2*len(keys))
	args = append(args, 2*len(keys))
	for _, p := range []string{attemptPrefix, banPrefix} {
		for _, k := range keys {
			args = append(args, r.prefix+p+k)
		}
	}
	lifted, err := redis.Int(r.run(true, unbanScript, args...))
	return lifted == 1, err
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

// banMillis is millis(ban), or 0 for a ban until lifted.
func banMillis(ban time.Duration) int64 {
	if ban == 0 {
		return 0
	}
	return millis(ban)
}

// passMillis is millis(l.PassTTL), or 0 for a limit without passes.
func passMillis(l Limit) int64 {
	if l.Pass == "" {
		return 0
	}
	return millis(l.PassTTL)
}

func nowMillis() int64 { return time.Now().UnixMilli() }

// millis rounds d up to whole milliseconds, at least 1.
func millis(d time.Duration) int64 {
	return max(1, int64((d+time.Millisecond-1)/time.Millisecond))
}
