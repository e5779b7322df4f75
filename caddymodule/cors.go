package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// originSet is an exact list of origins (scheme://host[:port], lower case).
type originSet map[string]struct{}

func parseOrigins(list []string) (originSet, error) {
	set := make(originSet, len(list))
	for _, o := range list {
		u, err := url.Parse(o)
		if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil &&
			((u.Path != "" && u.Path != "/") || u.RawQuery != "") {
			return nil, fmt.Errorf("%q is not an origin (scheme://host[:port], no path): write %q", o, u.Scheme+"://"+u.Host)
		}
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("%q is not an origin (scheme://host[:port])", o)
		}
		set[strings.ToLower(u.Scheme+"://"+u.Host)] = struct{}{}
	}
	return set, nil
}

func (s originSet) has(origin string) bool {
	if origin == "" || len(s) == 0 {
		return false
	}
	if _, ok := s[origin]; ok {
		return true
	}
	_, ok := s[strings.ToLower(origin)]
	return ok
}

func (s originSet) union(o originSet) originSet {
	u := make(originSet, len(s)+len(o))
	for k := range s {
		u[k] = struct{}{}
	}
	for k := range o {
		u[k] = struct{}{}
	}
	return u
}

// CORS header values, as django-cors-headers' defaults.
var (
	valTrue         = []string{"true"}
	valVaryOrigin   = []string{"Origin"}
	valAllowHeaders = []string{"accept, accept-encoding, authorization, content-type, dnt, origin, user-agent, x-csrftoken, x-requested-with"}
	valAllowMethods = []string{"DELETE, GET, OPTIONS, PATCH, POST, PUT"}
	valMaxAge       = []string{"86400"}
	valZero         = []string{"0"}
)

func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}

// answerPreflight replies to a CORS preflight on any path, before auth.
func (s *SessionAuth) answerPreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Vary"] = valVaryOrigin
	if origin := r.Header.Get("Origin"); s.origins.has(origin) {
		h["Access-Control-Allow-Origin"] = []string{origin}
		h["Access-Control-Allow-Credentials"] = valTrue
		h["Access-Control-Allow-Headers"] = valAllowHeaders
		h["Access-Control-Allow-Methods"] = valAllowMethods
		h["Access-Control-Max-Age"] = valMaxAge
	}
	h["Content-Length"] = valZero
	w.WriteHeader(http.StatusOK)
}

// corsWriter makes sure a response to an allowed origin carries exactly one
// Allow-Origin and Allow-Credentials (ours, whatever the upstream set) and
// a Vary that includes Origin.
type corsWriter struct {
	*caddyhttp.ResponseWriterWrapper
	origin      string
	wroteHeader bool
}

func (cw *corsWriter) WriteHeader(status int) {
	if !cw.wroteHeader && (status >= 200 || status == http.StatusSwitchingProtocols) {
		cw.wroteHeader = true
		setCORSHeaders(cw.Header(), cw.origin)
	}
	cw.ResponseWriterWrapper.WriteHeader(status)
}

func (cw *corsWriter) Write(b []byte) (int, error) {
	if !cw.wroteHeader {
		cw.WriteHeader(http.StatusOK)
	}
	return cw.ResponseWriterWrapper.Write(b)
}

func setCORSHeaders(h http.Header, origin string) {
	h["Access-Control-Allow-Origin"] = []string{origin}
	h["Access-Control-Allow-Credentials"] = valTrue
	for _, v := range h.Values("Vary") {
		for _, part := range strings.Split(v, ",") {
			if p := strings.TrimSpace(part); p == "*" || strings.EqualFold(p, "Origin") {
				return
			}
		}
	}
	h.Add("Vary", "Origin")
}

// withCORS wraps w for an allowed Origin; other requests keep w as is.
func (s *SessionAuth) withCORS(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	origin := r.Header.Get("Origin")
	if !s.origins.has(origin) {
		return w
	}
	// Set now too: when a later handler fails (say, 502 from reverse_proxy),
	// Caddy writes its error response through the unwrapped writer, whose
	// header map this is.
	setCORSHeaders(w.Header(), origin)
	return &corsWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, origin: origin}
}
