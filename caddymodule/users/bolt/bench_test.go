package bolt

import (
	"strconv"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// benchUsers creates n users with realistic field sizes in s.
func benchUsers(b *testing.B, s users.Store, n int) {
	us := make([]*users.User, n)
	for i := range us {
		us[i] = &users.User{
			Username: "user" + strconv.Itoa(i), Email: "user" + strconv.Itoa(i) + "@example.com",
			PasswordHash: "pbkdf2_sha256$870000$abcdefghijklmnopqrstuv$0123456789abcdefghijklmnopqrstuvwxyzABCDEFG=",
			IsActive:     true, LastLogin: time.Now(),
		}
	}
	if _, err := s.CreateMany(bg, us, false); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkByID is the per-request user read, served from the cache.
func BenchmarkByID(b *testing.B) {
	s, _ := newTestStore(b)
	const n = 1000
	benchUsers(b, s, n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.ByID(bg, int64(i%n)+1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkByIDUncached is ByID's bbolt path (a cache miss).
func BenchmarkByIDUncached(b *testing.B) {
	_, db := newTestStore(b)
	s, err := newStore(db, 0)
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	benchUsers(b, s, n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.ByID(bg, int64(i%n)+1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordDecode isolates the record decoding from bbolt.
func BenchmarkRecordDecode(b *testing.B) {
	u := sampleUser()
	rec := encodeRecord(&u)
	b.ReportAllocs()
	for b.Loop() {
		var got users.User
		if err := decodeRecord(&got, 1, rec); err != nil {
			b.Fatal(err)
		}
	}
}
