package caddymodule_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium; CI sets SESSION_AUTH_REQUIRE_BROWSER=1
// so that a missing browser fails instead of skipping.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SESSION_AUTH_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium on PATH and SESSION_AUTH_REQUIRE_BROWSER=1 (apt-get install chromium)")
	}
	t.Skip("SKIPPING browser test: no chromium on PATH (apt-get install chromium)")
	return ""
}

// A person opens a protected page, is sent to sign in, registers, signs
// in, lands on the page greeted by name by the upstream, and signs out.
func TestBrowserSignIn(t *testing.T) {
	browser := chromiumPath(t)
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
		public /favicon.ico
	}
	reverse_proxy 127.0.0.1:%d
}
http://127.0.0.1:%d {
	header Content-Type "text/html; charset=utf-8"
	respond "<!doctype html><title>App</title><h1 id=greeting>Hello, {header.X-Auth-Username}!</h1><p>{uri}</p>" 200
}
`, s.port, s.dbPath, appPort, appPort))

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	// The page's forms are hidden until its script runs, so every wait for
	// a form also proves the CSP let the inline script through.
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
			t.Fatalf("%s: %v\npage: %.2000s", step, err, html)
		}
	}
	text := func(id string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("text of #%s: %v", id, err)
		}
		return v
	}
	location := func() string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	id := func(s string) chromedp.ID { return chromedp.ID(s) }

	do("open protected page",
		chromedp.Navigate(s.base+"/reports/2024?tab=summary"),
		chromedp.WaitVisible(id("signin-form")),
	)
	if loc := location(); !strings.Contains(loc, "/api/signin/?next=%2Freports%2F2024%3Ftab%3Dsummary") {
		t.Errorf("sent to %q", loc)
	}
	do("register",
		chromedp.Click(id("show-register")),
		chromedp.WaitVisible(id("register-form")),
		chromedp.SendKeys(id("register-username"), "Alice"),
		chromedp.SendKeys(id("register-email"), "alice@example.com"),
		chromedp.SendKeys(id("register-password"), "Wonderland-Rabbit-7"),
		chromedp.SendKeys(id("register-password2"), "Wonderland-Rabbit-7"),
		chromedp.Click(id("register-submit")),
		chromedp.WaitVisible(id("notice")),
	)
	if notice := text("notice"); !strings.Contains(notice, "Account created") {
		t.Errorf("after register: notice %q", notice)
	}
	do("sign in",
		chromedp.WaitVisible(id("signin-form")),
		chromedp.SendKeys(id("signin-password"), "Wonderland-Rabbit-7"),
		chromedp.Click(id("signin-submit")),
		chromedp.WaitVisible(id("greeting")),
	)
	if greeting := text("greeting"); greeting != "Hello, Alice!" {
		t.Errorf("upstream greeting %q", greeting)
	}
	if loc := location(); loc != s.base+"/reports/2024?tab=summary" {
		t.Errorf("landed on %q", loc)
	}
	do("signed-in view", chromedp.Navigate(s.base+"/api/signin/"), chromedp.WaitVisible(id("signed-in")))
	if who := text("who"); who != "Alice" {
		t.Errorf("signed in as %q", who)
	}
	if dir := os.Getenv("SESSION_AUTH_SCREENSHOTS"); dir != "" {
		if shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
			os.WriteFile(dir+"/signed-in.png", shot, 0o644)
		}
	}
	do("sign out", chromedp.Click(id("signout")), chromedp.WaitVisible(id("signin-form")))
	if notice := text("notice"); !strings.Contains(notice, "Signed out") {
		t.Errorf("after sign-out: notice %q", notice)
	}
	do("protected again", chromedp.Navigate(s.base+"/reports/2024"), chromedp.WaitVisible(id("signin-form")))
	if loc := location(); !strings.Contains(loc, "/api/signin/") {
		t.Errorf("after sign-out, protected page went to %q", loc)
	}
	// An open redirect through next is refused: the page falls back to "/".
	do("open redirect",
		chromedp.Navigate(s.base+"/api/signin/?next=//evil.example/x"),
		chromedp.WaitVisible(id("signin-form")),
		chromedp.SendKeys(id("signin-username"), "alice"),
		chromedp.SendKeys(id("signin-password"), "Wonderland-Rabbit-7"),
		chromedp.Click(id("signin-submit")),
		chromedp.WaitVisible(id("greeting")),
	)
	if loc := location(); loc != s.base+"/" {
		t.Errorf("next=//evil.example led to %q", loc)
	}
}
