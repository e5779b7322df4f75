package csrf

import (
	"strings"
	"testing"
)

func TestMaskRoundTrip(t *testing.T) {
	secret := NewSecret()
	if len(secret) != SecretLength {
		t.Fatalf("secret length %d", len(secret))
	}
	a, b := Mask(secret), Mask(secret)
	if a == b {
		t.Fatal("two masks of one secret are equal")
	}
	for _, tok := range []string{a, b, secret} {
		if !Matches(tok, secret) {
			t.Errorf("token %q does not match its secret", tok)
		}
	}
	if Matches(Mask(NewSecret()), secret) {
		t.Error("token of another secret matches")
	}
}

// A token masked by Django 3.2 for a known secret (mask + cipher).
func TestDjangoCompatible(t *testing.T) {
	secret := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"
	mask := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" // index 0: cipher == secret
	if !Matches(mask+secret, secret) {
		t.Fatal("zero mask should leave the secret as is")
	}
	mask = strings.Repeat("b", 32) // index 1: every char shifted by one
	var cipher []byte
	for i := 0; i < 32; i++ {
		cipher = append(cipher, alphabet[(strings.IndexByte(alphabet, secret[i])+1)%62])
	}
	if !Matches(mask+string(cipher), secret) {
		t.Fatal("shift-by-one mask not understood")
	}
}

func TestMalformed(t *testing.T) {
	secret := NewSecret()
	good := Mask(secret)
	for name, tok := range map[string]string{
		"empty":     "",
		"truncated": good[:63],
		"oversized": good + "a",
		"bad char":  "!" + good[1:],
		"nul":       good[:10] + "\x00" + good[11:],
		"unicode":   strings.Repeat("é", 32),
		"huge":      strings.Repeat("a", 1<<16),
	} {
		if Matches(tok, secret) {
			t.Errorf("%s token matched", name)
		}
	}
	if Matches(good, "short") {
		t.Error("matched a malformed secret")
	}
}

func FuzzMatches(f *testing.F) {
	secret := NewSecret()
	f.Add(Mask(secret))
	f.Add(secret)
	f.Add("")
	f.Add(strings.Repeat("\xff", 64))
	f.Fuzz(func(t *testing.T, tok string) {
		Matches(tok, secret) // must not panic
	})
}

func BenchmarkMatches(b *testing.B) {
	secret := NewSecret()
	tok := Mask(secret)
	b.ReportAllocs()
	for b.Loop() {
		if !Matches(tok, secret) {
			b.Fatal("no match")
		}
	}
}
