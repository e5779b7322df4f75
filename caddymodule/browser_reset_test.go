package caddymodule_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testsmtp"
)

// A person who forgot their password walks the built-in pages in headless
// Chromium: "Forgot password?", the request form, the link from the mail
// the SMTP server received, the new password, and signs in with it. The
// verification link of another mail is followed too.
func TestBrowserPasswordReset(t *testing.T) {
	browser := chromiumPath(t)
	mail := testsmtp.Start(t, testsmtp.Plain)
	s := startSite(t, "", "")
	appPort := freePort(t)
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		login_redirect
		register_throttle off
		smtp %s
		email_from "Sidecar <noreply@example.com>"
		email_verification optional
	}
	reverse_proxy 127.0.0.1:%d
}
http://127.0.0.1:%d {
	header Content-Type "text/html; charset=utf-8"
	respond "<!doctype html><title>App</title><h1 id=greeting>Hello, {header.X-Auth-Username} ({header.X-Auth-Email-Verified})!</h1>" 200
}
`, s.port, s.dbPath, mail.URL(), appPort, appPort))
	if r := s.register(t, "Kim", "kim@example.com", strongPassword); r.StatusCode != 201 {
		t.Fatalf("register: %d %s", r.StatusCode, r.body)
	}
	verifyMsg := mail.WaitFor(t, "kim@example.com", 10*time.Second, nil)

	ctx := browserContext(t, browser)
	b := &mfaBrowser{t: t, s: s, ctx: ctx, base: s.base}
	do, text := b.do, b.text
	id := func(s string) chromedp.ID { return chromedp.ID(s) }

	do("forgot password",
		chromedp.Navigate(s.base+"/dashboard"),
		chromedp.WaitVisible(id("signin-form")),
		chromedp.Click(id("show-reset")),
		chromedp.WaitVisible(id("reset-form")),
		chromedp.SendKeys(id("reset-email"), "kim@example.com"),
		chromedp.Click(id("reset-submit")),
		chromedp.WaitVisible(id("notice")),
	)
	if notice := text("notice"); !strings.Contains(notice, "on its way") {
		t.Errorf("after the request: notice %q", notice)
	}
	msg := mail.WaitFor(t, "kim@example.com", 10*time.Second, func(m testsmtp.Message) bool { return strings.Contains(m.Body, "reset-confirm") })
	link := resetLinkRE.FindString(msg.Body)
	if link == "" {
		t.Fatalf("no link in %q", msg.Body)
	}
	do("follow the link",
		chromedp.Navigate(link),
		chromedp.WaitVisible(id("reset-confirm-form")),
	)
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.Contains(loc, "#") {
		t.Errorf("the token stays in the address bar: %q", loc)
	}
	do("mismatched passwords",
		chromedp.SendKeys(id("reset-password1"), "Brand-New-Words-42"),
		chromedp.SendKeys(id("reset-password2"), "Brand-New-Words-43"),
		chromedp.Click(id("reset-confirm-submit")),
		chromedp.WaitVisible(id("error")),
	)
	if e := text("error"); !strings.Contains(e, "didn’t match") {
		t.Errorf("mismatch error %q", e)
	}
	do("new password",
		chromedp.Navigate("about:blank"),
		chromedp.Navigate(link),
		chromedp.WaitVisible(id("reset-confirm-form")),
		chromedp.SendKeys(id("reset-password1"), "Brand-New-Words-42"),
		chromedp.SendKeys(id("reset-password2"), "Brand-New-Words-42"),
		chromedp.Click(id("reset-confirm-submit")),
		chromedp.WaitVisible(id("signin-form")),
	)
	if notice := text("notice"); !strings.Contains(notice, "password has been reset") {
		t.Errorf("after the reset: notice %q", notice)
	}
	if dir := os.Getenv("SESSION_AUTH_SCREENSHOTS"); dir != "" {
		if shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
			os.WriteFile(dir+"/reset-done.png", shot, 0o644)
		}
	}
	do("sign in with the new password",
		chromedp.Navigate(s.base+"/dashboard"),
		chromedp.WaitVisible(id("signin-form")),
		chromedp.SendKeys(id("signin-username"), "kim"),
		chromedp.SendKeys(id("signin-password"), "Brand-New-Words-42"),
		chromedp.Click(id("signin-submit")),
		chromedp.WaitVisible(id("greeting")),
	)
	// The reset went through the mailbox: the address counts as verified.
	if g := text("greeting"); g != "Hello, Kim (true)!" {
		t.Errorf("greeting %q", g)
	}
	// The verification link of the first mail works from the page too.
	vlink := verifyLinkRE.FindString(verifyMsg.Body)
	do("verification link",
		chromedp.Navigate("about:blank"),
		chromedp.Navigate(vlink),
		chromedp.WaitVisible(id("notice")),
	)
	if notice := text("notice"); !strings.Contains(notice, "verified") {
		t.Errorf("after the verification link: notice %q", notice)
	}
}
