package sessions

import (
	"encoding/gob"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

func init() {
	// gob needs concrete types stored in interfaces registered; time.Time
	// is not pre-registered.
	gob.Register(time.Time{})
}

// authSession is what the proxy keeps per logged-in session.
func authSession() map[string]interface{} {
	return map[string]interface{}{
		"_auth_user_id":    int64(123456),
		"_auth_user_epoch": int64(3),
		"_auth_user_hash":  "0123456789abcdef0123456789abcdef01234567",
		"login_at":         time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC),
	}
}

func mustGob(t testing.TB) []byte {
	b, err := scs.GobCodec{}.Encode(time.Now(), authSession())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var codecs = []struct {
	name  string
	codec scs.Codec
}{{"compact", Codec{}}, {"gob", scs.GobCodec{}}}

// BenchmarkCodecDecode compares Codec with scs's default GobCodec on a
// typical session (the per-request cost).
func BenchmarkCodecDecode(b *testing.B) {
	for _, c := range codecs {
		data, err := c.codec.Encode(time.Now().Add(time.Hour), authSession())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.codec.Decode(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "encoded-bytes")
		})
	}
}

// BenchmarkCodecEncode is the cost on login and on idle-timeout refreshes.
func BenchmarkCodecEncode(b *testing.B) {
	vals, deadline := authSession(), time.Now().Add(time.Hour)
	for _, c := range codecs {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.codec.Encode(deadline, vals); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
