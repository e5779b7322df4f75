package sessions

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/alexedwards/scs/v2"
)

// Codec is an scs.Codec with a compact binary format. It supports values of
// type string, int, int64, bool, []byte and time.Time, which is all the
// proxy stores in a session; Encode rejects anything else rather than
// silently falling back to something slower. Times are stored to the
// nanosecond and decoded in UTC (the monotonic reading is dropped, as with
// gob). Decode never panics on bad input: it returns an error.
//
// Layout (version 1), integers varint-encoded:
//
//	version byte (codecVersion)
//	deadline: unix seconds varint, nanoseconds uvarint
//	number of values uvarint
//	per value: key length uvarint, key bytes, type tag byte, payload
//
// Payloads: string and []byte are a uvarint length and the bytes; int and
// int64 a varint; time.Time like the deadline; bools are two tags and have
// no payload.
type Codec struct{}

var _ scs.Codec = Codec{}

const codecVersion = 1

// Type tags. Their values are part of the stored format: never renumber.
const (
	tagString byte = iota + 1
	tagInt
	tagInt64
	tagFalse
	tagTrue
	tagBytes
	tagTime
)

// ErrCorrupt is wrapped by every Decode error.
var ErrCorrupt = errors.New("sessions: corrupt session data")

// Encode implements scs.Codec.
func (Codec) Encode(deadline time.Time, values map[string]interface{}) ([]byte, error) {
	// Size the buffer up front so encoding allocates once: fixed overhead
	// plus each key and variable-length payload plus worst-case varints.
	size := 1 + 2*binary.MaxVarintLen64 + binary.MaxVarintLen64
	for k, v := range values {
		size += len(k) + 1 + 2*binary.MaxVarintLen64
		switch v := v.(type) {
		case string:
			size += len(v)
		case []byte:
			size += len(v)
		}
	}
	b := make([]byte, 0, size)
	b = append(b, codecVersion)
	b = appendTime(b, deadline)
	b = binary.AppendUvarint(b, uint64(len(values)))
	for k, v := range values {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		switch v := v.(type) {
		case string:
			b = append(b, tagString)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		case int:
			b = append(b, tagInt)
			b = binary.AppendVarint(b, int64(v))
		case int64:
			b = append(b, tagInt64)
			b = binary.AppendVarint(b, v)
		case bool:
			if v {
				b = append(b, tagTrue)
			} else {
				b = append(b, tagFalse)
			}
		case []byte:
			b = append(b, tagBytes)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		case time.Time:
			b = append(b, tagTime)
			b = appendTime(b, v)
		default:
			return nil, fmt.Errorf("sessions: cannot encode session value %q of type %T (supported: string, int, int64, bool, []byte, time.Time)", k, v)
		}
	}
	return b, nil
}

// Decode implements scs.Codec.
func (Codec) Decode(b []byte) (time.Time, map[string]interface{}, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return time.Time{}, nil, fmt.Errorf("%w: missing or unknown version", ErrCorrupt)
	}
	// One string copy of the whole input backs every key and string value
	// (substrings share it), instead of one allocation per string.
	d := decoder{s: string(b[1:])}
	deadline := d.time()
	n := d.uvarint()
	if d.err != nil {
		return time.Time{}, nil, d.err
	}
	// Each value takes at least 2 bytes (key length, tag): bound the map
	// size hint so garbage cannot request a huge allocation.
	if n > uint64(len(d.s)-d.off)/2 {
		return time.Time{}, nil, fmt.Errorf("%w: value count %d exceeds data size", ErrCorrupt, n)
	}
	values := make(map[string]interface{}, n)
	for i := uint64(0); i < n; i++ {
		k := d.str()
		v := d.value()
		if d.err != nil {
			return time.Time{}, nil, d.err
		}
		if _, dup := values[k]; dup {
			return time.Time{}, nil, fmt.Errorf("%w: duplicate key %q", ErrCorrupt, k)
		}
		values[k] = v
	}
	if d.off != len(d.s) {
		return time.Time{}, nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.s)-d.off)
	}
	return deadline, values, nil
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// dataDeadline reads the deadline of encoded session data (Unix
// nanoseconds) without decoding the rest; false if b is not Codec data.
func dataDeadline(b []byte) (int64, bool) {
	if len(b) == 0 || b[0] != codecVersion {
		return 0, false
	}
	secs, n := binary.Varint(b[1:])
	if n <= 0 {
		return 0, false
	}
	nanos, m := binary.Uvarint(b[1+n:])
	if m <= 0 || nanos >= 1e9 {
		return 0, false
	}
	return time.Unix(secs, int64(nanos)).UnixNano(), true
}
