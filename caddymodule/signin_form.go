package caddymodule

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// The sign-in page without JavaScript: its forms post (form-encoded) to the
// page's own URL, and the page runs them through the API's own login and
// register endpoints (same checks: Origin, throttles, validators), then
// answers as a browser expects: 303 to next once signed in (a new account
// is signed in at once: the form has its password), or the page again with
// the errors in words.

// serveSigninPage is the sign-in page's route.
func (s *SessionAuth) serveSigninPage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.page.serve(w, r)
		return
	}
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType != "application/x-www-form-urlencoded" {
		s.page.render(w, r, http.StatusUnsupportedMediaType, signinView{Error: "Send the form as a browser does (application/x-www-form-urlencoded)."})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBodyBytes))
	if err != nil {
		s.page.render(w, r, http.StatusRequestEntityTooLarge, signinView{Error: "The form is too large."})
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.page.render(w, r, http.StatusBadRequest, signinView{Error: "The form could not be read."})
		return
	}
	next := s.page.safeNext(form.Get("next"))
	view := signinView{Next: next, Username: form.Get("username"), Email: form.Get("email")}
	op := form.Get("op")
	if op == "mfa" {
		s.secondStepForm(w, r, view, form)
		return
	}
	if op == "register" && s.Registration == registrationOpen {
		view.View = "register"
		res := s.innerAPI(r, "/register/", body, form.Get("csrfmiddlewaretoken"))
		if res.status != http.StatusCreated {
			view.Error = inWords(res.body)
			s.page.render(w, r, res.status, view)
			return
		}
		// The new account signs in with the password it was just given.
		login := url.Values{"username": {form.Get("username")}, "password": {form.Get("password")}}
		body = []byte(login.Encode())
	} else if op != "login" {
		view.Error = "Unknown form."
		s.page.render(w, r, http.StatusBadRequest, view)
		return
	}
	res := s.innerAPI(r, "/login/", body, form.Get("csrfmiddlewaretoken"))
	if res.status != http.StatusOK {
		view.View, view.Error = "signin", inWords(res.body)
		if ra := res.header.Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		s.page.render(w, r, res.status, view)
		return
	}
	w.Header()["Set-Cookie"] = res.header["Set-Cookie"]
	w.Header()["Vary"] = res.header["Vary"]
	var answer struct {
		MFARequired       bool `json:"mfa_required"`
		EnrolmentRequired bool `json:"mfa_enrolment_required"`
	}
	_ = json.Unmarshal(res.body, &answer)
	switch {
	case answer.MFARequired:
		// The password was right: the page asks for the code (the pending
		// login's cookie is set); a passkey needs JavaScript.
		view.View = "mfa"
		s.page.render(w, r, http.StatusOK, view)
	case answer.EnrolmentRequired:
		s.toAccountPage(w, r, next)
	default:
		http.Redirect(w, r, next, http.StatusSeeOther)
	}
}

// secondStepForm serves the code form (op=mfa): the code goes to
// <api>/login/2fa/ with the pending login's cookie, which the browser sends.
func (s *SessionAuth) secondStepForm(w http.ResponseWriter, r *http.Request, view signinView, form url.Values) {
	body := []byte(url.Values{"code": {form.Get("code")}}.Encode())
	res := s.innerAPI(r, "/login/2fa/", body, form.Get("csrfmiddlewaretoken"))
	if res.status != http.StatusOK {
		view.Error = inWords(res.body)
		// A wrong code: the code form again; anything else (the pending
		// login expired, a throttle): sign in again.
		var fields map[string]any
		if json.Unmarshal(res.body, &fields) == nil && fields["code"] != nil {
			view.View = "mfa"
		} else {
			view.View = "signin"
		}
		if ra := res.header.Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		s.page.render(w, r, res.status, view)
		return
	}
	w.Header()["Set-Cookie"] = res.header["Set-Cookie"]
	w.Header()["Vary"] = res.header["Vary"]
	http.Redirect(w, r, view.Next, http.StatusSeeOther)
}

// toAccountPage answers 303 to the account page, which goes on to next.
func (s *SessionAuth) toAccountPage(w http.ResponseWriter, r *http.Request, next string) {
	target := s.APIPrefix + accountPagePath
	if next != "/" {
		target += "?next=" + url.QueryEscape(next)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// serveAccountPage is the account page's route: a signed-in user's second
// factors (account.html; the work is done by its script through the
// API). Anonymous visitors are sent to the built-in sign-in page, which
// comes back here.
func (s *SessionAuth) serveAccountPage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = []string{"GET, HEAD"}
		writeMethodNotAllowed(w, r.Method)
		return
	}
	auth, err := s.authenticate(r)
	if err != nil {
		s.storeFailure(w, "reading session", err)
		return
	}
	if auth.stale {
		s.expireSessionCookie(w, r)
	}
	if auth.who == nil {
		h := w.Header()
		h.Set("Location", s.APIPrefix+"/"+s.LoginPage+"?next="+url.QueryEscape(s.page.safeNext(r.URL.RequestURI())))
		h["Cache-Control"] = valNoStore
		h["Content-Length"] = valZero
		w.WriteHeader(http.StatusFound)
		return
	}
	s.page.renderAccount(w, r, accountView{Username: auth.who.user.Username, Next: s.page.safeNext(r.URL.Query().Get("next"))})
}

// innerResult is an API endpoint's answer, kept for the page to translate.
type innerResult struct {
	status int
	header http.Header
	body   []byte
}

// innerAPI runs the API endpoint at path (under api_prefix) on a copy of
// r with body, as a JSON client's request would be run; the form's CSRF
// token (csrfmiddlewaretoken, as Django names it) goes in the header.
func (s *SessionAuth) innerAPI(r *http.Request, path string, body []byte, token string) innerResult {
	ep := s.routes[s.APIPrefix+path]
	r2 := r.Clone(r.Context())
	r2.URL.Path = s.APIPrefix + path
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	r2.Header.Set("Accept", "application/json")
	if token != "" && r2.Header.Get("X-CSRFToken") == "" {
		r2.Header.Set("X-CSRFToken", token)
	}
	rec := &innerWriter{header: http.Header{}, status: http.StatusOK}
	s.serveAPI(rec, r2, ep)
	return innerResult{status: rec.status, header: rec.header, body: rec.body.Bytes()}
}

type innerWriter struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (w *innerWriter) Header() http.Header { return w.header }
func (w *innerWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.body.Write(b)
}
func (w *innerWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
}

// fieldLabels are the form's names for the API's fields.
var fieldLabels = map[string]string{"username": "Username", "email": "Email", "password": "Password",
	"password2": "Password (again)", "new_password": "New password"}

// inWords turns a DRF error body into sentences: {"username": ["A user
// with that username already exists."]} reads "Username: a user with that
// username already exists."
func inWords(body []byte) string {
	var data map[string]any
	if json.Unmarshal(body, &data) != nil || len(data) == 0 {
		return "Something went wrong; try again."
	}
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.SliceStable(keys, func(i, j int) bool { return fieldOrder(keys[i]) < fieldOrder(keys[j]) })
	var lines []string
	for _, k := range keys {
		var msgs []string
		switch v := data[k].(type) {
		case string:
			msgs = []string{v}
		case []any:
			for _, m := range v {
				if s, ok := m.(string); ok {
					msgs = append(msgs, s)
				}
			}
		}
		for _, m := range msgs {
			if k == "detail" || k == "non_field_errors" {
				lines = append(lines, m)
				continue
			}
			label, ok := fieldLabels[k]
			if !ok {
				label = strings.ToUpper(k[:1]) + strings.ReplaceAll(k[1:], "_", " ")
			}
			lines = append(lines, label+": "+lowerFirst(m))
		}
	}
	return strings.Join(lines, "\n")
}

func fieldOrder(k string) int {
	for i, f := range []string{"detail", "non_field_errors", "username", "email", "password", "password2"} {
		if k == f {
			return i
		}
	}
	return 100
}

// lowerFirst lower-cases a sentence's first letter unless it begins an
// acronym ("CSRF …").
func lowerFirst(m string) string {
	if len(m) >= 2 && m[0] >= 'A' && m[0] <= 'Z' && !(m[1] >= 'A' && m[1] <= 'Z') {
		return string(m[0]+'a'-'A') + m[1:]
	}
	return m
}
