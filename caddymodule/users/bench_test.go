package users

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkByID is the per-request user read.
func BenchmarkByID(b *testing.B) {
	s, _ := newTestStore(b)
	const n = 1000
	us := make([]*User, n)
	for i := range us {
		us[i] = &User{
			Username: "user" + strconv.Itoa(i), Email: "user" + strconv.Itoa(i) + "@example.com",
			PasswordHash: "pbkdf2_sha256$870000$abcdefghijklmnopqrstuv$0123456789abcdefghijklmnopqrstuvwxyzABCDEFG=",
			IsActive:     true, LastLogin: time.Now(),
		}
	}
	if _, err := s.CreateMany(us, false); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.ByID(int64(i%n) + 1); err != nil {
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
		var got User
		if err := decodeRecord(&got, 1, rec); err != nil {
			b.Fatal(err)
		}
	}
}
