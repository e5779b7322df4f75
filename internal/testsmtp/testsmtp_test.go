package testsmtp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/mailer"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testsmtp"
)

// Each mode delivers a mail sent through the mailer into the Maildir, and
// TLS is verified against the server's CA (another CA is refused).
func TestServerReceives(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode testsmtp.Mode
	}{{"plain", testsmtp.Plain}, {"starttls", testsmtp.StartTLS}, {"smtps", testsmtp.Implicit}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testsmtp.Start(t, tc.mode)
			m, err := mailer.New(mailer.Config{URL: srv.URL(), From: "Sidecar <noreply@example.com>", CAFile: srv.CAFile, Timeout: 10 * time.Second}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(time.Second)
			msg := &mailer.Message{To: "ann@example.com", Subject: "Hello", Body: "Line one\r\nhttps://example.com/reset/" + strings.Repeat("x", 90) + "\r\n", Kind: "test"}
			if err := m.Send(context.Background(), msg); err != nil {
				t.Fatalf("send: %v\nserver log:\n%s", err, srv.Log())
			}
			got := srv.WaitFor(t, "ann@example.com", 5*time.Second, nil)
			if got.Subject != "Hello" || !strings.Contains(got.Body, "https://example.com/reset/"+strings.Repeat("x", 90)) {
				t.Fatalf("delivered %q: %q", got.Subject, got.Body)
			}
			if from := got.Header.Get("From"); !strings.Contains(from, "noreply@example.com") {
				t.Errorf("From %q", from)
			}
			if tc.mode != testsmtp.Plain {
				bad, err := mailer.New(mailer.Config{URL: srv.URL(), From: "noreply@example.com", CAFile: srv.OtherCAFile, Timeout: 5 * time.Second}, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer bad.Close(time.Second)
				if err := bad.Send(context.Background(), &mailer.Message{To: "bob@example.com", Subject: "x", Body: "x"}); err == nil {
					t.Fatal("a server whose certificate another CA signed was trusted")
				}
				if n := srv.Count(t, "bob@example.com"); n != 0 {
					t.Fatalf("%d mails delivered over an untrusted TLS connection", n)
				}
			}
		})
	}
}
