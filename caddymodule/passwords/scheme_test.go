package passwords

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// djangoCheck runs Django's own check_password (Debian's python3-django,
// with python3-argon2 for the argon2 hasher) on pairs of password and
// hash, and returns its answers; it also returns hashes Django's
// make_password wrote with each hasher for the given password.
const djangoCheckPy = `
import json, sys
from django.conf import settings
settings.configure(PASSWORD_HASHERS=[
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
])
import django
django.setup()
from django.contrib.auth.hashers import check_password, make_password
req = json.load(sys.stdin)
out = {"checks": [check_password(p, h) for p, h in req["checks"]],
       "made": {n: make_password(req["password"], hasher=n) for n in ("pbkdf2_sha256", "argon2")}}
json.dump(out, sys.stdout)
`

func runDjangoCheck(t *testing.T, password string, checks [][2]string) (answers []bool, made map[string]string) {
	t.Helper()
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import django, argon2").CombinedOutput(); err != nil {
		msg := "no Django with argon2-cffi for " + python + " (apt-get install python3-django python3-argon2): " + string(out)
		if os.Getenv("SESSION_AUTH_REQUIRE_DJANGO") == "1" {
			t.Fatal(msg + " and SESSION_AUTH_REQUIRE_DJANGO=1")
		}
		t.Skip("SKIPPING Django hasher test: " + msg)
	}
	in, _ := json.Marshal(map[string]any{"password": password, "checks": checks})
	cmd := exec.Command(python, "-c", djangoCheckPy)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("Django: %v", err)
	}
	var res struct {
		Checks []bool            `json:"checks"`
		Made   map[string]string `json:"made"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("Django said %s: %v", out, err)
	}
	return res.Checks, res.Made
}

// What the sidecar writes with each password_hasher, Django verifies; what
// Django writes, the sidecar verifies; and the rehash rules are Django's.
func TestSchemesAgainstDjango(t *testing.T) {
	ctx := context.Background()
	h := NewHasher(Params{}, 2)
	const pw = "correct horse battery stäple"
	pbkdf2 := Scheme{Kind: SchemeDjangoPBKDF2, Iterations: 1000}
	argon := Scheme{Kind: SchemeDjangoArgon2}
	hp, err := h.HashAs(ctx, pw, pbkdf2)
	if err != nil || !strings.HasPrefix(hp, "pbkdf2_sha256$1000$") {
		t.Fatalf("pbkdf2 hash %q (%v)", hp, err)
	}
	ha, err := h.HashAs(ctx, pw, argon)
	if err != nil || !strings.HasPrefix(ha, "argon2$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("argon2 hash %q (%v)", ha, err)
	}
	answers, made := runDjangoCheck(t, pw, [][2]string{{pw, hp}, {pw, ha}, {pw + "x", hp}, {pw + "x", ha}})
	if want := []bool{true, true, false, false}; !slicesEqual(answers, want) {
		t.Errorf("Django's check_password: %v, want %v", answers, want)
	}
	for name, enc := range made {
		ok, _, err := h.Verify(ctx, pw, enc)
		if !ok || err != nil {
			t.Errorf("Django's %s hash %q: ok %v err %v", name, enc, ok, err)
		}
	}

	// Rehash rules: current only when exactly what the scheme writes.
	for _, c := range []struct {
		enc    string
		s      Scheme
		rehash bool
	}{
		{hp, pbkdf2, false},
		{hp, Scheme{Kind: SchemeDjangoPBKDF2, Iterations: 2000}, true}, // fewer iterations than configured
		{ha, pbkdf2, true},            // another algorithm
		{ha, argon, false},            // our params
		{hp, argon, true},             // another algorithm
		{made["argon2"], argon, true}, // Django's argon2 params differ from ours
	} {
		ok, rehash, err := h.VerifyAs(ctx, pw, c.enc, c.s)
		if !ok || err != nil || rehash != c.rehash {
			t.Errorf("VerifyAs(%.30s…, %s): ok %v rehash %v err %v, want rehash %v", c.enc, c.s, ok, rehash, err, c.rehash)
		}
	}
	// A sidecar argon2id PHC hash is upgraded to the Django format.
	phc, _ := h.Hash(ctx, pw)
	if ok, rehash, _ := h.VerifyAs(ctx, pw, phc, argon); !ok || !rehash {
		t.Errorf("a PHC hash under the Django argon2 scheme: ok %v rehash %v", ok, rehash)
	}
}

func TestParseScheme(t *testing.T) {
	for _, c := range []struct {
		name string
		it   int
		want Scheme
		err  string
	}{
		{"pbkdf2_sha256", 0, Scheme{Kind: SchemeDjangoPBKDF2, Iterations: DjangoPBKDF2Iterations}, ""},
		{"pbkdf2_sha256", 600000, Scheme{Kind: SchemeDjangoPBKDF2, Iterations: 600000}, ""},
		{"argon2", 0, Scheme{Kind: SchemeDjangoArgon2}, ""},
		{"argon2", 5, Scheme{}, "pbkdf2_iterations: only with password_hasher pbkdf2_sha256"},
		{"bcrypt", 0, Scheme{}, `password_hasher: "bcrypt" is not pbkdf2_sha256 or argon2`},
		{"pbkdf2_sha256", -1, Scheme{}, "pbkdf2_iterations: want 1 to 10000000"},
	} {
		got, err := ParseScheme(c.name, c.it)
		if (err == nil) != (c.err == "") || (err != nil && err.Error() != c.err) || got != c.want {
			t.Errorf("ParseScheme(%q, %d) = %+v, %v; want %+v, %q", c.name, c.it, got, err, c.want, c.err)
		}
	}
}

func slicesEqual(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
