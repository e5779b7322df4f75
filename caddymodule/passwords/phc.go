package passwords

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2Hash is a parsed argon2 PHC string,
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>, as written by argon2-cffi,
// the reference implementation and Hasher.Hash.
type argon2Hash struct {
	variant string // "argon2id" or "argon2i"
	params  Params // SaltLen and KeyLen are those of salt and key
	salt    []byte
	key     []byte
}

// argon2Version is the only version golang.org/x/crypto/argon2 implements
// (0x13, written "v=19").
const argon2Version = 19

// String encodes a in the PHC format.
func (a *argon2Hash) String() string {
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s",
		a.variant, argon2Version, a.params.Memory, a.params.Time, a.params.Threads,
		base64.RawStdEncoding.EncodeToString(a.salt),
		base64.RawStdEncoding.EncodeToString(a.key))
}

// derive computes the key for password with a's variant, salt and params.
func (a *argon2Hash) derive(password string) []byte {
	p := a.params
	if a.variant == "argon2i" {
		return argon2.Key([]byte(password), a.salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	}
	return argon2.IDKey([]byte(password), a.salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// parseArgon2 parses an argon2 PHC string. Cost parameters are bounded by
// Params.check before anything is allocated for them.
func parseArgon2(s string) (*argon2Hash, error) {
	parts := strings.Split(s, "$")
	if len(parts) < 2 || parts[0] != "" {
		return nil, fmt.Errorf("%w: argon2 hash must start with '$'", ErrMalformedHash)
	}
	a := &argon2Hash{variant: parts[1]}
	switch a.variant {
	case "argon2id", "argon2i":
	case "argon2d":
		return nil, fmt.Errorf("%w: argon2d is not supported", ErrUnknownFormat)
	default:
		return nil, fmt.Errorf("%w: argon2 variant %q", ErrUnknownFormat, a.variant)
	}
	if len(parts) == 5 && strings.HasPrefix(parts[2], "m=") {
		// Hashes from before argon2 1.3 omit the version.
		return nil, fmt.Errorf("%w: argon2 version 16 is not supported", ErrUnknownFormat)
	}
	if len(parts) != 6 {
		return nil, fmt.Errorf("%w: argon2 hash must have 6 '$'-separated fields, has %d", ErrMalformedHash, len(parts))
	}
	if v, ok := strings.CutPrefix(parts[2], "v="); !ok {
		return nil, fmt.Errorf("%w: argon2 version field %q", ErrMalformedHash, parts[2])
	} else if v != strconv.Itoa(argon2Version) {
		return nil, fmt.Errorf("%w: argon2 version %s is not supported", ErrUnknownFormat, v)
	}
	if err := parseArgon2Params(parts[3], &a.params); err != nil {
		return nil, err
	}
	// Bound the encoded lengths before decoding so a huge field costs nothing.
	if len(parts[4]) > base64.RawStdEncoding.EncodedLen(maxArgon2SaltLen) ||
		len(parts[5]) > base64.RawStdEncoding.EncodedLen(maxArgon2KeyLen) {
		return nil, fmt.Errorf("%w: argon2 salt or key too long", ErrMalformedHash)
	}
	var err error
	if a.salt, err = decodeB64NoPad(parts[4]); err != nil {
		return nil, fmt.Errorf("%w: argon2 salt: %v", ErrMalformedHash, err)
	}
	if a.key, err = decodeB64NoPad(parts[5]); err != nil {
		return nil, fmt.Errorf("%w: argon2 key: %v", ErrMalformedHash, err)
	}
	a.params.SaltLen = uint32(len(a.salt))
	a.params.KeyLen = uint32(len(a.key))
	if err := a.params.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedHash, err)
	}
	return a, nil
}

// parseArgon2Params parses "m=19456,t=2,p=1" into p. Each key must appear
// exactly once; order is not significant.
func parseArgon2Params(s string, p *Params) error {
	var seen [3]bool
	fields := strings.Split(s, ",")
	if len(fields) != 3 {
		return fmt.Errorf("%w: argon2 parameters %q", ErrMalformedHash, s)
	}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		n, err := parseDecimal(v, 32)
		if err != nil {
			return fmt.Errorf("%w: argon2 parameter %q: %v", ErrMalformedHash, f, err)
		}
		var i int
		switch k {
		case "m":
			i, p.Memory = 0, uint32(n)
		case "t":
			i, p.Time = 1, uint32(n)
		case "p":
			if n > 255 {
				// x/crypto/argon2 takes the lane count as a uint8.
				return fmt.Errorf("%w: argon2 parallelism %d exceeds 255", ErrMalformedHash, n)
			}
			i, p.Threads = 2, uint8(n)
		default:
			return fmt.Errorf("%w: unknown argon2 parameter %q", ErrMalformedHash, k)
		}
		if seen[i] {
			return fmt.Errorf("%w: duplicate argon2 parameter %q", ErrMalformedHash, k)
		}
		seen[i] = true
	}
	return nil
}

// parseDecimal parses a plain unsigned decimal (no sign, no spaces, no
// underscores) that fits in bits.
func parseDecimal(s string, bits int) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a decimal number")
	}
	return strconv.ParseUint(s, 10, bits)
}

// decodeB64NoPad decodes standard base64 with or without padding, since PHC
// omits it but some encoders add it anyway.
func decodeB64NoPad(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}
