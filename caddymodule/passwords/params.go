package passwords

import "fmt"

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // memory in KiB
	Time    uint32 // number of passes over the memory
	Threads uint8  // degree of parallelism
	SaltLen uint32 // salt length in bytes
	KeyLen  uint32 // derived key length in bytes
}

// DefaultParams is OWASP's minimum recommendation for argon2id
// (19 MiB, 2 passes, 1 lane).
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds on cost parameters. They apply to our own [Params] and to every hash
// parsed by [Hasher.Verify]: a stored hash is data, and a hostile or corrupt
// one must not be able to make a single verification take minutes or
// allocate unbounded memory.
const (
	MaxArgon2Memory     = 1 << 20 // KiB, i.e. 1 GiB
	MaxArgon2Time       = 32
	MaxPBKDF2Iterations = 10_000_000
	MaxBcryptCost       = 16 // Django's default is 12; each step doubles the work

	// Argon2 specification minimums (RFC 9106 §3.1).
	minArgon2SaltLen = 8
	minArgon2KeyLen  = 4
	// Nothing legitimate comes close; this just bounds allocations.
	maxArgon2SaltLen = 1024
	maxArgon2KeyLen  = 1024
)

// withDefaults returns p with every zero field replaced by DefaultParams'.
func (p Params) withDefaults() Params {
	if p.Memory == 0 {
		p.Memory = DefaultParams.Memory
	}
	if p.Time == 0 {
		p.Time = DefaultParams.Time
	}
	if p.Threads == 0 {
		p.Threads = DefaultParams.Threads
	}
	if p.SaltLen == 0 {
		p.SaltLen = DefaultParams.SaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = DefaultParams.KeyLen
	}
	return p
}

// Validate reports whether p, after zero fields are replaced by
// DefaultParams' values, is usable by [NewHasher]. Call it when loading
// configuration, since NewHasher panics on invalid parameters.
func (p Params) Validate() error {
	return p.withDefaults().check()
}

// check validates fully populated parameters; it is shared with the parser
// so that whatever we can produce we can also verify.
func (p Params) check() error {
	switch {
	case p.Threads < 1:
		return fmt.Errorf("argon2 parallelism must be at least 1")
	case p.Memory < 8*uint32(p.Threads):
		// RFC 9106: at least 8 KiB per lane.
		return fmt.Errorf("argon2 memory %d KiB is below 8 KiB per lane", p.Memory)
	case p.Memory > MaxArgon2Memory:
		return fmt.Errorf("argon2 memory %d KiB exceeds the %d KiB limit", p.Memory, MaxArgon2Memory)
	case p.Time < 1 || p.Time > MaxArgon2Time:
		return fmt.Errorf("argon2 time %d is outside 1..%d", p.Time, MaxArgon2Time)
	case p.SaltLen < minArgon2SaltLen || p.SaltLen > maxArgon2SaltLen:
		return fmt.Errorf("argon2 salt length %d is outside %d..%d bytes", p.SaltLen, minArgon2SaltLen, maxArgon2SaltLen)
	case p.KeyLen < minArgon2KeyLen || p.KeyLen > maxArgon2KeyLen:
		return fmt.Errorf("argon2 key length %d is outside %d..%d bytes", p.KeyLen, minArgon2KeyLen, maxArgon2KeyLen)
	}
	return nil
}
