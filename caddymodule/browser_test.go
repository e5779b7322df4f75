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

	ctx := browserContext(t, browser)

	// The page's forms are hidden until its script runs, so every wait for
	// a form also proves the CSP let the inline script through.
	b := &mfaBrowser{t: t, s: s, ctx: ctx, base: s.base}
	do, text := b.do, b.text
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
	if site := text("site"); site != "127.0.0.1" {
		t.Errorf("the page names the site %q, want its host", site)
	}
	shots := screenshotter(t, ctx, "1-signin")
	// Creating the account signs the new user in (the page has the
	// password) and goes on to the page asked for.
	do("register",
		chromedp.Click(id("show-register")),
		chromedp.WaitVisible(id("register-form")),
		chromedp.SendKeys(id("register-username"), "Alice"),
		chromedp.SendKeys(id("register-email"), "alice@example.com"),
		chromedp.SendKeys(id("register-password"), "Wonderland-Rabbit-7"),
		chromedp.SendKeys(id("register-password2"), "Wonderland-Rabbit-7"),
		chromedp.Click(id("register-submit")),
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
	shots("3-signed-in")
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

	// Errors in words: the name is taken.
	do("signed in again", chromedp.Navigate(s.base+"/api/signin/"), chromedp.WaitVisible(id("signed-in")),
		chromedp.Click(id("signout")), chromedp.WaitVisible(id("signin-form")))
	do("register a taken name",
		chromedp.Click(id("show-register")),
		chromedp.WaitVisible(id("register-form")),
		chromedp.SendKeys(id("register-username"), "alice"),
		chromedp.SendKeys(id("register-email"), "other@example.com"),
		chromedp.SendKeys(id("register-password"), "x"),
		chromedp.SendKeys(id("register-password2"), "y"),
		chromedp.Click(id("register-submit")),
		chromedp.WaitVisible(id("error")),
	)
	errText := text("error")
	for _, want := range []string{"Username: a user with that username already exists.", "Password: "} {
		if !strings.Contains(errText, want) {
			t.Errorf("error %q lacks %q", errText, want)
		}
	}
	if strings.Contains(errText, "username: ") || strings.Contains(errText, "password2") {
		t.Errorf("error %q shows field names, not words", errText)
	}
	shots("2-register-error")
}

// screenshotter takes screenshots of the current page at 1280 and 390 px
// wide into SESSION_AUTH_SCREENSHOTS or a temp dir (a person looks at them;
// the test logs where), and checks that at 390 px the page keeps margins
// and does not scroll sideways. It returns itself for later shots.
func screenshotter(t *testing.T, ctx context.Context, first string) func(name string) {
	dir := os.Getenv("SESSION_AUTH_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := func(name string) {
		t.Helper()
		for _, width := range []int64{1280, 390} {
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 844)); err != nil {
				t.Fatal(err)
			}
			png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatalf("screenshot %s at %d px: %v", name, width, err)
			}
			path := fmt.Sprintf("%s/%s-%d.png", dir, name, width)
			if err := os.WriteFile(path, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", path)
			if width != 390 {
				continue
			}
			box, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](
				`(function(){var r=document.querySelector("main").getBoundingClientRect();`+
					`return [r.left, window.innerWidth-r.right, document.documentElement.scrollWidth, window.innerWidth];})()`))
			if err != nil {
				t.Fatal(err)
			}
			if box[0] < 12 || box[1] < 12 || box[2] > box[3] {
				t.Errorf("%s at 390 px: margins %.0f/%.0f px, page %.0f px wide in a %.0f px window", name, box[0], box[1], box[2], box[3])
			}
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 844)); err != nil {
			t.Fatal(err)
		}
	}
	shot(first)
	return shot
}

// Without JavaScript the page still works: plain form posts sign in and
// create an account, and land on next.
func TestBrowserSignInWithoutJavaScript(t *testing.T) {
	browser := chromiumPath(t)
	s := startSite(t, "", "login_redirect\nlogin_page_title \"Acme Books\"")
	ctx := browserContext(t, browser, chromedp.Flag("blink-settings", "scriptEnabled=false"))
	do := (&mfaBrowser{t: t, s: s, ctx: ctx, base: s.base}).do
	id := func(s string) chromedp.ID { return chromedp.ID(s) }
	echoed := func() string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	do("open protected page",
		chromedp.Navigate(s.base+"/orders?id=5"),
		chromedp.WaitVisible(id("signin-form")),
	)
	if title, _ := chromedp.Run(ctx, chromedp.Title()); title != "Sign in · Acme Books" {
		t.Errorf("title %q", title)
	}
	shot := screenshotter(t, ctx, "nojs-1-signin")
	do("create account",
		chromedp.Click(id("show-register")),
		chromedp.WaitVisible(id("register-form")),
		chromedp.SendKeys(id("register-username"), "plain"),
		chromedp.SendKeys(id("register-email"), "plain@example.com"),
		chromedp.SendKeys(id("register-password"), "Plain-Forms-Work-1"),
		chromedp.SendKeys(id("register-password2"), "Plain-Forms-Work-1"),
		chromedp.Click(id("register-submit")),
		chromedp.WaitNotPresent(id("register-form")),
	)
	if body := echoed(); !strings.Contains(body, `"path":"/orders"`) || !strings.Contains(body, `"X-Auth-Username":["plain"]`) {
		t.Errorf("after creating the account without JavaScript: %.500s", body)
	}
	// A wrong password: the page again, the error in words.
	do("sign in wrong",
		chromedp.Navigate(s.base+"/api/signin/?next=/orders"),
		chromedp.WaitVisible(id("signin-form")),
		chromedp.SendKeys(id("signin-username"), "plain"),
		chromedp.SendKeys(id("signin-password"), "wrong"),
		chromedp.Click(id("signin-submit")),
		chromedp.WaitVisible(id("error")),
	)
	if msg, _ := chromedp.Run(ctx, chromedp.Text(id("error"))); msg != "Unable to log in with provided credentials." {
		t.Errorf("error %q", msg)
	}
	shot("nojs-2-error")
}

// browserContext starts headless Chromium (Debian's, its own profile in a
// temp dir, QUIC off so every request goes through the site under test)
// and returns a context for it, bounded to 90 s and ended at t.Cleanup.
// extra flags are added to chromedp's defaults.
func browserContext(t *testing.T, browser string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
	})
	return ctx
}
