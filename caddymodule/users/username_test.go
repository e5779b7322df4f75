package users

import "testing"

func TestUsernameKeyEquivalences(t *testing.T) {
	same := [][2]string{
		{"Alice", "alice"},
		{"ALICE", "alice"},
		{"ａｌｉｃｅ", "alice"}, // fullwidth (NFKC)
		{"Ａｌｉｃｅ", "ALICE"},
		{"Straße", "STRASSE"}, // full case folding: ß -> ss
		{"ﬁona", "FIONA"},     // ligature (NFKC)
		{"e\u0301", "\u00e9"}, // combining acute vs precomposed é
		{"ǅemal", "džemal"},   // titlecase digraph
	}
	for _, p := range same {
		if a, b := UsernameKey(p[0]), UsernameKey(p[1]); a != b {
			t.Errorf("UsernameKey(%q)=%q, UsernameKey(%q)=%q; want equal", p[0], a, p[1], b)
		}
	}
	different := [][2]string{
		{"alice", "alicia"},
		{"alice", "alice "},
		{"bob", "b0b"},
	}
	for _, p := range different {
		if UsernameKey(p[0]) == UsernameKey(p[1]) {
			t.Errorf("UsernameKey(%q) == UsernameKey(%q); want different", p[0], p[1])
		}
	}
}

func TestUsernameKeyIdempotent(t *testing.T) {
	for _, s := range []string{"Alice", "ａｌｉｃｅ", "Straße", "ﬁ", "ΣΊΣΥΦΟΣ", "İstanbul", ""} {
		k := UsernameKey(s)
		if k2 := UsernameKey(k); k2 != k {
			t.Errorf("UsernameKey not idempotent for %q: %q then %q", s, k, k2)
		}
	}
}
