package caddymodule

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// The built-in sign-in page: one HTML document with its script and style
// inline (no external assets), locked down by a CSP that allows exactly
// those inline blocks, by hash.
var (
	//go:embed signin.html
	signinHTML string
	//go:embed signin.js
	signinJS string
)

const signinCSS = `body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f5f5f7;color:#1d1d1f}
main{max-width:22rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 2px 12px #0001}
h1{font-size:1.4rem;margin:0 0 1rem}label{display:block;margin:.6rem 0}
input{display:block;width:100%;box-sizing:border-box;padding:.5rem;margin-top:.2rem;border:1px solid #ccc;border-radius:6px;font:inherit}
button{margin-top:1rem;padding:.55rem 1.2rem;border:0;border-radius:6px;background:#0060df;color:#fff;font:inherit;cursor:pointer}
#error{color:#b00020;white-space:pre-line}#notice{color:#05632f}`

type signinPage struct {
	body []byte
	csp  []string
}

// newSigninPage renders the page once. With registration closed the page
// has no registration form at all (and says so in data-registration, for
// the script and for anyone styling the page); with mail (smtp set) it
// has "Forgot password?", the reset request and reset confirm forms, and
// follows the links of reset and verification mails (#reset-confirm/uid/
// token, #verify/key: in the fragment, which no server sees).
func newSigninPage(apiPrefix, csrfCookie string, registration, mail bool) (signinPage, error) {
	prefix, _ := json.Marshal(apiPrefix)
	cookie, _ := json.Marshal(csrfCookie)
	script := strings.Replace(signinJS, "API_PREFIX", string(prefix), 1)
	script = strings.Replace(script, "CSRF_COOKIE", string(cookie), 1)
	tmpl, err := template.New("signin").Parse(signinHTML)
	if err != nil {
		return signinPage{}, err
	}
	var buf bytes.Buffer
	err = tmpl.Execute(&buf, struct {
		Style        template.CSS
		Script       template.JS
		Registration bool
		Mail         bool // password reset and e-mail verification
	}{template.CSS(signinCSS), template.JS(script), registration, mail})
	if err != nil {
		return signinPage{}, err
	}
	csp := "default-src 'none'; script-src '" + cspHash(script) + "'; style-src '" + cspHash(signinCSS) +
		"'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	return signinPage{body: buf.Bytes(), csp: []string{csp}}, nil
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

func (p signinPage) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h["Allow"] = []string{"GET, HEAD"}
		writeMethodNotAllowed(w, r.Method)
		return
	}
	h["Content-Type"] = []string{"text/html; charset=utf-8"}
	h["Content-Security-Policy"] = p.csp
	h["X-Frame-Options"] = valDeny
	h["X-Content-Type-Options"] = valNosniff
	h["Referrer-Policy"] = valSameOrigin
	h["Cache-Control"] = valNoStore
	h["Content-Length"] = []string{strconv.Itoa(len(p.body))}
	w.WriteHeader(http.StatusOK)
	w.Write(p.body)
}
