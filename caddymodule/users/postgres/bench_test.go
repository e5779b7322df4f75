package postgres

import (
	"strconv"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
)

func benchStore(b *testing.B, opts Options, n int) *Store {
	s := openOn(b, testpg.New(b).URL, opts)
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
	return s
}

// BenchmarkByID is the per-request user read, served from the cache (the
// listener is up).
func BenchmarkByID(b *testing.B) {
	const n = 1000
	s := benchStore(b, Options{}, n)
	for i := range n { // warm: the NOTIFYs of the import have arrived
		cache(b, s, int64(i)+1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.ByID(bg, int64(i%n)+1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkByIDUncached is a cache miss: one SELECT on a pooled connection.
func BenchmarkByIDUncached(b *testing.B) {
	const n = 1000
	s := benchStore(b, Options{CacheSize: -1}, n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.ByID(bg, int64(i%n)+1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkByIDParallel is the cached read from many goroutines, as under
// load.
func BenchmarkByIDParallel(b *testing.B) {
	const n = 1000
	s := benchStore(b, Options{}, n)
	for i := range n {
		cache(b, s, int64(i)+1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.ByID(bg, int64(i%n)+1); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
