//go:build linux

package caddymodule_test

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Two sidecar processes on one PostgreSQL and Redis: whatever ends access
// through one of them, the CLI on PostgreSQL, or the admin API of one, is
// refused by the other within 1 s (issue 10 item 4): logout-all, password
// change, set-password, deactivation and deletion. The delay, from the
// change's answer to the other instance's first refusal, is logged per
// kind (median, p90, max) for BENCHMARKS.md.
func TestScaleOutRevocationDelay(t *testing.T) {
	c := startScaleOut(t, 2, false)
	a, b := c.sidecars[0].base, c.sidecars[1].base
	if st, body := c.send("POST", a+"/api/register/", "", "", "10.7.0.1", registration("erin")); st != 201 {
		t.Fatalf("register: %d %s", st, body)
	}
	l := &cliLog{t: t}
	password := strongPassword
	const rounds = 12
	kinds := []struct {
		name string
		do   func(t *testing.T, cookieA, csrfA string)
		undo func(t *testing.T)
	}{
		{"logout-all (API, instance A)", func(t *testing.T, cookieA, csrfA string) {
			if st, body := c.send("POST", a+"/api/logout/all/", cookieA, csrfA, "", nil); st != 200 {
				t.Fatalf("logout-all: %d %s", st, body)
			}
		}, nil},
		{"password change (API, instance A)", func(t *testing.T, cookieA, csrfA string) {
			next := "Fresh-Horse-" + fmt.Sprint(time.Now().UnixNano())
			if st, body := c.send("POST", a+"/api/password/", cookieA, csrfA, "", map[string]string{
				"old_password": password, "new_password": next, "new_password2": next}); st != 200 {
				t.Fatalf("password change: %d %s", st, body)
			}
			password = next
		}, nil},
		{"set-password (CLI --db postgres://)", func(t *testing.T, _, _ string) {
			next := "Cli-Horse-" + fmt.Sprint(time.Now().UnixNano())
			l.ok(next+"\n", "set-password", "--username", "erin", "--password-stdin", "--db", c.pgURL)
			password = next
		}, nil},
		{"deactivate (CLI --db postgres://)", func(t *testing.T, _, _ string) {
			l.ok("", "deactivate", "--username", "erin", "--db", c.pgURL)
		}, func(t *testing.T) { l.ok("", "activate", "--username", "erin", "--db", c.pgURL) }},
		{"delete-user (CLI --db postgres://)", func(t *testing.T, _, _ string) {
			l.ok("", "delete-user", "--username", "erin", "--db", c.pgURL)
		}, func(t *testing.T) {
			l.ok(password+"\n", "create-user", "--username", "erin", "--email", "erin@example.com", "--password-stdin", "--db", c.pgURL)
		}},
		{"deactivate (admin API of instance A)", func(t *testing.T, _, _ string) {
			l.ok("", "deactivate", "--username", "erin", "--address", c.adminAddr[0])
		}, func(t *testing.T) { l.ok("", "activate", "--username", "erin", "--address", c.adminAddr[0]) }},
	}
	var all []time.Duration
	for _, k := range kinds {
		var delays []time.Duration
		for range rounds {
			cookieB, _ := loginAs(t, c, b, "erin", password)
			cookieA, csrfA := loginAs(t, c, a, "erin", password)
			// B has the user (and the session) cached.
			for range 3 {
				if st, body := get(t, c.client, b+"/app/page", cookieB); st != 200 {
					t.Fatalf("%s: B refused a live session: %d %s", k.name, st, body)
				}
			}
			k.do(t, cookieA, csrfA)
			done := time.Now()
			for {
				st, body := get(t, c.client, b+"/app/page", cookieB)
				if st != 200 {
					if st != 401 && st != 403 {
						t.Fatalf("%s: B answered %d %s", k.name, st, body)
					}
					delays = append(delays, time.Since(done))
					break
				}
				if time.Since(done) > time.Second {
					t.Fatalf("%s: B still accepts the session %v after the change", k.name, time.Since(done))
				}
			}
			if k.undo != nil {
				k.undo(t)
			}
		}
		all = append(all, delays...)
		t.Logf("%-40s %s", k.name, delayStats(delays))
	}
	t.Logf("%-40s %s", "all kinds", delayStats(all))
}

// loginAs logs in on base with password and returns the Cookie header
// value and the CSRF token.
func loginAs(t *testing.T, c *scaleOut, base, user, password string) (string, string) {
	t.Helper()
	return loginWith(t, c.client, base, user, password)
}

func delayStats(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return "no samples"
	}
	return fmt.Sprintf("n=%d median %v p90 %v max %v", len(s), s[len(s)/2].Round(10*time.Microsecond),
		s[(len(s)*9)/10].Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}
