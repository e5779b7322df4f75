package csrf

import "testing"

// BenchmarkMask is the token handed out at login (and in the CSRF cookie).
// BenchmarkMatches (csrf_test.go) is the check of an unsafe request.
func BenchmarkMask(b *testing.B) {
	secret := NewSecret()
	b.ReportAllocs()
	for b.Loop() {
		Mask(secret)
	}
}
