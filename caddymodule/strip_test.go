package caddymodule_test

import (
	"net/http"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
)

// browserHeaders is what a browser sends on a navigation over HTTP/1.1.
func browserHeaders() http.Header {
	return http.Header{
		"Host":                      {"app.example"},
		"User-Agent":                {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"},
		"Accept":                    {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Language":           {"en-GB,en;q=0.9"},
		"Accept-Encoding":           {"gzip, deflate, br"},
		"Connection":                {"keep-alive"},
		"Cookie":                    {"sessionid=abc; csrftoken=def"},
		"Upgrade-Insecure-Requests": {"1"},
		"Sec-Fetch-Dest":            {"document"},
		"Sec-Fetch-Mode":            {"navigate"},
		"Sec-Fetch-Site":            {"none"},
	}
}

// Stripping the identity headers from an ordinary request, Connection:
// keep-alive included, allocates nothing.
func TestStripIdentityAllocationFree(t *testing.T) {
	h := browserHeaders()
	if n := testing.AllocsPerRun(100, func() { caddymodule.StripIdentity(h) }); n != 0 {
		t.Errorf("stripping allocates %v times per request", n)
	}
	if len(h) != len(browserHeaders()) || h.Get("Connection") != "keep-alive" {
		t.Errorf("ordinary headers changed: %v", h)
	}
	// What it strips.
	h = http.Header{
		"X.auth.user.id": {"1"}, "X_auth_username": {"a"}, "Xauthemail": {"e"}, "X-Auth-Userid": {"2"},
		"X-Auth-User": {"kept"}, "X-Auth-User-Ids": {"kept"},
		"Connection": {"keep-alive, X-Auth-User-Id", "x_auth_email,Upgrade"},
	}
	caddymodule.StripIdentity(h)
	want := http.Header{"X-Auth-User": {"kept"}, "X-Auth-User-Ids": {"kept"}, "Connection": {"keep-alive", "Upgrade"}}
	if len(h) != len(want) {
		t.Errorf("after stripping: %v, want %v", h, want)
	}
	for k, v := range want {
		if got := h[k]; len(got) != len(v) || got[0] != v[0] || (len(v) > 1 && got[1] != v[1]) {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	h = http.Header{"Connection": {"X-Auth-User-Id, x-auth-username"}}
	caddymodule.StripIdentity(h)
	if _, ok := h["Connection"]; ok {
		t.Errorf("Connection naming only identity headers kept: %q", h["Connection"])
	}
}

// BenchmarkStripIdentity is the first step of every request: removing
// client-sent identity headers from a browser's ordinary header set.
func BenchmarkStripIdentity(b *testing.B) {
	h := browserHeaders()
	b.ReportAllocs()
	for b.Loop() {
		caddymodule.StripIdentity(h)
	}
}
