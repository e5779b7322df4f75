package caddymodule_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testpg"
	"github.com/caddy-session-auth/caddy-session-auth/internal/testredis"
	"github.com/caddyserver/caddy/v2"
)

// Issue 11: the sidecar on Django's own auth_user table, with a real
// Django project (examples/django-shared: Debian's python3-django,
// python3-psycopg2, python3-argon2) on the same PostgreSQL schema.

// djangoShared runs examples/django-shared's manage.py against one
// PostgreSQL schema.
type djangoShared struct {
	t      *testing.T
	python string
	dir    string
	env    []string
}

func newDjangoShared(t *testing.T, pg *testpg.DB) *djangoShared {
	t.Helper()
	python := djangoPython(t)
	if out, err := exec.Command(python, "-c", "import psycopg2, argon2").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("%s cannot import psycopg2 and argon2 (apt-get install python3-psycopg2 python3-argon2): %s", python, out)
		if os.Getenv("SESSION_AUTH_REQUIRE_DJANGO") == "1" {
			t.Fatal(msg + " and SESSION_AUTH_REQUIRE_DJANGO=1")
		}
		t.Skip("SKIPPING Django shared-users test: " + msg)
	}
	dir, err := filepath.Abs("../examples/django-shared")
	if err != nil {
		t.Fatal(err)
	}
	d := &djangoShared{t: t, python: python, dir: dir, env: append(os.Environ(),
		"DATABASE_URL="+pg.URL, "PYTHONDONTWRITEBYTECODE=1", "DJANGO_SUPERUSER_PASSWORD=Dj4ngo-Adm1n-Pass")}
	d.manage("migrate", "-v0")
	return d
}

// manage runs manage.py with args and returns its output.
func (d *djangoShared) manage(args ...string) string {
	d.t.Helper()
	cmd := exec.Command(d.python, append([]string{"manage.py"}, args...)...)
	cmd.Dir, cmd.Env = d.dir, d.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("manage.py %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// shell runs Python in Django's shell and returns what it printed.
func (d *djangoShared) shell(code string) string {
	d.t.Helper()
	return d.manage("shell", "-c", "from django.contrib.auth.models import User, Group\nfrom django.contrib.auth import authenticate\n"+code)
}

func TestDjangoSharedUsers(t *testing.T) {
	for _, hasher := range []string{"pbkdf2_sha256", "argon2"} {
		t.Run(hasher, func(t *testing.T) { testDjangoSharedUsers(t, hasher) })
	}
}

func testDjangoSharedUsers(t *testing.T, hasher string) {
	pg := testpg.New(t)
	dj := newDjangoShared(t, pg)
	extra := "django_users\npassword_hasher " + hasher + "\n" + throttlesOff
	if hasher == "pbkdf2_sha256" {
		extra += "\npbkdf2_iterations 30000" // Django's 1.5 million is the default; kept short for the test
	}
	s := startCustomSite(t, siteConfig{usersDB: pg.URL, redisURL: testredis.Start(t).URL(), extra: extra})
	conn := pg.Conn(t)
	ctx := context.Background()

	// createsuperuser in Django: that user logs in through the sidecar, as
	// a superuser and staff.
	dj.manage("createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com")
	admin := s.login(t, "admin", "Dj4ngo-Adm1n-Pass")
	r := s.do(t, req{method: "GET", path: "/app/", session: admin})
	if r.StatusCode != 200 || r.echo(t).Headers["X-Auth-Username"][0] != "admin" {
		t.Fatalf("Django's superuser at the gate: %d %s", r.StatusCode, r.body)
	}
	var lastLogin *time.Time
	if err := conn.QueryRow(ctx, `SELECT last_login FROM auth_user WHERE username = 'admin'`).Scan(&lastLogin); err != nil || lastLogin == nil {
		t.Errorf("last_login after a sidecar login: %v (%v)", lastLogin, err)
	}

	// A user registered through the sidecar is Django's, with a hash in
	// the configured format that Django's authenticate() accepts.
	bob := s.newUser(t, "bob")
	var hash string
	if err := conn.QueryRow(ctx, `SELECT password FROM auth_user WHERE username = 'bob'`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"pbkdf2_sha256": "pbkdf2_sha256$30000$", "argon2": "argon2$argon2id$"}[hasher]; !strings.HasPrefix(hash, want) {
		t.Errorf("stored hash %.40s…, want %s…", hash, want)
	}
	if out := dj.shell(fmt.Sprintf(`print(authenticate(username="bob", password=%q) is not None)`, strongPassword)); !strings.HasSuffix(out, "True") {
		t.Errorf("Django's authenticate() for a user registered at the sidecar: %q", out)
	}

	// Django's authenticate() upgraded the hash to its own parameters
	// (Django 3.2: 260,000 iterations; its own argon2 costs), which ends
	// the user's sessions on both sides, as Django's session auth hash
	// does; matching pbkdf2_iterations to Django's avoids that.
	bob = s.login(t, "bob", strongPassword)

	// A group given in Django reaches the upstream at once.
	dj.shell(`g, _ = Group.objects.get_or_create(name="editors"); User.objects.get(username="bob").groups.add(g)`)
	if r := s.do(t, req{method: "GET", path: "/app/", session: bob}); r.StatusCode != 200 || r.echo(t).Headers["X-Auth-Groups"][0] != "editors" {
		t.Errorf("groups from Django: %d %v", r.StatusCode, r.echo(t).Headers["X-Auth-Groups"])
	}

	// set_password in Django ends the sidecar session within 1 s, and the
	// new password logs in at the sidecar.
	dj.shell(`u = User.objects.get(username="bob"); u.set_password("N3w-Dj4ngo-Secret"); u.save()`)
	t.Logf("password set in Django: session refused after %v", refusedWithin(t, s, bob, time.Second))
	bob = s.login(t, "bob", "N3w-Dj4ngo-Secret")

	// Deactivation in Django ends it too.
	dj.shell(`User.objects.filter(username="bob").update(is_active=False)`)
	t.Logf("deactivated in Django: session refused after %v", refusedWithin(t, s, bob, time.Second))
	if r := s.do(t, req{method: "POST", path: "/api/login/", body: credsJSON("bob", "N3w-Dj4ngo-Secret")}); r.StatusCode != 400 {
		t.Errorf("login of a user deactivated in Django: %d %s", r.StatusCode, r.body)
	}

	// A user deleted in Django is refused at the gate.
	carol := s.newUser(t, "carol")
	dj.shell(`User.objects.get(username="carol").delete()`)
	if r := s.do(t, req{method: "GET", path: "/app/", session: carol}); r.StatusCode != 403 {
		t.Errorf("gate for a user deleted in Django: %d %s", r.StatusCode, r.body)
	}

	// A hash in another format (made by Django) is upgraded to the
	// configured one at the next sidecar login, as Django does.
	other := map[string]string{"pbkdf2_sha256": "argon2", "argon2": "pbkdf2_sha256"}[hasher]
	dj.shell(fmt.Sprintf(`from django.contrib.auth.hashers import make_password
User.objects.create(username="dora", email="d@example.com", password=make_password("D0ra-Dj4ngo-Secret", hasher=%q))`, other))
	s.login(t, "dora", "D0ra-Dj4ngo-Secret")
	if err := conn.QueryRow(ctx, `SELECT password FROM auth_user WHERE username = 'dora'`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, map[string]string{"pbkdf2_sha256": "pbkdf2_sha256$", "argon2": "argon2$"}[hasher]) {
		t.Errorf("a %s hash after a sidecar login: %.30s…, want it upgraded to %s", other, hash, hasher)
	}
	if out := dj.shell(`print(authenticate(username="dora", password="D0ra-Dj4ngo-Secret") is not None)`); !strings.HasSuffix(out, "True") {
		t.Errorf("Django after the upgrade: %q", out)
	}

	// The CLI on the database directly writes Django's format too.
	args := []string{"create-user", "--username", "erin", "--email", "erin@example.com", "--password-stdin",
		"--db", pg.URL, "--django-users", "--password-hasher", hasher}
	if hasher == "pbkdf2_sha256" {
		args = append(args, "--pbkdf2-iterations", "30000")
	}
	l := &cliLog{t: t}
	l.ok("Er1n-Str0ng-Secret\n", args...)
	// Groups are Django's: the CLI says so instead of writing them.
	l.fails([]string{"groups are Django's"}, "", "add-to-group", "--username", "erin", "--group", "editors", "--db", pg.URL, "--django-users")
	if out := dj.shell(`print(authenticate(username="erin", password="Er1n-Str0ng-Secret") is not None)`); !strings.HasSuffix(out, "True") {
		t.Errorf("Django's authenticate() for a user made by the CLI: %q", out)
	}

	// Case variants: the sidecar refuses to register one.
	if r := s.register(t, "ADMIN", "x@example.com", strongPassword); r.StatusCode != 400 {
		t.Errorf("registering ADMIN next to Django's admin: %d %s", r.StatusCode, r.body)
	}
}

// Start-up without Django's tables fails with a message that says what to
// do.
func TestDjangoUsersWithoutDjangoTables(t *testing.T) {
	pg := testpg.New(t)
	redisURL := testredis.Start(t).URL()
	dir := t.TempDir()
	for _, c := range []struct{ fields, want string }{
		{fmt.Sprintf(`"users_db":%q,"django_users":true,"redis":%q`, pg.URL, redisURL), "django_users: there is no auth_user table"},
		{fmt.Sprintf(`"users_db":%q,"django_users":true`, filepath.Join(dir, "u.db")), "django_users: needs users_db to be the PostgreSQL database Django uses"},
		{fmt.Sprintf(`"users_db":%q,"password_hasher":"argon2"`, filepath.Join(dir, "u.db")), "password_hasher: only with django_users"},
		{fmt.Sprintf(`"users_db":%q,"django_users":true,"redis":%q,"password_hasher":"md5"`, pg.URL, redisURL), `password_hasher: "md5" is not pbkdf2_sha256 or argon2`},
		{fmt.Sprintf(`"users_db":%q,"django_users":true,"redis":%q,"pbkdf2_iterations":-5`, pg.URL, redisURL), "pbkdf2_iterations: want 1 to 10000000"},
	} {
		cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:%d"],"routes":[{"handle":[{"handler":"session_auth",%s}]}]}}}}}`,
			freePort(t), c.fields)
		err := caddy.Load([]byte(cfg), true)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.fields, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "password=") {
			t.Errorf("message shows a password: %v", err)
		}
	}
}
