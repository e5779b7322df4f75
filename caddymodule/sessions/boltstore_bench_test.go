package sessions

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkBoltStoreFind is the per-request session read.
func BenchmarkBoltStoreFind(b *testing.B) {
	s, _ := newBoltStore(b, 0)
	data, _ := Codec{}.Encode(time.Now().Add(time.Hour), authSession())
	const n = 1000
	tokens := make([]string, n)
	for i := range tokens {
		// 43 characters, like scs's (hashed) tokens.
		tokens[i] = fmt.Sprintf("%043d", i)
		if err := s.Commit(tokens[i], data, time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, found, err := s.Find(tokens[i%n]); err != nil || !found {
			b.Fatal(found, err)
		}
	}
}
