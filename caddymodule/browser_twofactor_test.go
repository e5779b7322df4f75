package caddymodule_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// Issue 16, the built-in pages: the sign-in page asks for the second
// factor, the account page (<api>/account/) adds and removes them; in
// headless Chromium with a virtual authenticator (DevTools' WebAuthn
// domain) for the passkeys and codes computed here for TOTP.

// mfaBrowser drives one browser tab against a site on http://localhost
// (WebAuthn has no relying party on an IP address). Its do, text, eval,
// visible and landOn are the browser tests' one set of tab helpers: other
// browser tests wrap their tab in one (&mfaBrowser{t, s, ctx, base}).
type mfaBrowser struct {
	t     *testing.T
	s     *site
	ctx   context.Context
	base  string // http://localhost:<port>
	shots func(name string)
	auth  webauthn.AuthenticatorID
}

// newMFABrowser starts a site answering any host, with the sign-in
// redirect and extra session_auth lines, and a browser with a virtual
// passkey authenticator (CTAP2, built in, resident keys, user verification
// that succeeds, presence simulated).
func newMFABrowser(t *testing.T, c siteConfig, extra string) *mfaBrowser {
	browser := chromiumPath(t)
	c.anyHost = true
	c.extra = throttlesOff + "login_redirect\n" + extra
	s := startCustomSite(t, c)
	b := &mfaBrowser{t: t, s: s, ctx: browserContext(t, browser), base: strings.Replace(s.base, "127.0.0.1", "localhost", 1)}
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		}})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	b.auth = res.AuthenticatorID
	return b
}

func (b *mfaBrowser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		html, _ := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("body")))
		b.t.Fatalf("%s: %v\npage: %.3000s", step, err, html)
	}
}

func (b *mfaBrowser) text(id string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		b.t.Fatalf("text of #%s: %v", id, err)
	}
	return v
}

func (b *mfaBrowser) eval(what, js string) any {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](js))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// visible reports whether the element with id is shown.
func (b *mfaBrowser) visible(id string) bool {
	b.t.Helper()
	return b.eval("visible #"+id, `(function(){var e=document.getElementById(`+jsString(id)+`);`+
		`return !!e && e.getClientRects().length > 0;})()`) == true
}

func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// landOn waits until the tab has loaded a page whose address starts with
// base+prefix and returns the page's text.
func (b *mfaBrowser) landOn(prefix string) string {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var loc string
	for time.Now().Before(deadline) {
		v, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[location.href, document.readyState]`))
		if err == nil && len(v) == 2 {
			loc = v[0]
			if strings.HasPrefix(loc, b.base+prefix) && v[1] == "complete" {
				body, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("body")))
				if err == nil {
					return body
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	html, _ := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("body")))
	b.t.Fatalf("never landed on %s%s (at %s)\npage: %.3000s", b.base, prefix, loc, html)
	return ""
}

// landOnApp waits for the upstream's echo of path and checks that the
// gate sent the user's identity.
func (b *mfaBrowser) landOnApp(path, username string) {
	b.t.Helper()
	body := b.landOn(path)
	if !strings.Contains(body, `"path":"`+path+`"`) || !strings.Contains(body, `"X-Auth-Username":["`+username+`"]`) {
		b.t.Fatalf("on %s, the upstream saw no %s: %.800s", path, username, body)
	}
}

// signInWithPassword fills the sign-in form shown.
func (b *mfaBrowser) signInWithPassword(username string) {
	b.t.Helper()
	b.do("sign in with the password",
		chromedp.WaitVisible(chromedp.ID("signin-form")),
		chromedp.SendKeys(chromedp.ID("signin-username"), username),
		chromedp.SendKeys(chromedp.ID("signin-password"), strongPassword),
		chromedp.Click(chromedp.ID("signin-submit")),
	)
}

// signOut signs out on the account page, which goes to the sign-in page.
func (b *mfaBrowser) signOut() {
	b.t.Helper()
	b.do("sign out", chromedp.Click(chromedp.ID("signout")))
	b.landOn("/api/signin/")
	b.do("signed out", chromedp.WaitVisible(chromedp.ID("signin-form")))
	if n := b.text("notice"); n != "Signed out." {
		b.t.Errorf("after signing out the page says %q", n)
	}
}

// credentials are the virtual authenticator's passkeys.
func (b *mfaBrowser) credentials() []*webauthn.Credential {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: b.auth})
	if err != nil {
		b.t.Fatalf("WebAuthn.getCredentials: %v", err)
	}
	return res.Credentials
}

// enrolTOTP sets up the authenticator app on the account page (shown) and
// returns the secret the page showed and the recovery codes; it leaves
// the codes on the page.
func (b *mfaBrowser) enrolTOTP() (string, []string) {
	b.t.Helper()
	id := func(s string) chromedp.ID { return chromedp.ID(s) }
	b.eval("watch for CSP violations", `window.cspViolations = [];`+
		`document.addEventListener("securitypolicyviolation", function(e){ window.cspViolations.push(e.violatedDirective + " " + e.blockedURI); }); true`)
	b.do("set up TOTP",
		chromedp.WaitVisible(id("totp-start")),
		chromedp.Click(id("totp-start")),
		chromedp.WaitVisible(id("totp-setup-form")),
		chromedp.SendKeys(id("totp-setup-password"), strongPassword),
		chromedp.Click(id("totp-setup-submit")),
		chromedp.WaitVisible(id("totp-confirm-form")),
	)
	secret := b.text("totp-secret")
	if len(secret) < 16 {
		b.t.Fatalf("the page shows the key %q", secret)
	}
	// The QR code is inline SVG (no image fetched), drawn at a readable size.
	qr := b.eval("QR code", `(function(){var s=document.querySelector("#totp-qr > svg");if(!s)return null;`+
		`var r=s.getBoundingClientRect();return [r.width, r.height, s.querySelectorAll("path").length,`+
		`performance.getEntriesByType("resource").filter(function(e){return e.initiatorType==="img"}).length];})()`)
	if dims, ok := qr.([]any); !ok || dims[0].(float64) < 150 || dims[1].(float64) < 150 || dims[2].(float64) != 1 || dims[3].(float64) != 0 {
		b.t.Errorf("the QR code is not inline SVG of a readable size: %v", qr)
	}
	if v := b.eval("CSP violations", `window.cspViolations`); len(v.([]any)) != 0 {
		b.t.Errorf("the setup broke the page's CSP: %v", v)
	}
	b.shots("totp-setup")
	b.do("confirm TOTP",
		chromedp.SendKeys(id("totp-code"), totpCode(b.t, secret, time.Now())),
		chromedp.Click(id("totp-confirm-submit")),
		chromedp.WaitVisible(id("codes")),
	)
	codesJSON := b.eval("recovery codes", `Array.prototype.map.call(document.querySelectorAll("#codes-list li"), function(li){return li.textContent;})`)
	var codes []string
	for _, c := range codesJSON.([]any) {
		codes = append(codes, c.(string))
	}
	if len(codes) != 10 || len(codes[0]) < 8 {
		b.t.Fatalf("recovery codes on the page: %q", codes)
	}
	if msg := b.text("codes"); !strings.Contains(msg, "shown only once") {
		b.t.Errorf("the codes are shown without saying to save them: %q", msg)
	}
	if b.visible("totp-confirm-form") || b.visible("totp-secret") {
		b.t.Error("the setup form stays open after confirming")
	}
	return secret, codes
}

// A passkey: added on the account page after signing in with the
// password, then used to sign in with no password at all, and as the
// second step after the password; then removed.
func TestBrowserPasskey(t *testing.T) {
	bothBackends(t, func(t *testing.T, c siteConfig) {
		b := newMFABrowser(t, c, "")
		b.s.newUser(t, "alice")
		id := func(s string) chromedp.ID { return chromedp.ID(s) }

		b.do("open a protected page", chromedp.Navigate(b.base+"/app/start"), chromedp.WaitVisible(id("signin-form")))
		if !b.visible("passkey-signin") {
			t.Fatal("the sign-in page offers no passkey sign-in in a browser that has WebAuthn")
		}
		b.shots = screenshotter(t, b.ctx, "mfa-1-signin")
		b.signInWithPassword("alice")
		b.landOnApp("/app/start", "alice")

		b.do("account page", chromedp.Navigate(b.base+"/api/account/"), chromedp.WaitVisible(id("passkey-start")))
		if who := b.text("who"); who != "alice" {
			t.Errorf("account page of %q", who)
		}
		if n := b.text("passkeys-none"); n != "No passkeys yet." {
			t.Errorf("passkeys before: %q", n)
		}
		b.shots("mfa-2-account")
		b.do("add a passkey",
			chromedp.Click(id("passkey-start")),
			chromedp.WaitVisible(id("passkey-form")),
			chromedp.SendKeys(id("passkey-password"), strongPassword),
			chromedp.SendKeys(id("passkey-name"), "Test laptop"),
			chromedp.Click(id("passkey-submit")),
			chromedp.WaitVisible(chromedp.CSS("#passkey-list li")),
		)
		if list := b.text("passkey-list"); !strings.Contains(list, "Test laptop") || !strings.Contains(list, "Added ") {
			t.Errorf("passkey list: %q", list)
		}
		if n := b.text("notice"); !strings.Contains(n, "Test laptop") {
			t.Errorf("after adding: notice %q", n)
		}
		if creds := b.credentials(); len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
			t.Fatalf("the authenticator holds %d credentials, want one discoverable for localhost", len(creds))
		}
		b.shots("mfa-3-passkey-added")
		b.signOut()

		// Passwordless: the passkey button alone signs in, and goes to next.
		b.do("protected page again", chromedp.Navigate(b.base+"/app/after"), chromedp.WaitVisible(id("passkey-signin")),
			chromedp.Click(id("passkey-signin")))
		b.landOnApp("/app/after", "alice")

		// The password now asks for the passkey (the user's only factor:
		// no code field). This time through the page's own base64url
		// conversions, as in a browser without the JSON helpers.
		b.do("account page", chromedp.Navigate(b.base+"/api/account/"), chromedp.WaitVisible(id("passkey-start")))
		b.signOut()
		b.do("protected page", chromedp.Navigate(b.base+"/app/third"))
		b.signInWithPassword("alice")
		b.do("second step", chromedp.WaitVisible(id("mfa-passkey")))
		if b.visible("mfa-code") {
			t.Error("a user whose only factor is a passkey is asked for a code")
		}
		if title := b.text("title"); title != "Two-step verification" {
			t.Errorf("second step titled %q", title)
		}
		b.shots("mfa-4-passkey-step")
		b.eval("drop the JSON helpers", `PublicKeyCredential.parseRequestOptionsFromJSON = undefined;`+
			`PublicKeyCredential.prototype.toJSON = undefined; typeof PublicKeyCredential.prototype.toJSON`)
		b.do("use the passkey", chromedp.Click(id("mfa-passkey")))
		b.landOnApp("/app/third", "alice")

		// Removed (with the password again), the passkey no longer signs in.
		b.do("remove the passkey",
			chromedp.Navigate(b.base+"/api/account/"),
			chromedp.WaitVisible(chromedp.CSS("#passkey-list li button")),
			chromedp.Click(chromedp.CSS("#passkey-list li button")),
			chromedp.WaitVisible(id("passkey-remove-password")),
			chromedp.SendKeys(id("passkey-remove-password"), strongPassword),
			chromedp.Click(id("passkey-remove-submit")),
			chromedp.WaitVisible(id("passkeys-none")),
		)
		if n := b.text("notice"); !strings.Contains(n, "removed") {
			t.Errorf("after removing: notice %q", n)
		}
		b.signOut()
		b.do("passkey sign-in with a removed passkey", chromedp.Click(id("passkey-signin")), chromedp.WaitVisible(id("error")))
		if e := b.text("error"); e != "Passkey verification failed." {
			t.Errorf("a removed passkey: %q", e)
		}
	})
}

// TOTP: set up on the account page (the QR code inline, the key in
// words, the recovery codes once), then a sign-in asks for the code.
func TestBrowserTOTP(t *testing.T) {
	bothBackends(t, func(t *testing.T, c siteConfig) {
		b := newMFABrowser(t, c, "")
		b.s.newUser(t, "bob")
		id := func(s string) chromedp.ID { return chromedp.ID(s) }

		// Anonymous on the account page: to the sign-in page, then back.
		b.do("account page, anonymous", chromedp.Navigate(b.base+"/api/account/"))
		b.landOn("/api/signin/?next=%2Fapi%2Faccount%2F")
		b.shots = screenshotter(t, b.ctx, "totp-1-signin")
		b.signInWithPassword("bob")
		b.landOn("/api/account/")
		b.do("account page", chromedp.WaitVisible(id("totp-start")))
		if s := b.text("totp-status"); !strings.HasPrefix(s, "Off.") {
			t.Errorf("TOTP status before: %q", s)
		}
		secret, codes := b.enrolTOTP()
		b.shots("totp-2-codes")
		b.do("codes saved", chromedp.Click(id("codes-done")), chromedp.WaitVisible(id("totp-actions")))
		if b.visible("codes") {
			t.Error("the recovery codes stay on the page")
		}
		if s := b.text("totp-status"); s != "On. 10 recovery codes left." {
			t.Errorf("TOTP status after: %q", s)
		}
		b.shots("totp-3-on")
		b.signOut()

		b.do("protected page", chromedp.Navigate(b.base+"/app/books?id=3"))
		b.signInWithPassword("bob")
		b.do("asked for the code", chromedp.WaitVisible(id("mfa-code")))
		if b.visible("mfa-passkey") {
			t.Error("a user without a passkey is offered one")
		}
		b.shots("totp-4-code-step")
		// A wrong code: said in words, the code form stays.
		b.do("a wrong code", chromedp.SendKeys(id("mfa-code"), wrongCode(t, secret)), chromedp.Click(id("mfa-submit")), chromedp.WaitVisible(id("error")))
		if e := b.text("error"); e != "Code: invalid code." || !b.visible("mfa-code") {
			t.Errorf("wrong code: %q", e)
		}
		// The code that confirmed the setup is spent: the next step's (the
		// page emptied the field).
		b.do("the right code",
			chromedp.SendKeys(id("mfa-code"), totpCode(t, secret, time.Now().Add(30*time.Second))),
			chromedp.Click(id("mfa-submit")))
		b.landOnApp("/app/books", "bob")

		// A recovery code works in the same field.
		b.do("account page", chromedp.Navigate(b.base+"/api/account/"), chromedp.WaitVisible(id("totp-actions")))
		b.signOut()
		b.do("protected page", chromedp.Navigate(b.base+"/app/rc"))
		b.signInWithPassword("bob")
		b.do("recovery code", chromedp.WaitVisible(id("mfa-code")), chromedp.SendKeys(id("mfa-code"), codes[3]), chromedp.Click(id("mfa-submit")))
		b.landOnApp("/app/rc", "bob")
		b.do("account page", chromedp.Navigate(b.base+"/api/account/"), chromedp.WaitVisible(id("totp-actions")))
		if s := b.text("totp-status"); s != "On. 9 recovery codes left." {
			t.Errorf("after a recovery code: %q", s)
		}

		// New recovery codes (the password again), shown once.
		b.do("new recovery codes",
			chromedp.Click(id("codes-start")),
			chromedp.WaitVisible(id("codes-form")),
			chromedp.SendKeys(id("codes-password"), strongPassword),
			chromedp.Click(id("codes-submit")),
			chromedp.WaitVisible(id("codes")),
		)
		fresh, _ := b.eval("new codes", `Array.prototype.map.call(document.querySelectorAll("#codes-list li"), function(li){return li.textContent;})`).([]any)
		if len(fresh) != 10 || strings.Contains(b.text("codes-list"), codes[4]) {
			t.Fatalf("new recovery codes: %v", fresh)
		}
		b.do("codes saved", chromedp.Click(id("codes-done")), chromedp.WaitVisible(id("totp-actions")))
		if s := b.text("totp-status"); s != "On. 10 recovery codes left." {
			t.Errorf("after new codes: %q", s)
		}
		// Turned off (the password and a code: the app's codes of this
		// minute are spent, so one of the new recovery codes), sign-in is
		// one step again.
		b.do("turn TOTP off",
			chromedp.Click(id("totp-disable-start")),
			chromedp.WaitVisible(id("totp-disable-form")),
			chromedp.SendKeys(id("totp-disable-password"), strongPassword),
			chromedp.SendKeys(id("totp-disable-code"), wrongCode(t, secret)),
			chromedp.Click(id("totp-disable-submit")),
			chromedp.WaitVisible(id("error")),
		)
		if e := b.text("error"); e != "Code: invalid code." || !b.visible("totp-disable-form") {
			t.Errorf("turning off with a wrong code: %q", e)
		}
		b.do("turn TOTP off",
			chromedp.SendKeys(id("totp-disable-code"), fresh[0].(string)),
			chromedp.Click(id("totp-disable-submit")),
			chromedp.WaitVisible(id("totp-start")),
		)
		if s := b.text("totp-status"); !strings.HasPrefix(s, "Off.") {
			t.Errorf("after turning off: %q", s)
		}
		b.signOut()
		b.do("protected page", chromedp.Navigate(b.base+"/app/plain"))
		b.signInWithPassword("bob")
		b.landOnApp("/app/plain", "bob")
	})
}

// two_factor required: a fresh login is led to the account page to add a
// second factor, the app stays closed until then, and then it opens.
func TestBrowserTwoFactorRequired(t *testing.T) {
	bothBackends(t, func(t *testing.T, c siteConfig) {
		b := newMFABrowser(t, c, "two_factor required\n")
		b.s.newUser(t, "carol")
		id := func(s string) chromedp.ID { return chromedp.ID(s) }

		b.do("protected page", chromedp.Navigate(b.base+"/app/ledger"))
		b.signInWithPassword("carol")
		b.landOn("/api/account/?next=%2Fapp%2Fledger")
		b.do("led to enrol", chromedp.WaitVisible(id("enrol-required")), chromedp.WaitVisible(id("totp-start")))
		if b.visible("continue") {
			t.Error("the account page offers to continue before a second factor is added")
		}
		b.shots = screenshotter(t, b.ctx, "required-1-enrol")
		// The app is still closed: the gate sends the browser to the
		// sign-in page, which sends it on to the account page.
		b.do("app before enrolling", chromedp.Navigate(b.base+"/app/ledger"))
		b.landOn("/api/account/?next=%2Fapp%2Fledger")
		b.do("led to enrol again", chromedp.WaitVisible(id("enrol-required")))

		b.enrolTOTP()
		b.do("codes saved", chromedp.Click(id("codes-done")), chromedp.WaitVisible(id("continue")))
		if b.visible("enrol-required") {
			t.Error("the enrolment notice stays after enrolling")
		}
		b.shots("required-2-enrolled")
		b.do("continue", chromedp.Click(id("continue")))
		b.landOnApp("/app/ledger", "carol")

		// With both factors, the second step offers the code and the passkey.
		b.do("add a passkey too",
			chromedp.Navigate(b.base+"/api/account/"),
			chromedp.WaitVisible(id("passkey-start")),
			chromedp.Click(id("passkey-start")),
			chromedp.SendKeys(id("passkey-password"), strongPassword),
			chromedp.Click(id("passkey-submit")),
			chromedp.WaitVisible(chromedp.CSS("#passkey-list li")),
		)
		if list := b.text("passkey-list"); !strings.Contains(list, "Passkey") {
			t.Errorf("an unnamed passkey is listed as %q", list)
		}
		b.signOut()
		b.do("protected page", chromedp.Navigate(b.base+"/app/journal"))
		b.signInWithPassword("carol")
		b.do("second step", chromedp.WaitVisible(id("mfa-code")), chromedp.WaitVisible(id("mfa-passkey")))
		b.shots("required-3-both-factors")
		b.do("use the passkey", chromedp.Click(id("mfa-passkey")))
		b.landOnApp("/app/journal", "carol")
	})
}

// Without JavaScript the code step works too: the password form posts,
// the page comes back asking for the code (the pending login's cookie
// set), and the code form posts to the page.
func TestBrowserSecondStepWithoutJavaScript(t *testing.T) {
	browser := chromiumPath(t)
	s := startSite(t, "", "login_redirect")
	secret, _ := s.enrolTOTP(t, s.newUser(t, "dora"))
	ctx := browserContext(t, browser, chromedp.Flag("blink-settings", "scriptEnabled=false"))
	b := &mfaBrowser{t: t, s: s, ctx: ctx, base: s.base}
	id := func(s string) chromedp.ID { return chromedp.ID(s) }

	b.do("protected page", chromedp.Navigate(s.base+"/orders?id=9"))
	b.signInWithPassword("dora")
	b.do("asked for the code", chromedp.WaitVisible(id("mfa-code")))
	if b.visible("signin-form") || b.visible("mfa-passkey") {
		t.Error("without JavaScript the code step shows the password form or a passkey button")
	}
	screenshotter(t, ctx, "nojs-mfa-1-code")
	b.do("a wrong code", chromedp.SendKeys(id("mfa-code"), wrongCode(t, secret)), chromedp.Click(id("mfa-submit")), chromedp.WaitVisible(id("error")))
	if e := b.text("error"); e != "Code: invalid code." || !b.visible("mfa-code") {
		t.Errorf("wrong code without JavaScript: %q", e)
	}
	b.do("the right code", chromedp.SendKeys(id("mfa-code"), totpCode(t, secret, time.Now().Add(30*time.Second))), chromedp.Click(id("mfa-submit")))
	b.landOnApp("/orders", "dora")
}
