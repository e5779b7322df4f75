package rules_test

import (
	"net/http"
	"testing"
)

var benchRules = []string{"staff /admin/*", "group:analysts group:managers /reports/*", "group:editors POST PUT PATCH DELETE /articles/*"}

// BenchmarkRulesPlain is the per-request cost with the three rules:
// a plain path that no rule matches (the common request), and one that the
// last rule decides.
func BenchmarkRulesPlain(b *testing.B) {
	s := mustCompile(b, benchRules...)
	h := http.Header{"Accept": {"*/*"}, "User-Agent": {"wrk"}, "Cookie": {"sessionid=x"}}
	for _, tc := range []struct{ name, method, uri string }{
		{"no-match", "GET", "/dashboard/items/42"},
		{"last-rule", "POST", "/articles/42"},
	} {
		u := target(b, tc.uri)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Allows(editor, tc.method, u, h)
			}
		})
	}
}

// BenchmarkRulesLoose is a path that is not plain, read every way.
func BenchmarkRulesLoose(b *testing.B) {
	s := mustCompile(b, benchRules...)
	u := target(b, "/static/%2e%2e/admin//users;x")
	b.ReportAllocs()
	for b.Loop() {
		s.Allows(plainUser, "GET", u, nil)
	}
}
