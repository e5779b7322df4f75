package caddymodule

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// The built-in sign-in page, and the account page beside it (second
// factors): each one HTML document with its script and style inline (no
// external assets), locked down by a CSP that allows exactly those inline
// blocks, by hash. They are rendered per request (the title defaults to
// the request's host; after a form post without JavaScript the sign-in
// page carries the errors), from templates parsed once.
var (
	//go:embed signin.html
	signinHTML string
	//go:embed signin.js
	signinJS string
	//go:embed account.html
	accountHTML string
	//go:embed account.js
	accountJS string
	//go:embed pagecommon.js
	pageCommonJS string
)

// pageCommonMarker is the line of signin.js and account.js where the
// helpers they share (pagecommon.js) go, inside each page's function.
const pageCommonMarker = "  // PAGE_COMMON (pagecommon.js: csrfToken, call, messages, base64url, passkeys, credentialJSON)\n"

// accountPagePath is the account page's path under api_prefix.
const accountPagePath = "/account/"

const signinCSS = `body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:0 1rem;background:#f5f5f7;color:#1d1d1f}
main{box-sizing:border-box;max-width:24rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 2px 12px #0001}
@media (max-width:30rem){main{margin:1.25rem auto;padding:1.25rem}}
#site{margin:0 0 .25rem;color:#6e6e73;font-size:.95rem;overflow-wrap:anywhere}
h1{font-size:1.4rem;margin:0 0 1rem}label{display:block;margin:.7rem 0}
input{display:block;width:100%;box-sizing:border-box;padding:.6rem;margin-top:.25rem;border:1px solid #ccc;border-radius:6px;font:inherit}
button{margin-top:1rem;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#0060df;color:#fff;font:inherit;cursor:pointer;width:100%}
#register-form:target{display:block}
#error{color:#b00020;white-space:pre-line}#notice{color:#05632f}
h2{font-size:1.1rem;margin:1.75rem 0 .25rem}section>p{margin:.4rem 0}
button.secondary{background:#e8e8ed;color:#1d1d1f}button.small{width:auto;margin:0;padding:.3rem .8rem;font-size:.9rem}
.or{text-align:center;color:#6e6e73;margin:1rem 0 0}.hint{color:#6e6e73;font-size:.95rem}
.warn{background:#fff4e5;border-radius:6px;padding:.6rem .8rem}
#totp-qr svg{display:block;width:12rem;height:12rem;margin:.5rem auto}
code{font:.95rem ui-monospace,monospace;overflow-wrap:anywhere;background:#f5f5f7;padding:.1rem .3rem;border-radius:4px}
#codes-list{columns:2;font:1rem ui-monospace,monospace;padding-left:1.75rem}
#passkey-list{list-style:none;padding:0}#passkey-list li{display:flex;align-items:center;gap:.5rem;padding:.5rem 0;border-bottom:1px solid #e8e8ed}
#passkey-list li span{flex:1;min-width:0;overflow-wrap:anywhere}#passkey-list small{display:block;color:#6e6e73}`

// maxLoginPageCSS bounds login_page_css.
const maxLoginPageCSS = 256 << 10

type signinPage struct {
	tmpl         *template.Template
	script       string
	account      *template.Template
	accountJS    string // the account page's script
	accountCSP   []string
	css          string // login_page_css, appended after the built-in style
	title        string // login_page_title; "" is the request's host
	registration bool
	mail         bool // smtp set: password reset and e-mail verification
	apiPrefix    string
	csp          []string
	csrfCookie   string
}

// signinView is what one rendering of the page shows.
type signinView struct {
	Title        string
	Style        template.CSS
	Custom       template.CSS
	Script       template.JS
	Registration bool
	Mail         bool // "Forgot password?" and the reset forms
	Next         string
	View         string // "signin" or "register": the form shown without JavaScript
	Username     string
	Email        string
	Error        string
	CSRF         string // the CSRF cookie's token, for a form post with a session
}

// accountView is what one rendering of the account page shows.
type accountView struct {
	Title    string
	Style    template.CSS
	Custom   template.CSS
	Script   template.JS
	Username string
	Next     string
}

// newSigninPage prepares the page. With registration closed the page has
// no registration form at all (and says so in data-registration, for the
// script and for anyone styling the page).
//
// With mail (smtp set) it has "Forgot password?", the reset request and
// reset confirm forms, and follows the links of reset and verification
// mails (#reset-confirm/uid/token, #verify/key: in the fragment, which no
// server sees); these need JavaScript.
//
// The account page (<api_prefix>/account/) is where a signed-in user adds
// and removes second factors; it needs JavaScript.
func newSigninPage(apiPrefix, loginPage, csrfCookie string, registration, mail bool) (signinPage, error) {
	prefix, _ := json.Marshal(apiPrefix)
	cookie, _ := json.Marshal(csrfCookie)
	signin, _ := json.Marshal(apiPrefix + "/" + loginPage)
	account, _ := json.Marshal(apiPrefix + accountPagePath)
	fill := func(js string) string {
		js = strings.Replace(js, pageCommonMarker, pageCommonJS, 1)
		return strings.NewReplacer("API_PREFIX", string(prefix), "CSRF_COOKIE", string(cookie),
			"SIGNIN_PAGE", string(signin), "ACCOUNT_PAGE", string(account)).Replace(js)
	}
	tmpl, err := template.New("signin").Parse(signinHTML)
	if err != nil {
		return signinPage{}, err
	}
	acct, err := template.New("account").Parse(accountHTML)
	if err != nil {
		return signinPage{}, err
	}
	p := signinPage{tmpl: tmpl, script: fill(signinJS), account: acct, accountJS: fill(accountJS),
		registration: registration, mail: mail, apiPrefix: apiPrefix, csrfCookie: csrfCookie}
	p.setCSP()
	return p, nil
}

// setLook applies login_page_title and login_page_css (a file).
func (p *signinPage) setLook(title, cssFile string) error {
	p.title = title
	if cssFile != "" {
		b, err := os.ReadFile(cssFile)
		if err != nil {
			return fmt.Errorf("login_page_css: %v", err)
		}
		if len(b) > maxLoginPageCSS {
			return fmt.Errorf("login_page_css: %s is larger than %d KiB", cssFile, maxLoginPageCSS>>10)
		}
		if bytes.Contains(bytes.ToLower(b), []byte("</style")) {
			return fmt.Errorf("login_page_css: %s contains </style", cssFile)
		}
		p.css = string(b)
	}
	p.setCSP()
	return nil
}

func (p *signinPage) setCSP() {
	style := "'" + cspHash(signinCSS) + "'"
	if p.css != "" {
		style += " '" + cspHash(p.css) + "'"
	}
	// img-src 'self' data: lets login_page_css show a logo served by the
	// site (or inline).
	csp := func(script string) []string {
		return []string{"default-src 'none'; script-src '" + cspHash(script) + "'; style-src " + style +
			"; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}
	}
	p.csp, p.accountCSP = csp(p.script), csp(p.accountJS)
}

func isTokenText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// siteTitle is login_page_title, or the host the page was asked for.
func (p signinPage) siteTitle(r *http.Request) string {
	if p.title != "" {
		return p.title
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return host
}

// safeNext is where to go after signing in: a same-site path ("/x", never
// "//host", "/\host" or "scheme:", nor one of the API's paths but the
// account page), else "/".
func (p signinPage) safeNext(next string) string {
	account := p.apiPrefix + accountPagePath
	if next == "" || next[0] != '/' || (len(next) > 1 && (next[1] == '/' || next[1] == '\\')) ||
		strings.HasPrefix(next, p.apiPrefix+"/") && next != account && !strings.HasPrefix(next, account+"?") {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if next[i] < 0x20 || next[i] == 0x7f {
			return "/"
		}
	}
	return next
}

// render writes the page with status.
func (p signinPage) render(w http.ResponseWriter, r *http.Request, status int, v signinView) {
	v.Title = p.siteTitle(r)
	v.Style, v.Custom, v.Script = template.CSS(signinCSS), template.CSS(p.css), template.JS(p.script)
	v.Registration = p.registration
	v.Mail = p.mail
	// Like Django's {% csrf_token %}: a form post from this page, by a
	// client with a session, carries the token that the CSRF cookie holds
	// (which no other site can read).
	if c, err := r.Cookie(p.csrfCookie); err == nil && len(c.Value) <= 128 && isTokenText(c.Value) {
		v.CSRF = c.Value
	}
	if v.View == "" {
		v.View = "signin"
	}
	p.write(w, r, status, p.tmpl, v, p.csp)
}

// renderAccount writes the account page.
func (p signinPage) renderAccount(w http.ResponseWriter, r *http.Request, v accountView) {
	v.Title = p.siteTitle(r)
	v.Style, v.Custom, v.Script = template.CSS(signinCSS), template.CSS(p.css), template.JS(p.accountJS)
	p.write(w, r, http.StatusOK, p.account, v, p.accountCSP)
}

// write executes a page's template and sends it with the page's headers.
func (p signinPage) write(w http.ResponseWriter, r *http.Request, status int, tmpl *template.Template, v any, csp []string) {
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, v); err != nil {
		http.Error(w, "page unavailable", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{"text/html; charset=utf-8"}
	h["Content-Security-Policy"] = csp
	h["X-Frame-Options"] = valDeny
	h["X-Content-Type-Options"] = valNosniff
	h["Referrer-Policy"] = valSameOrigin
	h["Cache-Control"] = valNoStore
	h["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

func (p signinPage) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = []string{"GET, HEAD, POST"}
		writeMethodNotAllowed(w, r.Method)
		return
	}
	p.render(w, r, http.StatusOK, signinView{Next: p.safeNext(r.URL.Query().Get("next"))})
}
