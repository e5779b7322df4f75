package djangoimport

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
)

func TestParseFixture(t *testing.T) {
	f, err := os.Open("testdata/auth_user.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Users) != 6 || d.OtherModels != 0 {
		t.Fatalf("got %d users, %d others; want 6, 0", len(d.Users), d.OtherModels)
	}
	alice, dave, zoe := d.Users[0], d.Users[3], d.Users[4]
	if alice.ID != 1 || alice.Username != "alice" || alice.Email != "alice@example.com" ||
		!alice.IsActive || !alice.IsSuperuser || !alice.IsStaff {
		t.Errorf("alice = %+v", alice)
	}
	if want := time.Date(2021, 3, 4, 9, 15, 0, 123000000, time.UTC); !alice.DateJoined.Equal(want) || alice.DateJoined.Location() != time.UTC {
		t.Errorf("alice date_joined = %v, want %v", alice.DateJoined, want)
	}
	if want := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC); !alice.LastLogin.Equal(want) {
		t.Errorf("alice last_login = %v, want %v", alice.LastLogin, want)
	}
	if !strings.HasPrefix(alice.PasswordHash, "pbkdf2_sha256$") {
		t.Errorf("alice hash kept? %.14s…", alice.PasswordHash)
	}
	if dave.IsActive || !dave.LastLogin.IsZero() {
		t.Errorf("dave = %+v", dave)
	}
	if zoe.ID != 5 || zoe.Username != "Zoë.Ōsaka_東京" {
		t.Errorf("unicode user = %d %q", zoe.ID, zoe.Username)
	}
	if len(d.Unverifiable) != 1 || d.Unverifiable[0].Username != "eve" ||
		!strings.Contains(d.Unverifiable[0].Reason, "unusable") {
		t.Errorf("unverifiable = %+v", d.Unverifiable)
	}
	for _, u := range d.Users[:5] {
		if err := passwords.CheckFormat(u.PasswordHash); err != nil {
			t.Errorf("%s: Django hash not verifiable: %v", u.Username, err)
		}
	}
}

func TestParseProblems(t *testing.T) {
	for _, tc := range []struct {
		name, dump string
		want       []string
	}{
		{"not an array", `{"model":"auth.user"}`, []string{"expected a JSON array"}},
		{"bad json", `[{"model":`, []string{"not a dumpdata file"}},
		{"natural primary", `[{"model":"auth.user","fields":{"username":"a","password":"","date_joined":"2020-01-01T00:00:00Z"}}]`,
			[]string{"entry 1", "--natural-primary"}},
		{"string pk", `[{"model":"auth.user","pk":"x","fields":{}}]`, []string{"entry 1", "not a positive integer"}},
		{"no username", `[{"model":"auth.user","pk":1,"fields":{"password":"","date_joined":"2020-01-01T00:00:00Z"}}]`, []string{"no username"}},
		{"bad date", `[{"model":"auth.user","pk":1,"fields":{"username":"a","password":"","date_joined":"yesterday"}}]`, []string{"date_joined", "yesterday"}},
		{"duplicate pk and case-insensitive name", `[
			{"model":"auth.user","pk":1,"fields":{"username":"Anna","password":"","date_joined":"2020-01-01T00:00:00Z"}},
			{"model":"auth.user","pk":1,"fields":{"username":"ben","password":"","date_joined":"2020-01-01T00:00:00Z"}},
			{"model":"auth.user","pk":3,"fields":{"username":"anna","password":"","date_joined":"2020-01-01T00:00:00Z"}}]`,
			[]string{"2 problem(s)", `entry 2 (pk 1, username "ben"): pk 1 is also "Anna"`, `entry 3 (pk 3, username "anna"): username is the same as "Anna"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse(strings.NewReader(tc.dump))
			if err == nil {
				t.Fatalf("no error; got %+v", d)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseDefaultsAndOtherModels(t *testing.T) {
	d, err := Parse(strings.NewReader(`[
		{"model":"auth.group","pk":1,"fields":{"name":"staff"}},
		{"model":"admin.logentry","pk":1,"fields":{}},
		{"model":"auth.user","pk":7,"fields":{"username":"old","password":"md5$salt$00112233445566778899aabbccddeeff","date_joined":"2019-02-03 04:05:06.789"}},
		{"model":"auth.user","pk":8,"fields":{"username":"x","password":"sha1$0123456789abcdef0123456789abcdef$weird","date_joined":"2019-02-03T04:05:06+02:00"}}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	if d.OtherModels != 1 || d.Groups != 1 || len(d.Users) != 2 {
		t.Fatalf("others %d, groups %d, users %d", d.OtherModels, d.Groups, len(d.Users))
	}
	u := d.Users[0]
	if !u.IsActive || u.IsStaff || u.IsSuperuser || u.Email != "" || !u.LastLogin.IsZero() {
		t.Errorf("defaults: %+v", u)
	}
	if want := time.Date(2019, 2, 3, 4, 5, 6, 789000000, time.UTC); !u.DateJoined.Equal(want) {
		t.Errorf("naive date = %v, want %v (read as UTC)", u.DateJoined, want)
	}
	if want := time.Date(2019, 2, 3, 2, 5, 6, 0, time.UTC); !d.Users[1].DateJoined.Equal(want) || d.Users[1].DateJoined.Location() != time.UTC {
		t.Errorf("offset date = %v, want %v", d.Users[1].DateJoined, want)
	}
	if len(d.Unverifiable) != 2 || d.Unverifiable[0].Reason != `unsupported hasher "md5"` {
		t.Fatalf("unverifiable = %+v", d.Unverifiable)
	}
	for _, p := range d.Unverifiable {
		if strings.Contains(p.Reason, "0123456789abcdef") || strings.Contains(p.Reason, "00112233") {
			t.Errorf("reason leaks the hash: %q", p.Reason)
		}
	}
}

func TestParseReadError(t *testing.T) {
	want := errors.New("disk on fire")
	if _, err := Parse(failingReader{want}); !errors.Is(err, want) {
		t.Errorf("err = %v, want %v", err, want)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// The groups of `dumpdata auth.user auth.group`, referred to by natural key
// (--natural-foreign) or by id, come out as the same sorted names.
func TestParseGroups(t *testing.T) {
	for _, file := range []string{"testdata/auth_user_group_natural.json", "testdata/auth_user_group_ids.json"} {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d, err := Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Users) != 6 || d.Groups != 4 || d.OtherModels != 0 {
				t.Fatalf("%d users, %d groups, %d others; want 6, 4, 0", len(d.Users), d.Groups, d.OtherModels)
			}
			want := map[string][]string{
				"alice": {"editors"}, "bob": {"Content Editors", "editors"}, "carol": nil, "dave": nil,
				"Zoë.Ōsaka_東京": {"Content Editors", "東京 staff"}, "eve": nil,
			}
			for _, u := range d.Users {
				if !slices.Equal(u.Groups, want[u.Username]) {
					t.Errorf("%s: groups %q, want %q", u.Username, u.Groups, want[u.Username])
				}
			}
		})
	}
}

func TestParseGroupProblems(t *testing.T) {
	user := func(groups string) string {
		return `{"model": "auth.user", "pk": 1, "fields": {"username": "a", "password": "!", "date_joined": "2020-01-01T00:00:00Z", "groups": ` + groups + `}}`
	}
	group := func(pk, name string) string {
		return `{"model": "auth.group", "pk": ` + pk + `, "fields": {"name": ` + name + `, "permissions": []}}`
	}
	for _, tc := range []struct {
		name, dump, want string
	}{
		{"ids without groups", `[` + user(`[1]`) + `]`, "dump them too"},
		{"unknown id", `[` + user(`[2]`) + `,` + group("1", `"x"`) + `]`, "group id 2 is not among"},
		{"bad key", `[` + user(`[["a", "b"]]`) + `]`, "not a natural key"},
		{"bad ref", `[` + user(`[true]`) + `]`, "neither an id nor a natural key"},
		{"group without name", `[` + group("1", `""`) + `]`, "no group name"},
		{"duplicate group pk", `[` + group("1", `"x"`) + `,` + group("1", `"y"`) + `]`, `pk 1 is also group "x"`},
	} {
		_, err := Parse(strings.NewReader(tc.dump))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// Natural keys need no auth.group entries; groups dumped with
	// --natural-primary (no pk) are fine too.
	d, err := Parse(strings.NewReader(`[` + user(`[["b"], ["a"], ["b"]]`) + `,{"model": "auth.group", "fields": {"name": "b"}}]`))
	if err != nil || !slices.Equal(d.Users[0].Groups, []string{"a", "b"}) || d.Groups != 1 {
		t.Fatalf("natural keys: %+v %v", d, err)
	}
}
