package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// A user record is the bbolt value stored under the user's id. Layout
// (version 1), all integers varint-encoded:
//
//	version    byte (recordVersion)
//	flags      byte (flag* bits)
//	len(Username), len(Email), len(PasswordHash)   uvarint ×3
//	SessionEpoch                                    varint
//	DateJoined  sec varint, nsec uvarint            only if flagDateJoined
//	LastLogin   sec varint, nsec uvarint            only if flagLastLogin
//	len(Groups), len of each group                  uvarint ×(1+n), only if flagGroups
//	Username ‖ Email ‖ PasswordHash ‖ Groups…       the rest, exactly
//
// The id is not repeated: it is the key. The strings come last and
// together so that decoding copies them out of bbolt's memory with a single
// string allocation and slices it (ByID is on the hot path). A user without
// groups is written without flagGroups, byte for byte as before groups
// existed, so records of older versions read the same and a user without
// groups stays readable by an older binary; likewise flagEmailVerified
// (an unverified user's record is as before it existed).
const recordVersion = 1

const (
	flagActive = 1 << iota
	flagSuperuser
	flagStaff
	flagDateJoined
	flagLastLogin
	flagGroups
	flagEmailVerified

	flagsKnown = flagActive | flagSuperuser | flagStaff | flagDateJoined | flagLastLogin | flagGroups | flagEmailVerified
)

// maxGroups bounds the group count a record may claim, so that a corrupt
// count cannot make decoding allocate without bound.
const maxGroups = 1 << 16

// errCorrupt is wrapped by every decoding error.
var errCorrupt = errors.New("users: corrupt user record")

// appendRecord appends the encoding of u (minus its id) to dst.
func appendRecord(dst []byte, u *users.User) []byte {
	var flags byte
	if u.IsActive {
		flags |= flagActive
	}
	if u.IsSuperuser {
		flags |= flagSuperuser
	}
	if u.IsStaff {
		flags |= flagStaff
	}
	if !u.DateJoined.IsZero() {
		flags |= flagDateJoined
	}
	if !u.LastLogin.IsZero() {
		flags |= flagLastLogin
	}
	if len(u.Groups) > 0 {
		flags |= flagGroups
	}
	if u.EmailVerified {
		flags |= flagEmailVerified
	}
	dst = append(dst, recordVersion, flags)
	dst = binary.AppendUvarint(dst, uint64(len(u.Username)))
	dst = binary.AppendUvarint(dst, uint64(len(u.Email)))
	dst = binary.AppendUvarint(dst, uint64(len(u.PasswordHash)))
	dst = binary.AppendVarint(dst, u.SessionEpoch)
	if flags&flagDateJoined != 0 {
		dst = appendTime(dst, u.DateJoined)
	}
	if flags&flagLastLogin != 0 {
		dst = appendTime(dst, u.LastLogin)
	}
	if flags&flagGroups != 0 {
		dst = binary.AppendUvarint(dst, uint64(len(u.Groups)))
		for _, g := range u.Groups {
			dst = binary.AppendUvarint(dst, uint64(len(g)))
		}
	}
	dst = append(dst, u.Username...)
	dst = append(dst, u.Email...)
	dst = append(dst, u.PasswordHash...)
	for _, g := range u.Groups {
		dst = append(dst, g...)
	}
	return dst
}

// encodeRecord returns the encoding of u in a right-sized buffer.
func encodeRecord(u *users.User) []byte {
	// 2 header bytes + at most 4 uvarints/varints and 2 times of ≤15 bytes.
	size := 2 + 4*binary.MaxVarintLen64 + 2*15 + len(u.Username) + len(u.Email) + len(u.PasswordHash)
	if len(u.Groups) > 0 {
		size += (1 + len(u.Groups)) * binary.MaxVarintLen64
		for _, g := range u.Groups {
			size += len(g)
		}
	}
	return appendRecord(make([]byte, 0, size), u)
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = binary.AppendVarint(dst, t.Unix())
	return binary.AppendUvarint(dst, uint64(t.Nanosecond()))
}

// decodeRecord decodes b (which may be bbolt-owned memory: nothing is
// retained) into u, setting u.ID to id. Times come back in UTC.
func decodeRecord(u *users.User, id int64, b []byte) error {
	r := reader{b: b}
	if v := r.byte(); v != recordVersion {
		if r.err != nil {
			return r.err
		}
		return fmt.Errorf("%w: unknown version %d", errCorrupt, v)
	}
	flags := r.byte()
	if flags&^flagsKnown != 0 {
		return fmt.Errorf("%w: unknown flags %#x", errCorrupt, flags)
	}
	nUser, nEmail, nHash := r.uvarint(), r.uvarint(), r.uvarint()
	epoch := r.varint()
	var joined, last time.Time
	if flags&flagDateJoined != 0 {
		joined = r.time()
	}
	if flags&flagLastLogin != 0 {
		last = r.time()
	}
	var groupLens []uint64
	var nGroups uint64 // their total length
	if flags&flagGroups != 0 {
		n := r.uvarint()
		if n == 0 || n > maxGroups || n > uint64(len(r.b)) {
			r.fail("group count")
		} else {
			groupLens = make([]uint64, n)
			for i := range groupLens {
				groupLens[i] = r.uvarint()
				if groupLens[i] > uint64(len(r.b)) {
					r.fail("group length")
					break
				}
				nGroups += groupLens[i]
			}
		}
	}
	if r.err != nil {
		return r.err
	}
	rest := r.b[r.off:]
	// Compare without summing first, so huge lengths cannot overflow
	// (each group length is at most len(b), and there are at most
	// maxGroups of them, so nGroups cannot overflow).
	if nUser > uint64(len(rest)) || nEmail > uint64(len(rest))-nUser ||
		nGroups > uint64(len(rest))-nUser-nEmail ||
		nHash != uint64(len(rest))-nUser-nEmail-nGroups {
		return fmt.Errorf("%w: string lengths do not match record size", errCorrupt)
	}
	s := string(rest) // one copy out of bbolt's mmap for all the strings
	var groups []string
	if len(groupLens) > 0 {
		groups = make([]string, len(groupLens))
		off := nUser + nEmail + nHash
		for i, n := range groupLens {
			groups[i] = s[off : off+n]
			off += n
		}
	}
	*u = users.User{
		ID:           id,
		Username:     s[:nUser],
		Email:        s[nUser : nUser+nEmail],
		PasswordHash: s[nUser+nEmail : nUser+nEmail+nHash],
		IsActive:     flags&flagActive != 0,
		IsSuperuser:  flags&flagSuperuser != 0,
		IsStaff:      flags&flagStaff != 0,
		DateJoined:   joined,
		LastLogin:    last,
		SessionEpoch: epoch,
		Groups:       groups,

		EmailVerified: flags&flagEmailVerified != 0,
	}
	return nil
}

// reader is a bounds-checked cursor over a record. The first failure sticks
// in err and later reads return zero values, so callers check once.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or invalid %s", errCorrupt, what)
	}
}

func (r *reader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("header")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("length")
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail("integer")
		return 0
	}
	r.off += n
	return v
}

func (r *reader) time() time.Time {
	sec, nsec := r.varint(), r.uvarint()
	if r.err != nil {
		return time.Time{}
	}
	if nsec >= uint64(time.Second) {
		r.fail("time")
		return time.Time{}
	}
	// Records written before times were kept to the microsecond may have
	// nanoseconds: read them as they would be stored now.
	return users.StoredTime(time.Unix(sec, int64(nsec)))
}
