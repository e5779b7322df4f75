package passwords

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Hasher hashes and verifies passwords with argon2id, bounding concurrent work.
//
// Each argon2 computation holds its hash's memory (m KiB) for its duration,
// so a login flood could otherwise exhaust memory. The bound is weighted by
// memory: h has maxConcurrent slots, and a computation takes one slot per
// Params.Memory KiB it allocates (rounded up; at least one, so pbkdf2 and
// bcrypt checks take one each and their CPU is bounded too; an imported
// argon2 hash dearer than the whole bound takes every slot and runs alone).
// The rest wait their turn or give up when their context ends. Peak argon2
// memory is therefore about maxConcurrent × Params.Memory, whatever the
// imported hashes ask for (up to MaxArgon2Memory).
//
// A Hasher is safe for concurrent use.
type Hasher struct {
	params Params
	slots  *Slots
	// dummy is a well-formed hash with h's params that no password matches,
	// verified by VerifyDummy to spend the same time as a real check.
	dummy    string
	observer atomic.Pointer[func(time.Duration)]
	waited   atomic.Pointer[func(time.Duration)] // wait.go
	// inSlot, if set by tests, runs while a computation holds a slot.
	inSlot func()

	costMu sync.Mutex
	costs  map[string]checkCost // by kind of hash (parsed.kind)
}

// checkCost is how long checks of one kind take: a running average and
// mean deviation.
type checkCost struct{ avg, dev time.Duration }

// checker does the expensive part of verifying one parsed hash.
type checker func(password string) (bool, error)

// NewHasher returns a Hasher producing argon2id hashes with p. Zero fields of
// p take DefaultParams' values. maxConcurrent <= 0 means runtime.NumCPU().
// NewHasher panics if p is invalid; check configuration with
// [Params.Validate] first.
func NewHasher(p Params, maxConcurrent int) *Hasher {
	p = p.withDefaults()
	if err := p.check(); err != nil {
		panic("passwords: NewHasher: " + err.Error())
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.NumCPU()
	}
	dummy := &argon2Hash{
		variant: "argon2id",
		params:  p,
		salt:    randomBytes(p.SaltLen),
		// A random key: the chance that any password derives it is
		// 2^-(8*KeyLen).
		key: randomBytes(p.KeyLen),
	}
	return &Hasher{
		params: p,
		slots:  NewSlots(maxConcurrent),
		dummy:  dummy.String(),
	}
}

// Params returns the parameters h hashes with (after defaults were applied).
func (h *Hasher) Params() Params { return h.params }

// Slots returns the semaphore that bounds h's computations: its limit can
// be changed while h is in use.
func (h *Hasher) Slots() *Slots { return h.slots }

// SetObserver registers fn to be called with the duration of each hash or
// verification, excluding time spent waiting for a slot (feed it to a
// histogram). A nil fn removes the observer. Safe to call at any time.
func (h *Hasher) SetObserver(fn func(d time.Duration)) {
	if fn == nil {
		h.observer.Store(nil)
		return
	}
	h.observer.Store(&fn)
}

// Hash returns an argon2id PHC string for password with h's params, e.g.
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key> with unpadded standard base64,
// as Django/argon2-cffi write it. It fails only if ctx ends while waiting
// for a slot.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	a := &argon2Hash{variant: "argon2id", params: h.params, salt: randomBytes(h.params.SaltLen)}
	if _, err := h.run(ctx, 1, func() { a.key = a.derive(password) }); err != nil {
		return "", err
	}
	return a.String(), nil
}

// Verify checks password against encoded (argon2id PHC as above, plus Django formats below).
// ok reports a match; needsRehash is true when ok and the hash is not argon2id with h's current params.
// Unknown or malformed formats return ok=false, err=ErrUnknownFormat (or a descriptive error), never panic.
//
// Accepted formats: argon2id and argon2i PHC strings (v=19), and Django's
// pbkdf2_sha256, pbkdf2_sha1, argon2 (argon2id/argon2i), bcrypt_sha256 and
// bcrypt. Django hashes always need a rehash. Django's unusable-password
// marker ("!...") gives ErrUnusablePassword. Errors wrap ErrUnknownFormat or
// ErrMalformedHash, or are ctx.Err() if ctx ends while waiting for a slot.
//
// Like Django's check_password, Verify does dummy work when encoded cannot
// be checked, so that a user with an unusable or corrupt hash cannot be told
// apart by timing from one with a wrong password. And every check (Verify
// and VerifyDummy alike) lasts at least as long as the dearest kind of hash
// (scheme and cost) h has checked so far usually takes (see pad; up to
// maxPad), so that neither an unknown user nor the user
// of any one kind (say an imported pbkdf2_sha256 hash at Django's 600,000
// iterations and more, several times argon2's cost) is told apart by
// timing. The time added is spent asleep, holding no slot.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok bool, needsRehash bool, err error) {
	p, err := h.parse(encoded)
	if err != nil {
		h.VerifyDummy(ctx, password)
		return false, false, err
	}
	var checkErr error
	work, err := h.run(ctx, h.units(p.memory), func() { ok, checkErr = p.check(password) })
	if err != nil {
		return false, false, err
	}
	h.pad(ctx, p.kind, work)
	if checkErr != nil {
		return false, false, checkErr
	}
	return ok, ok && !p.current, nil
}

// VerifyDummy does the same work as verifying against a real hash with h's params and returns false,
// so that login for an unknown user costs the same time as a wrong password for a known one
// (padded like Verify's checks to the dearest kind h has checked).
// It returns early, without the work, if ctx ends while waiting for a slot.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) {
	// Go through the same parse-and-check path as Verify.
	p, err := h.parse(h.dummy)
	if err != nil {
		panic("passwords: dummy hash does not parse: " + err.Error()) // unreachable
	}
	work, err := h.run(ctx, h.units(p.memory), func() { _, _ = p.check(password) })
	if err == nil {
		h.pad(ctx, p.kind, work)
	}
}

// parsed is a hash ready to check.
type parsed struct {
	check checker
	// current reports whether the hash is argon2id with exactly h's params.
	current bool
	// memory is what one check allocates, in KiB (argon2's m; 0 for the
	// others, whose memory is negligible).
	memory uint32
	// kind is the scheme and its cost parameters: hashes of one kind take
	// the same time to check.
	kind string
}

// parsed returns a's checker and kind; current as the caller found it.
func (a *argon2Hash) parsed(current bool) parsed {
	p := a.params
	return parsed{check: a.check, current: current, memory: p.Memory,
		kind: a.variant + "$" + strconv.FormatUint(uint64(p.Memory), 10) + "," + strconv.FormatUint(uint64(p.Time), 10) +
			"," + strconv.FormatUint(uint64(p.Threads), 10) + "," + strconv.FormatUint(uint64(p.KeyLen), 10)}
}

// parse identifies encoded's format and returns it ready to check.
func (h *Hasher) parse(encoded string) (parsed, error) {
	switch {
	case strings.HasPrefix(encoded, "$"):
		a, err := parseArgon2(encoded)
		if err != nil {
			return parsed{}, err
		}
		return a.parsed(a.variant == "argon2id" && a.params == h.params), nil
	case strings.HasPrefix(encoded, djangoUnusablePrefix):
		return parsed{}, ErrUnusablePassword
	}
	return parseDjango(encoded)
}

// check reports whether password derives a's key.
func (a *argon2Hash) check(password string) (bool, error) {
	return subtle.ConstantTimeCompare(a.derive(password), a.key) == 1, nil
}

// units is the number of slots a computation allocating memory KiB takes:
// one per h's own Params.Memory (rounded up), at least one. So the slots
// bound argon2's memory (at most the limit × h's Params.Memory, or one
// computation alone if dearer than that), and every computation's CPU.
func (h *Hasher) units(memory uint32) int {
	unit := uint64(h.params.Memory)
	return int(max(1, (uint64(memory)+unit-1)/unit))
}

// run does work while holding units of h's slots, waiting for them unless
// ctx ends first (the wait is observed), and returns how long the work took.
func (h *Hasher) run(ctx context.Context, units int, work func()) (time.Duration, error) {
	asked := time.Now()
	held, err := h.slots.AcquireN(ctx, units)
	h.observeWait(time.Since(asked))
	if err != nil {
		return 0, err
	}
	defer h.slots.ReleaseN(held)

	start := time.Now()
	if h.inSlot != nil {
		h.inSlot()
	}
	work()
	d := time.Since(start)
	if fn := h.observer.Load(); fn != nil {
		(*fn)(d)
	}
	return d, nil
}

// ForgetCosts forgets the check times h has learnt, so that checks are
// padded again only to the kinds checked from now on (for tests; or once
// no hash of a dear kind is left).
func (h *Hasher) ForgetCosts() {
	h.costMu.Lock()
	h.costs = nil
	h.costMu.Unlock()
}

// maxPad caps the time checks are padded to: a stored hash of a pathological
// cost (pbkdf2 at millions of iterations, bcrypt at cost 16) stands out
// rather than slowing every login to its time.
const maxPad = 3 * time.Second

// padReserve is how much of its context's time a padded check leaves the
// caller.
const padReserve = time.Second

// maxKinds bounds the kinds of hash whose cost h remembers (stored hashes
// are data: a users table may hold many).
const maxKinds = 64

// pad records that a check of kind took work, then sleeps (holding no slot)
// until the check has lasted as long as the dearest kind usually takes,
// unless ctx ends first. "Usually" is as TCP estimates a round trip: a
// running average plus twice the running mean deviation, so that even the
// dearest kind's checks are padded almost always, whatever the load.
func (h *Hasher) pad(ctx context.Context, kind string, work time.Duration) {
	h.costMu.Lock()
	if h.costs == nil {
		h.costs = make(map[string]checkCost)
	}
	c, seen := h.costs[kind]
	if seen {
		diff := work - c.avg
		c.avg += diff / 8
		c.dev += (max(diff, -diff) - c.dev) / 4
	} else {
		c = checkCost{avg: work, dev: work / 4}
	}
	if seen || len(h.costs) < maxKinds {
		h.costs[kind] = c
	}
	floor := time.Duration(0)
	for _, c := range h.costs {
		floor = max(floor, c.avg+2*c.dev)
	}
	floor = min(floor, maxPad)
	h.costMu.Unlock()
	wait := floor - work
	if dl, ok := ctx.Deadline(); ok {
		// Leave the caller time for what follows the check (a login's
		// store write) within its deadline: near it, timing is the
		// queue's anyway.
		wait = min(wait, time.Until(dl)-padReserve)
	}
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// randomBytes returns n bytes from crypto/rand.
func randomBytes(n uint32) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand.Read is documented never to fail (Go 1.24+).
		panic(fmt.Sprintf("passwords: crypto/rand: %v", err))
	}
	return b
}
