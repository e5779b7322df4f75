package passwords

import (
	"context"
	"testing"
)

// BenchmarkVerify measures one argon2id verification at DefaultParams.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	h := NewHasher(DefaultParams, 1)
	encoded, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(ctx, "correct horse battery staple", encoded); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkValidate measures Validate on a typical registration, with the
// common-password list already loaded.
func BenchmarkValidate(b *testing.B) {
	attrs := map[string]string{"username": "alice.smith", "email": "alice.smith@example.com"}
	loadCommonPasswords()
	b.ReportAllocs()
	for b.Loop() {
		Validate("Tr0ub4dor&3-alice", attrs)
	}
}
