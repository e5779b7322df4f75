package caddymodule_test

import (
	"os"
	"strings"
	"testing"
)

// The README's examples of account mail and of the audit log's `log`
// block adapt as written.
func TestReadmeAccountMailExamples(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "## Account mail, sessions and the audit log")
	if start < 0 {
		t.Fatal("README has no account mail section")
	}
	section := readme[start:]
	section = section[:strings.Index(section[3:], "\n## ")+3]
	var blocks []string
	for rest := section; ; {
		i := strings.Index(rest, "```caddyfile\n")
		if i < 0 {
			break
		}
		rest = rest[i+len("```caddyfile\n"):]
		j := strings.Index(rest, "```")
		blocks = append(blocks, rest[:j])
		rest = rest[j+3:]
	}
	if len(blocks) != 2 {
		t.Fatalf("%d caddyfile examples in the section, want 2", len(blocks))
	}
	t.Setenv("SMTP_URL", "smtp://user:pw@mail.example.com:587")
	// The handler block, in a site; the log block, as global options.
	src := blocks[1] + "\n:8000 {\n" + blocks[0] + "\n}\n"
	cfg, err := adapt(src)
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	for _, want := range []string{`"smtp":"smtp://user:pw@mail.example.com:587"`, `"email_verification":"optional"`,
		`"password_reset_url":"https://app.example.com/reset/{uid}/{token}"`, `"include":["http.handlers.session_auth.audit"]`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("adapted README example lacks %s:\n%s", want, cfg)
		}
	}
}
