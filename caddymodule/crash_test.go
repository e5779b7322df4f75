//go:build linux

package caddymodule_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// kill -9 of Caddy in the middle of a flood of registrations: the bbolt
// file passes bbolt's consistency check, and after a restart every user
// who got a 201 logs in.
func TestCrashDuringRegistrations(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "users.db")
	port := freePort(t)
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
}

http://127.0.0.1:%d {
	session_auth {
		users_db %s
		register_throttle off
		login_throttle off
	}
	respond "app" 200
}
`, port, dbPath)
	p := startCaddyProc(t, bin, dir, caddyfile, port)

	client := &http.Client{Timeout: 10 * time.Second}
	post := func(base, path string, v any) (int, error) {
		b, _ := json.Marshal(v)
		resp, err := client.Post(base+path, "application/json", bytes.NewReader(b))
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	var (
		mu      sync.Mutex
		created []string
		other   = map[int]int{}
	)
	const floodWorkers = 8
	var wg sync.WaitGroup
	for w := range floodWorkers {
		wg.Go(func() {
			for i := 0; ; i++ {
				name := fmt.Sprintf("flood%d_%d", w, i)
				status, err := post(p.base, "/api/register/", map[string]string{
					"username": name, "email": name + "@example.com", "password": strongPassword, "password2": strongPassword})
				if err != nil {
					return // the process is gone
				}
				mu.Lock()
				if status == 201 {
					created = append(created, name)
				} else {
					other[status]++
				}
				mu.Unlock()
			}
		})
	}
	// Let registrations pile up, then kill -9 while they are in flight.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(created)
		mu.Unlock()
		if n >= 40 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill()
	wg.Wait()
	if len(other) > 0 {
		t.Errorf("registrations answered other than 201: %v", other)
	}
	if len(created) == 0 {
		t.Fatal("no registration succeeded before the kill")
	}

	// The file as the killed process left it.
	db, err := bbolt.Open(dbPath, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("opening the DB after kill -9: %v", err)
	}
	var stored int
	err = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		if b := tx.Bucket([]byte("users")); b != nil {
			stored = b.Stats().KeyN
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if stored < len(created) {
		t.Errorf("%d users in the file, %d were acknowledged with 201", stored, len(created))
	}

	p2 := startCaddyProc(t, bin, dir, caddyfile, port)
	var failed []string
	var lwg sync.WaitGroup
	names := make(chan string)
	for range 4 {
		lwg.Go(func() {
			for name := range names {
				status, err := post(p2.base, "/api/login/", map[string]string{"username": name, "password": strongPassword})
				if err != nil || status != 200 {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%s: %d %v", name, status, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, name := range created {
		names <- name
	}
	close(names)
	lwg.Wait()
	for _, f := range failed {
		t.Errorf("acknowledged user cannot log in after the crash: %s", f)
	}
	t.Logf("killed with %d registrations acknowledged (%d users in the file); all logged in after restart",
		len(created), stored)
}
