package caddymodule_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	userpg "github.com/caddy-session-auth/caddy-session-auth/caddymodule/users/postgres"
)

// groupsOf reads the groups list-users --json shows for name.
func groupsOf(t *testing.T, l *cliLog, name string, where ...string) []string {
	t.Helper()
	u := byUsername(l.listJSON(where...), name)
	if u == nil {
		t.Fatalf("no user %q", name)
	}
	var out []string
	b, _ := json.Marshal(u["groups"])
	if err := json.Unmarshal(b, &out); err != nil || out == nil {
		t.Fatalf("groups of %q: %s (%v)", name, b, err)
	}
	return out
}

// add-to-group, remove-from-group and list-users with --db.
func TestCLIGroupsWithDB(t *testing.T) { cliDBs(t, testCLIGroupsWithDB) }

func testCLIGroupsWithDB(t *testing.T, dbPath string) {
	db := []string{"--db", dbPath}
	with := func(args ...string) []string { return append(args, db...) }
	l := &cliLog{t: t}
	if userpg.IsURL(dbPath) {
		l.fails([]string{`no user named "ann"`}, "", with("add-to-group", "--username", "ann", "--group", "x")...)
	} else {
		l.fails([]string{"does not exist"}, "", with("add-to-group", "--username", "ann", "--group", "x")...)
	}
	l.ok("Corr3ct-Horse-Battery\n", with("create-user", "--username", "ann", "--email", "ann@example.com", "--password-stdin")...)

	if r := l.ok("", with("add-to-group", "--username", "ANN", "--group", " Content Editors ")...); r.stdout != `added "ann" (id 1) to group "Content Editors"`+"\n" {
		t.Errorf("add-to-group: %q", r.stdout)
	}
	if r := l.ok("", with("add-to-group", "--username", "ann", "--group", "Content Editors")...); r.stdout != `"ann" (id 1) was already in group "Content Editors"`+"\n" {
		t.Errorf("add-to-group again: %q", r.stdout)
	}
	l.ok("", with("add-to-group", "--username", "ann", "--group", "analysts")...)
	if g := groupsOf(t, l, "ann", db...); !slices.Equal(g, []string{"Content Editors", "analysts"}) {
		t.Errorf("groups %q", g)
	}
	table := l.ok("", with("list-users")...).stdout
	if !strings.Contains(table, "GROUPS") || !strings.Contains(table, "Content Editors,analysts") {
		t.Errorf("list-users table:\n%s", table)
	}
	l.fails([]string{`group "a,b"`, "commas"}, "", with("add-to-group", "--username", "ann", "--group", "a,b")...)
	l.fails([]string{"no more than 150 characters"}, "", with("add-to-group", "--username", "ann", "--group", strings.Repeat("g", 151))...)
	l.fails([]string{"--group is required"}, "", with("add-to-group", "--username", "ann")...)
	l.fails([]string{`no user named "nobody"`}, "", with("add-to-group", "--username", "nobody", "--group", "x")...)

	if r := l.ok("", with("remove-from-group", "--username", "ann", "--group", "analysts")...); r.stdout != `removed "ann" (id 1) from group "analysts"`+"\n" {
		t.Errorf("remove-from-group: %q", r.stdout)
	}
	if r := l.ok("", with("remove-from-group", "--username", "ann", "--group", "analysts")...); r.stdout != `"ann" (id 1) was not in group "analysts"`+"\n" {
		t.Errorf("remove-from-group again: %q", r.stdout)
	}
	if g := groupsOf(t, l, "ann", db...); !slices.Equal(g, []string{"Content Editors"}) {
		t.Errorf("groups %q", g)
	}

	// rotate-key on the file: a new key each time, the previous one
	// published with it.
	r1 := l.ok("", with("rotate-key")...)
	r2 := l.ok("", with("rotate-key")...)
	k1 := strings.TrimSuffix(strings.Fields(r1.stdout)[3], ";")
	if !strings.HasPrefix(r2.stdout, "new signing key ") || !strings.Contains(r2.stdout, "publishes ") || !strings.HasSuffix(strings.TrimSpace(r2.stdout), k1) {
		t.Errorf("rotate-key: %q then %q", r1.stdout, r2.stdout)
	}
	l.assertNoSecrets("Corr3ct-Horse-Battery")
}

// import-django brings the groups of `dumpdata auth.user auth.group`,
// referred to by natural key or by id.
func TestCLIImportDjangoGroups(t *testing.T) {
	for _, file := range []string{"djangoimport/testdata/auth_user_group_natural.json", "djangoimport/testdata/auth_user_group_ids.json"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			db := []string{"--db", filepath.Join(t.TempDir(), "users.db")}
			l := &cliLog{t: t}
			if r := l.ok("", append([]string{"import-django", file}, db...)...); r.stdout != "imported 6, skipped 0\n" || strings.Contains(r.stderr, "ignored") {
				t.Errorf("import: %q %q", r.stdout, r.stderr)
			}
			for name, want := range map[string][]string{
				"alice": {"editors"}, "bob": {"Content Editors", "editors"}, "carol": {},
				"Zoë.Ōsaka_東京": {"Content Editors", "東京 staff"},
			} {
				if g := groupsOf(t, l, name, db...); !slices.Equal(g, want) {
					t.Errorf("%s: groups %q, want %q", name, g, want)
				}
			}
		})
	}
	// Ids without the groups' entries: refused, saying what to dump.
	l := &cliLog{t: t}
	l.fails([]string{"dump them too", "auth.group"}, `[{"model":"auth.user","pk":1,"fields":{"username":"a","password":"!","date_joined":"2020-01-01T00:00:00Z","groups":[1]}}]`,
		"import-django", "-", "--db", filepath.Join(t.TempDir(), "users.db"))
}

// Through the running Caddy's admin API: group changes reach the gate at
// once.
func TestCLIGroupsThroughAdminAPI(t *testing.T) {
	s, caddyfile := startPermsSite(t, permsConfig{admin: true, extra: issueRules})
	ann := s.newMember(t, "ann", false, false)
	l := &cliLog{t: t}
	cfg := []string{"--config", caddyfile}
	assertNoPermission(t, "before", s.do(t, req{method: "GET", path: "/reports/q", session: ann.session}))
	l.ok("", append([]string{"add-to-group", "--username", "ann", "--group", "analysts"}, cfg...)...)
	e := assertThrough(t, "after add-to-group", s.do(t, req{method: "GET", path: "/reports/q", session: ann.session}))
	if !slices.Equal(e.Headers["X-Auth-Groups"], []string{"analysts"}) {
		t.Errorf("X-Auth-Groups %q", e.Headers["X-Auth-Groups"])
	}
	if g := groupsOf(t, l, "ann", cfg...); !slices.Equal(g, []string{"analysts"}) {
		t.Errorf("list-users through the admin API: %q", g)
	}
	l.fails([]string{`group "a,b"`}, "", append([]string{"add-to-group", "--username", "ann", "--group", "a,b"}, cfg...)...)
	l.ok("", append([]string{"remove-from-group", "--username", "ann", "--group", "analysts"}, cfg...)...)
	assertNoPermission(t, "after remove-from-group", s.do(t, req{method: "GET", path: "/reports/q", session: ann.session}))
}
