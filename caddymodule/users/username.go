package users

import (
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// UsernameKey returns the normalised form of name used to enforce
// case-insensitive uniqueness and to look users up by name: NFKC
// normalisation (so fullwidth "ａｌｉｃｅ" equals "alice"), then Unicode case
// folding, then NFKC again because folding can produce unnormalised text.
// The result is what other layers should compare, never the raw name.
func UsernameKey(name string) string {
	// A Caser holds state and must not be shared between goroutines, so one
	// is made per call; this is on the login path, not the per-request path.
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(name)))
}
