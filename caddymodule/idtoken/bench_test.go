package idtoken_test

import (
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/idtoken"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

func benchSigner(b *testing.B, cacheSize int) (*idtoken.Signer, *users.User) {
	k, err := idtoken.NewKey(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	s := &idtoken.Signer{Audience: "app", CacheSize: cacheSize}
	if err := s.SetKey(&k); err != nil {
		b.Fatal(err)
	}
	return s, &users.User{ID: 42, Username: "bench", Email: "bench@example.com", IsStaff: true, Groups: []string{"analysts", "editors"}}
}

// BenchmarkTokenCached is the per-request cost: the cached token handed
// out again (a user read as the gate reads it, groups included).
func BenchmarkTokenCached(b *testing.B) {
	s, u := benchSigner(b, 0)
	origin := idtoken.Origin{HTTPS: true, Host: "app.example.com"}
	if _, err := s.Token(u, origin); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Token(u, origin); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTokenSign is a signature (what each user costs about once
// every 45 s).
func BenchmarkTokenSign(b *testing.B) {
	s, u := benchSigner(b, -1)
	origin := idtoken.Origin{HTTPS: true, Host: "app.example.com"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Token(u, origin); err != nil {
			b.Fatal(err)
		}
	}
}
