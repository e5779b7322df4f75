package caddymodule

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Bodies the API sends often, encoded once.
var (
	bodyNotAuthenticated = []byte(`{"detail":"Authentication credentials were not provided."}`)
	bodyBadCredentials   = []byte(`{"non_field_errors":["Unable to log in with provided credentials."]}`)
	bodyLogout           = []byte(`{"message":"Logout successful"}`)
	bodyCSRFNoCookie     = []byte(`{"detail":"CSRF Failed: CSRF cookie not set."}`)
	bodyCSRFBadToken     = []byte(`{"detail":"CSRF Failed: CSRF token missing or incorrect."}`)
	bodyStoreDown        = []byte(`{"detail":"Service temporarily unavailable, try again later."}`)
	bodyServerError      = []byte(`{"detail":"A server error occurred."}`)
)

// Header values set on every JSON response, as Django's middleware does.
var (
	valJSON       = []string{"application/json"}
	valVary       = []string{"Accept, Cookie, Origin"}
	valDeny       = []string{"DENY"}
	valNosniff    = []string{"nosniff"}
	valSameOrigin = []string{"same-origin"}
	valNoStore    = []string{"no-store"}
)

// writeJSON sends body with the API's standard headers. Headers are assigned
// directly (canonical keys) to spare allocations on the hot denial path.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = valJSON
	h["Vary"] = valVary
	h["X-Frame-Options"] = valDeny
	h["X-Content-Type-Options"] = valNosniff
	h["Referrer-Policy"] = valSameOrigin
	h["Cache-Control"] = valNoStore
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
}

// writeValue encodes v as the JSON body.
func writeValue(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, bodyServerError)
		return
	}
	writeJSON(w, status, b)
}

// mustJSON encodes values that cannot fail to encode (plain structs).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return bodyServerError
	}
	return b
}

// writeDetail sends {"detail": msg}.
func writeDetail(w http.ResponseWriter, status int, msg string) {
	writeValue(w, status, struct {
		Detail string `json:"detail"`
	}{msg})
}

// writeMethodNotAllowed is DRF's 405; the caller sets Allow.
func writeMethodNotAllowed(w http.ResponseWriter, method string) {
	writeDetail(w, http.StatusMethodNotAllowed, `Method "`+method+`" not allowed.`)
}

// userJSON is the public view of a user.
type userJSON struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Email    string `json:"email"`
}
