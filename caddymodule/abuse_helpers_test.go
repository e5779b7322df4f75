package caddymodule_test

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// try sends one request and reports transport errors instead of failing
// the test, so it may run on any goroutine.
func (s *site) try(t testing.TB, q req) (*response, error) {
	resp, err := s.client.Do(s.newRequest(t, q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{resp, b}, nil
}

// timed runs fn and returns how long it took.
func timed(fn func()) time.Duration {
	start := time.Now()
	fn()
	return time.Since(start)
}

func credsJSON(username, password string) string {
	return fmt.Sprintf(`{"username":%q,"password":%q}`, username, password)
}
