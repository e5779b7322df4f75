//go:build unix

package testredis

import "testing"

func TestFreezeThaw(t *testing.T) {
	s := Start(t)
	if !s.Private() {
		t.Skip("external Redis: cannot freeze it")
	}
	s.Freeze()
	if err := ping(s.URL()); err == nil {
		t.Fatal("PING answered while frozen")
	}
	s.Thaw()
	if err := ping(s.URL()); err != nil {
		t.Fatalf("PING after Thaw: %v", err)
	}
	s.Freeze() // Stop at cleanup kills a frozen server too
}
