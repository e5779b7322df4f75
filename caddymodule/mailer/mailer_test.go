package mailer

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	for raw, want := range map[string]Server{
		"smtp://mail.example.com":                 {Host: "mail.example.com", Port: 25},
		"smtp://u%40x:p%3Aw@mail.example.com:587": {Host: "mail.example.com", Port: 587, User: "u@x", Password: "p:w"},
		"smtps://mail.example.com":                {Host: "mail.example.com", Port: 465, Implicit: true},
		"SMTPS://[::1]:2465":                      {Host: "::1", Port: 2465, Implicit: true},
	} {
		got, err := ParseURL(raw)
		if err != nil || got != want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for _, bad := range []string{"", "mail.example.com", "http://x", "smtp://", "smtp://x:0", "smtp://x:y", "smtp://x/path", "smtp://x?q=1", "%%"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
	s, _ := ParseURL("smtp://user:secret@mail.example.com:587")
	if str := s.String(); strings.Contains(str, "secret") || str != "smtp://user:xxxxx@mail.example.com:587" {
		t.Errorf("String() = %q", str)
	}
}

func TestParseFrom(t *testing.T) {
	if a, err := ParseFrom(`"Example" <noreply@example.com>`); err != nil || a.Address != "noreply@example.com" || a.Name != "Example" {
		t.Errorf("ParseFrom: %+v %v", a, err)
	}
	if _, err := ParseFrom("nobody"); err == nil {
		t.Error("ParseFrom accepted a non-address")
	}
}

// The queue never blocks: past its size Enqueue drops with ErrQueueFull;
// after Close it says ErrClosed; Close gives up on a hung server after
// its wait.
func TestQueueBoundsAndClose(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // a server that accepts and never speaks
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	var failed atomic.Int32
	m, err := New(Config{URL: "smtp://" + l.Addr().String(), From: "a@example.com", Timeout: 30 * time.Second, Queue: 2}, nil,
		func(_ *Message, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	prepare := func(context.Context) *Message { return &Message{To: "b@example.com", Subject: "s", Body: "b"} }
	var full int
	for range 10 {
		start := time.Now()
		if err := m.Enqueue(prepare); errors.Is(err, ErrQueueFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Enqueue blocked for %v", d)
		}
	}
	if full < 7 {
		t.Errorf("%d of 10 dropped with a queue of 2 and a hung server, want at least 7", full)
	}
	m.Close(200 * time.Millisecond)
	if err := m.Enqueue(prepare); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close: %v", err)
	}
	if failed.Load() == 0 {
		t.Error("the abandoned delivery was not reported as failed")
	}
}
