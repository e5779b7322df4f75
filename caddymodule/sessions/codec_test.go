package sessions

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

// sampleValues is a typical authenticated session plus one of every type.
func sampleValues() map[string]interface{} {
	return map[string]interface{}{
		"_auth_user_id":    int64(123456),
		"_auth_user_epoch": int64(7),
		"_auth_user_hash":  "0123456789abcdef0123456789abcdef01234567",
		"csrf":             []byte{0, 1, 2, 0xff},
		"n":                -42,
		"big":              math.MaxInt64,
		"remember":         true,
		"mfa":              false,
		"login_at":         time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.UTC),
		"":                 "empty key",
		"ünïcode":          "välue ✓",
		"emptystr":         "",
		"emptybytes":       []byte{},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("x", -7200))
	cases := map[string]struct {
		deadline time.Time
		values   map[string]interface{}
	}{
		"all types": {deadline, sampleValues()},
		"empty":     {deadline, map[string]interface{}{}},
		"nil map":   {deadline, nil},
		"zero time": {time.Time{}, map[string]interface{}{"t": time.Time{}}},
		"pre-1970":  {time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC), map[string]interface{}{"x": 1}},
	}
	for name, c := range cases {
		b, err := Codec{}.Encode(c.deadline, c.values)
		if err != nil {
			t.Fatalf("%s: Encode: %v", name, err)
		}
		gotDeadline, got, err := Codec{}.Decode(b)
		if err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		if !gotDeadline.Equal(c.deadline) || gotDeadline.IsZero() != c.deadline.IsZero() {
			t.Errorf("%s: deadline = %v, want %v", name, gotDeadline, c.deadline)
		}
		want := c.values
		if want == nil {
			want = map[string]interface{}{}
		}
		assertSameValues(t, got, want)
	}
}

func TestCodecDecodedBytesAreIndependent(t *testing.T) {
	b, _ := Codec{}.Encode(time.Now(), map[string]interface{}{"b": []byte("abc"), "s": "xyz"})
	_, vals, err := Codec{}.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0 // as if the store reused its buffer
	}
	if !bytes.Equal(vals["b"].([]byte), []byte("abc")) || vals["s"] != "xyz" {
		t.Errorf("decoded values alias the input: %v", vals)
	}
}

func TestCodecEncodeUnsupportedType(t *testing.T) {
	for _, v := range []interface{}{3.14, struct{}{}, map[string]string{}, nil, int32(1), &struct{}{}} {
		_, err := Codec{}.Encode(time.Now(), map[string]interface{}{"k": v})
		if err == nil {
			t.Errorf("Encode(%T) succeeded, want an error", v)
		}
	}
}

func TestCodecDecodeGarbage(t *testing.T) {
	good, err := Codec{}.Encode(time.Now(), sampleValues())
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(good); n++ {
		if _, _, err := (Codec{}).Decode(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Decode of %d-byte truncation: err = %v, want ErrCorrupt", n, err)
		}
	}
	twoA := []byte{codecVersion, 0, 0, 2, 1, 'a', tagTrue, 1, 'a', tagFalse}
	for name, b := range map[string][]byte{
		"nil":            nil,
		"gob":            mustGob(t),
		"version":        {99, 0, 0, 0},
		"trailing":       append(append([]byte(nil), good...), 0),
		"unknown tag":    {codecVersion, 0, 0, 1, 1, 'k', 99},
		"duplicate key":  twoA,
		"huge count":     {codecVersion, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"huge length":    {codecVersion, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"varint too big": {codecVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0},
		"bad nanos":      {codecVersion, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0},
	} {
		if _, _, err := (Codec{}).Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzCodecDecode checks that Decode never panics and that whatever it
// accepts survives a re-encode unchanged.
func FuzzCodecDecode(f *testing.F) {
	for _, vals := range []map[string]interface{}{
		sampleValues(), {}, {"a": "b"}, {"t": time.Unix(1, 2)}, {"i": -1, "j": int64(1 << 40)},
	} {
		b, err := Codec{}.Encode(time.Unix(1700000000, 5), vals)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{codecVersion})
	f.Add([]byte{codecVersion, 0, 0, 1, 1, 'k', 99})
	f.Fuzz(func(t *testing.T, b []byte) {
		deadline, vals, err := Codec{}.Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		b2, err := Codec{}.Encode(deadline, vals)
		if err != nil {
			t.Fatalf("re-encoding decoded values: %v", err)
		}
		deadline2, vals2, err := Codec{}.Decode(b2)
		if err != nil {
			t.Fatalf("decoding re-encoded values: %v", err)
		}
		if !deadline2.Equal(deadline) {
			t.Fatalf("deadline changed: %v -> %v", deadline, deadline2)
		}
		assertSameValues(t, vals2, vals)
	})
}

// assertSameValues compares session maps, times with Equal.
func assertSameValues(t *testing.T, got, want map[string]interface{}) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("missing key %q", k)
			continue
		}
		if wt, isTime := w.(time.Time); isTime {
			if gt, ok := g.(time.Time); !ok || !gt.Equal(wt) {
				t.Errorf("%q = %#v, want %v", k, g, wt)
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%q = %#v (%T), want %#v (%T)", k, g, g, w, w)
		}
	}
}
