package passwords

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
)

// Hasher hashes and verifies passwords with argon2id, bounding concurrent work.
//
// Each argon2 computation holds Params.Memory KiB for its duration, so a
// login flood could otherwise exhaust memory; at most maxConcurrent
// computations (hashes, verifications, dummy verifications) run at once and
// the rest wait their turn or give up when their context ends. Peak memory
// is therefore about maxConcurrent × the largest Memory among the hashes
// being verified (our own Params, or up to MaxArgon2Memory for imported
// hashes).
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
}

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
	if err := h.run(ctx, func() { a.key = a.derive(password) }); err != nil {
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
// apart by timing from one with a wrong password.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok bool, needsRehash bool, err error) {
	check, current, err := h.parse(encoded)
	if err != nil {
		h.VerifyDummy(ctx, password)
		return false, false, err
	}
	var checkErr error
	if err := h.run(ctx, func() { ok, checkErr = check(password) }); err != nil {
		return false, false, err
	}
	if checkErr != nil {
		return false, false, checkErr
	}
	return ok, ok && !current, nil
}

// VerifyDummy does the same work as verifying against a real hash with h's params and returns false,
// so that login for an unknown user costs the same time as a wrong password for a known one.
// It returns early, without the work, if ctx ends while waiting for a slot.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) {
	// Go through the same parse-and-check path as Verify.
	check, _, err := h.parse(h.dummy)
	if err != nil {
		panic("passwords: dummy hash does not parse: " + err.Error()) // unreachable
	}
	_ = h.run(ctx, func() { _, _ = check(password) })
}

// parse identifies encoded's format and returns its checker; current
// reports whether encoded is argon2id with exactly h's params.
func (h *Hasher) parse(encoded string) (check checker, current bool, err error) {
	switch {
	case strings.HasPrefix(encoded, "$"):
		a, err := parseArgon2(encoded)
		if err != nil {
			return nil, false, err
		}
		return a.check, a.variant == "argon2id" && a.params == h.params, nil
	case strings.HasPrefix(encoded, djangoUnusablePrefix):
		return nil, false, ErrUnusablePassword
	}
	check, err = parseDjango(encoded)
	return check, false, err
}

// check reports whether password derives a's key.
func (a *argon2Hash) check(password string) (bool, error) {
	return subtle.ConstantTimeCompare(a.derive(password), a.key) == 1, nil
}

// run does work while holding one of h's slots, waiting for a free slot
// unless ctx ends first.
func (h *Hasher) run(ctx context.Context, work func()) error {
	asked := time.Now()
	err := h.slots.Acquire(ctx)
	h.observeWait(time.Since(asked))
	if err != nil {
		return err
	}
	defer h.slots.Release()

	start := time.Now()
	if h.inSlot != nil {
		h.inSlot()
	}
	work()
	if fn := h.observer.Load(); fn != nil {
		(*fn)(time.Since(start))
	}
	return nil
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
