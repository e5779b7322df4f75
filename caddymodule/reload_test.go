package caddymodule_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule"
)

// Ten reloads with changed configs, some moving users_db to a snapshot of
// the DB and back, while clients keep sending requests with a session: no
// request gets an error status or hangs (a request on an idle keep-alive
// connection that a reload closed before any response is retried, as
// browsers do), no reload hangs on the bbolt lock, and the session lives on.
func TestReloadUnderLoad(t *testing.T) {
	storeKinds(t, func(t *testing.T, redisURL string) {
		s := startSite(t, redisURL, "")
		sess := s.newUser(t, "steady")
		dbA, dbB := s.dbPath, filepath.Join(t.TempDir(), "snapshot.db")
		// B holds the same user (and, for bbolt, the same session).
		if err := caddymodule.SnapshotDB(dbA, dbB); err != nil {
			t.Fatal(err)
		}

		var (
			mu                     sync.Mutex
			sent, retried, slowest = 0, 0, time.Duration(0)
			problems               []string
		)
		requests := []req{
			{method: "GET", path: "/app/page", session: sess},
			{method: "GET", path: "/api/user/", session: sess},
			{method: "POST", path: "/app/form", session: sess, csrf: true, body: `{"a":1}`},
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for c := range 3 {
			wg.Go(func() {
				for i := c; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					q := requests[i%len(requests)]
					start := time.Now()
					r, err := s.try(t, q)
					again := false
					for attempt := 0; attempt < 3 && err != nil && isConnectionLost(err); attempt++ {
						again = true
						r, err = s.try(t, q)
					}
					took := time.Since(start)
					mu.Lock()
					sent++
					if again {
						retried++
					}
					slowest = max(slowest, took)
					switch {
					case err != nil:
						problems = append(problems, fmt.Sprintf("%s %s: %v", q.method, q.path, err))
					case r.StatusCode >= 400:
						problems = append(problems, fmt.Sprintf("%s %s: %d %s", q.method, q.path, r.StatusCode, r.body))
					case took > 5*time.Second:
						problems = append(problems, fmt.Sprintf("%s %s took %v", q.method, q.path, took))
					}
					mu.Unlock()
				}
			})
		}

		for i := range 10 {
			extra := fmt.Sprintf("cors_origins http://r%d.example", i)
			if i%3 == 2 { // every third reload moves to the other DB file
				if s.dbPath == dbA {
					s.dbPath = dbB
				} else {
					s.dbPath = dbA
				}
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.reloadWith(redisURL, extra)
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("reload %d hung", i)
			}
			time.Sleep(40 * time.Millisecond) // let requests run on this config
		}
		close(stop)
		wg.Wait()

		t.Logf("%d requests across 10 reloads, %d retried after a closed idle connection, slowest %v",
			sent, retried, slowest.Round(time.Millisecond))
		for _, p := range problems {
			t.Error(p)
		}
		if sent < 30 {
			t.Errorf("only %d requests ran during the reloads", sent)
		}
		if r := s.do(t, req{method: "GET", path: "/api/user/", session: sess}); r.StatusCode != 200 {
			t.Errorf("session after the reloads: %d %s", r.StatusCode, r.body)
		}
		// users_db changed under the running config: writes land in the
		// file now configured.
		if r := s.register(t, "afterwards", "a@example.com", strongPassword); r.StatusCode != 201 {
			t.Fatalf("register after the reloads: %d %s", r.StatusCode, r.body)
		}
		if u, err := caddymodule.UsersOf(s.dbPath).ByUsername(context.Background(), "afterwards"); err != nil || u == nil {
			t.Errorf("new user not in %s: %v", s.dbPath, err)
		}
	})
}
