package sessions

import (
	"fmt"
	"time"
)

// decoder is a bounds-checked cursor over encoded session data held in a
// string. The first failure sticks in err; later reads return zero values.
type decoder struct {
	s   string
	off int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or invalid %s at offset %d", ErrCorrupt, what, d.off+1)
	}
}

// uvarint mirrors binary.Uvarint, but over a string to avoid a copy.
func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	var shift uint
	for i := 0; i < 10 && d.off+i < len(d.s); i++ {
		c := d.s[d.off+i]
		if c < 0x80 {
			if i == 9 && c > 1 {
				break // overflows 64 bits
			}
			d.off += i + 1
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	d.fail("varint")
	return 0
}

// varint decodes a zig-zag signed varint, as binary.AppendVarint writes.
func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.s) {
		d.fail("type tag")
		return 0
	}
	c := d.s[d.off]
	d.off++
	return c
}

// str returns a length-prefixed substring of the input (no copy).
func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)-d.off) {
		d.fail("length")
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *decoder) time() time.Time {
	sec, nsec := d.varint(), d.uvarint()
	if d.err != nil {
		return time.Time{}
	}
	if nsec >= uint64(time.Second) {
		d.fail("time")
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// value decodes a tag and its payload.
func (d *decoder) value() interface{} {
	switch tag := d.byte(); tag {
	case tagString:
		return d.str()
	case tagInt:
		v := d.varint()
		if int64(int(v)) != v { // only possible where int is 32 bits
			d.fail("int")
		}
		return int(v)
	case tagInt64:
		return d.varint()
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagBytes:
		// []byte is mutable, so it gets its own copy.
		return []byte(d.str())
	case tagTime:
		return d.time()
	default:
		if d.err == nil {
			d.err = fmt.Errorf("%w: unknown type tag %d at offset %d", ErrCorrupt, tag, d.off)
		}
		return nil
	}
}
