package caddymodule_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/net/websocket"
)

// wsScript opens a WebSocket to url and puts the outcome in the title:
// "got:<first message>" or "closed".
const wsScript = `<!doctype html><title>waiting</title><script>
var ws = new WebSocket(%q);
ws.onmessage = function (e) { document.title = "got:" + e.data; };
ws.onclose = function () { if (document.title.indexOf("got:") !== 0) { document.title = "closed"; } };
</script>`

// What a real browser does with a cross-site page: Chromium, with the
// victim signed in, visits an attacker's pages. One, on another site,
// auto-submits a login form with the attacker's credentials (login CSRF);
// another, on the same site but another origin (a sibling subdomain, say),
// opens a WebSocket to the app (cross-site WebSocket hijacking: SameSite
// does not stop it). Neither gets anywhere. The sign-in page, with
// registration closed, offers no registration and still signs in.
func TestBrowserCrossSite(t *testing.T) {
	browser := chromiumPath(t)
	s := startSite(t, "", "")
	s.newUser(t, "victim")
	if r := s.register(t, "attacker", "attacker@example.com", strongPassword); r.StatusCode != 201 {
		t.Fatalf("register: %d %s", r.StatusCode, r.body)
	}

	// The app behind the sidecar: a greeting, a page that opens a
	// WebSocket to its own origin, and the socket.
	mux := http.NewServeMux()
	mux.Handle("/socket", websocket.Server{
		Handshake: func(*websocket.Config, *http.Request) error { return nil },
		Handler: func(ws *websocket.Conn) {
			websocket.Message.Send(ws, "hello "+ws.Request().Header.Get("X-Auth-Username"))
		},
	})
	mux.HandleFunc("/wspage", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, wsScript, "ws://"+r.Host+"/socket")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>App</title><h1 id=greeting>Hello, %s!</h1>", r.Header.Get("X-Auth-Username"))
	})
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	s.load(fmt.Sprintf(`{
	admin off
	persist_config off
}
http://127.0.0.1:%d {
	session_auth {
		users_db %s
		registration closed
		login_redirect
	}
	reverse_proxy %s
}
`, s.port, s.dbPath, strings.TrimPrefix(app.URL, "http://")))

	// The attacker's pages, on another port: http://localhost:<port> is
	// another site, http://127.0.0.1:<port> the same site, another origin.
	victimHost := strings.TrimPrefix(s.base, "http://")
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch r.URL.Path {
		case "/login-csrf":
			fmt.Fprintf(w, `<!doctype html><title>Win a prize</title>
<form method="post" action="%s/api/login/"><input name="username" value="attacker"><input name="password" value="%s"></form>
<script>document.forms[0].submit();</script>`, s.base, strongPassword)
		case "/ws":
			fmt.Fprintf(w, wsScript, "ws://"+victimHost+"/socket")
		}
	}))
	t.Cleanup(evil.Close)
	evilPort := strings.TrimPrefix(evil.URL, "http://127.0.0.1:")
	crossSite := "http://localhost:" + evilPort
	sameSite := "http://127.0.0.1:" + evilPort

	ctx := browserContext(t, browser)
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
			t.Fatalf("%s: %v\npage: %.2000s", step, err, html)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	bodyText := `document.body ? document.body.innerText : ""`
	// waitFor evaluates expr until it gives a non-empty string: the page
	// may navigate meanwhile (a form submission), which makes a single
	// in-page poll fail with a lost execution context.
	waitFor := func(step, expr string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
			if err == nil && v != "" {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: gave up waiting for %s: %q %v", step, expr, v, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	titleOutcome := `document.title === "waiting" ? "" : document.title`
	id := func(s string) chromedp.ID { return chromedp.ID(s) }

	// Registration closed: the page's script runs (the form shows) and
	// offers no way to register; signing in works.
	do("sign-in page",
		chromedp.Navigate(s.base+"/api/signin/?next=/home"),
		chromedp.WaitVisible(id("signin-form")),
	)
	if got := eval(`String(document.getElementById("show-register")) + " " + String(document.getElementById("register-form"))`); got != "null null" {
		t.Errorf("registration closed, yet the page has: %s", got)
	}
	do("sign in",
		chromedp.SendKeys(id("signin-username"), "victim"),
		chromedp.SendKeys(id("signin-password"), strongPassword),
		chromedp.Click(id("signin-submit")),
		chromedp.WaitVisible(id("greeting")),
	)
	if got := eval(`document.getElementById("greeting").textContent`); got != "Hello, victim!" {
		t.Fatalf("after sign-in: %q", got)
	}

	// The app's own page opens its WebSocket with the session.
	do("own WebSocket", chromedp.Navigate(s.base+"/wspage"))
	if got := waitFor("own WebSocket", titleOutcome); got != "got:hello victim" {
		t.Errorf("same-origin WebSocket: %q", got)
	}

	// Login CSRF: the cross-site form lands on the refusal, and the victim
	// is still the victim.
	do("login CSRF", chromedp.Navigate(crossSite+"/login-csrf"))
	if got := waitFor("login CSRF", `location.host === `+fmt.Sprintf("%q", victimHost)+` ? `+bodyText+` : ""`); got != `{"detail":"CSRF Failed: Origin checking failed - `+crossSite+` does not match any trusted origins."}` {
		t.Errorf("cross-site login form answered: %s", got)
	}
	do("who am I", chromedp.Navigate(s.base+"/api/user/"))
	if got := eval(bodyText); !strings.Contains(got, `"username":"victim"`) {
		t.Errorf("after the cross-site login form, the browser is: %s", got)
	}

	// Cross-site WebSocket hijacking from a same-site page: the browser
	// sends the session cookie (SameSite=Lax allows it), the sidecar
	// refuses the handshake.
	do("hijack", chromedp.Navigate(sameSite+"/ws"))
	if got := waitFor("hijack", titleOutcome); got != "closed" {
		t.Errorf("WebSocket from %s: %q", sameSite, got)
	}
}
