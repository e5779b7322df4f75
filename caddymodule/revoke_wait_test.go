package caddymodule_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
)

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The old password on password/ is checked with login's bounded wait for a
// hashing slot: no slot within the wait is a 503, and neither that nor a
// client that gives up while waiting counts as a wrong password toward the
// user's ban.
func TestPasswordChangeHashWait(t *testing.T) {
	s := startCustomSite(t, siteConfig{extra: "login_throttle 2 100 1m 1m\nregister_throttle off"})
	sess := s.newUser(t, "waiter")
	change := req{method: "POST", path: "/api/password/", session: sess, csrf: true,
		body: passwordBody("wrong-guess", newPassword, newPassword)}

	release := caddymodule.HoldHashSlots()
	held := true
	defer func() {
		if held {
			release()
		}
	}()

	// Two clients give up while their check waits for a slot.
	for i := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			resp, err := s.client.Do(s.newRequest(t, change).WithContext(ctx))
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		waitUntil(t, "the change waits for a hashing slot", func() bool { return caddymodule.HashWaiters() == 1 })
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled change %d: %v", i, err)
		}
		waitUntil(t, "the cancelled change is done", func() bool { return caddymodule.WaitIdle(0) })
	}

	// No slot within the wait: 503, the cookie kept.
	restore := caddymodule.SetHashWait(200 * time.Millisecond)
	defer restore()
	for i := range 2 {
		r, err := s.try(t, change)
		if err != nil {
			t.Errorf("change %d without a slot: %v, want a 503", i, err)
			continue
		}
		if r.StatusCode != 503 || string(r.body) != `{"detail":"Service temporarily unavailable, try again later."}` ||
			len(r.Header["Set-Cookie"]) != 0 {
			t.Errorf("change %d without a slot: %d %s %v, want 503", i, r.StatusCode, r.body, r.Header["Set-Cookie"])
		}
	}
	release()
	held = false
	restore()
	if !caddymodule.WaitIdle(30 * time.Second) {
		t.Fatal("requests still running")
	}

	// Four checks that never ran counted nothing: the user (2 failures
	// ban) is not banned, and the session still works.
	wantStatus(t, "login after the unanswered checks", s.loginAs(t, "waiter", strongPassword, nil), 200)
	wantStatus(t, "the session", s.do(t, req{method: "GET", path: "/api/user/", session: sess}), 200)
	// Checks that ran still count.
	for range 2 {
		wantStatus(t, "wrong old password", s.do(t, change), 400)
	}
	assertThrottled(t, "after two wrong old passwords", s.loginAs(t, "waiter", strongPassword, nil), 60)
}
