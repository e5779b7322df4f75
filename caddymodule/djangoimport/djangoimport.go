// Package djangoimport reads a Django user table dump, the output of
//
//	python manage.py dumpdata auth.user auth.group [--natural-foreign]
//
// into [users.User] values: ids, usernames, emails, the is_active,
// is_superuser and is_staff flags, date_joined, last_login, the names of
// the user's groups and the password hashes, which [passwords.Hasher]
// verifies as they are (and the login upgrades to argon2id). A user's
// groups are referred to by natural key (["name"], with --natural-foreign)
// or by id, which the dump's auth.group entries resolve to names.
// first_name, last_name, user_permissions and the groups' permissions have
// no place in this module's user model and are dropped.
//
// The package knows nothing about HTTP or Caddy; it does not decide whether a
// username is acceptable (the caller applies the same rules as
// registration), only whether the dump is well formed.
package djangoimport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Model is the dumpdata label of Django's user model, GroupModel that of
// its groups.
const (
	Model      = "auth.user"
	GroupModel = "auth.group"
)

// maxProblems bounds how many problems one error lists.
const maxProblems = 20

// Dump is a parsed dump.
type Dump struct {
	// Users are the auth.user entries, in dump order, each with its
	// Django id (pk) and password hash.
	Users []*users.User

	// Groups counts the auth.group entries (used to resolve group ids).
	Groups int

	// OtherModels counts the entries of other models, which are ignored
	// (a dump of the whole database also works).
	OtherModels int

	// Unverifiable lists the users whose password hash cannot be checked:
	// Django's "unusable password" marker, an empty password or a hasher
	// this module does not support. They are imported but cannot log in
	// with a password until one is set.
	Unverifiable []Unverifiable
}

// Unverifiable names a user whose stored hash no password can match.
type Unverifiable struct {
	ID       int64
	Username string
	Reason   string // e.g. "unusable password (set_unusable_password)"
}

// entry is one object of the dump.
type entry struct {
	Model  string          `json:"model"`
	PK     json.RawMessage `json:"pk"`
	Fields json.RawMessage `json:"fields"`
}

// fields are auth.user's fields; pointers tell a missing field from a zero
// one. Unknown fields (a newer Django's) are ignored.
type fields struct {
	Password    *string `json:"password"`
	LastLogin   *string `json:"last_login"`
	IsSuperuser *bool   `json:"is_superuser"`
	Username    *string `json:"username"`
	Email       *string `json:"email"`
	IsStaff     *bool   `json:"is_staff"`
	IsActive    *bool   `json:"is_active"`
	DateJoined  *string `json:"date_joined"`
	// Groups are ids (1) or natural keys (["editors"]).
	Groups []json.RawMessage `json:"groups"`
}

// groupFields are auth.group's fields.
type groupFields struct {
	Name *string `json:"name"`
}

// Parse reads a dumpdata JSON array. Every problem found (a malformed entry,
// a duplicate id or a username that repeats regardless of case) is reported,
// up to a limit, in one error; nothing is returned with an error.
func Parse(r io.Reader) (*Dump, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '[' {
		return nil, errors.New("not a dumpdata file: expected a JSON array (python manage.py dumpdata auth.user)")
	}
	var entries []entry
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("not a dumpdata file: %v", err)
	}

	d := new(Dump)
	var problems []string
	problem := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	// Groups first: dumpdata writes auth.user before auth.group.
	groupNames := make(map[int64]string)
	for i, e := range entries {
		if !strings.EqualFold(e.Model, GroupModel) {
			continue
		}
		d.Groups++
		id, name, err := parseGroup(e)
		if err != nil {
			problem("entry %d (%s): %v", i+1, GroupModel, err)
			continue
		}
		if id == 0 { // --natural-primary: referred to by name only
			continue
		}
		if prev, dup := groupNames[id]; dup {
			problem("entry %d (%s): pk %d is also group %q", i+1, GroupModel, id, prev)
			continue
		}
		groupNames[id] = name
	}
	byID := make(map[int64]string)
	byKey := make(map[string]string)
	for i, e := range entries {
		if strings.EqualFold(e.Model, GroupModel) {
			continue
		}
		if !strings.EqualFold(e.Model, Model) {
			d.OtherModels++
			continue
		}
		where := fmt.Sprintf("entry %d", i+1)
		u, refs, err := parseUser(e)
		if err != nil {
			problem("%s: %v", where, err)
			continue
		}
		if u.Groups, err = resolveGroups(refs, groupNames, d.Groups > 0); err != nil {
			problem("%s (pk %d, username %q): %v", where, u.ID, u.Username, err)
			continue
		}
		where = fmt.Sprintf("entry %d (pk %d, username %q)", i+1, u.ID, u.Username)
		if prev, dup := byID[u.ID]; dup {
			problem("%s: pk %d is also %q", where, u.ID, prev)
			continue
		}
		key := users.UsernameKey(u.Username)
		if prev, dup := byKey[key]; dup {
			problem("%s: username is the same as %q regardless of case (usernames are unique regardless of case here)", where, prev)
			continue
		}
		byID[u.ID], byKey[key] = u.Username, u.Username
		if err := passwords.CheckFormat(u.PasswordHash); err != nil {
			d.Unverifiable = append(d.Unverifiable, Unverifiable{ID: u.ID, Username: u.Username, Reason: hashProblem(u.PasswordHash, err)})
		}
		d.Users = append(d.Users, u)
	}
	if len(problems) > 0 {
		return nil, problemsError(problems)
	}
	return d, nil
}

// parseGroup reads an auth.group entry: its id (0 when the dump was made
// with --natural-primary) and name.
func parseGroup(e entry) (int64, string, error) {
	var id int64
	if pk := string(bytes.TrimSpace(e.PK)); pk != "" && pk != "null" {
		var err error
		if id, err = parsePK(e.PK); err != nil {
			return 0, "", err
		}
	}
	var f groupFields
	if len(e.Fields) == 0 || json.Unmarshal(e.Fields, &f) != nil || f.Name == nil || *f.Name == "" {
		return 0, "", errors.New("no group name")
	}
	return id, *f.Name, nil
}

// resolveGroups turns a user's group references into names: a natural key
// (["name"]) is the name, an id is looked up among the dump's groups.
func resolveGroups(refs []json.RawMessage, names map[int64]string, dumpedGroups bool) ([]string, error) {
	var out []string
	for _, raw := range refs {
		var key []string
		if err := json.Unmarshal(raw, &key); err == nil {
			if len(key) != 1 || key[0] == "" {
				return nil, fmt.Errorf("group %s is not a natural key of %s ([\"name\"])", raw, GroupModel)
			}
			out = append(out, key[0])
			continue
		}
		id, err := parsePK(raw)
		if err != nil {
			return nil, fmt.Errorf("group %s is neither an id nor a natural key", raw)
		}
		name, ok := names[id]
		if !ok {
			if !dumpedGroups {
				return nil, fmt.Errorf("group id %d: the dump has no %s entries to name it: dump them too "+
					"(python manage.py dumpdata auth.user auth.group), or use --natural-foreign", id, GroupModel)
			}
			return nil, fmt.Errorf("group id %d is not among the dump's %s entries", id, GroupModel)
		}
		out = append(out, name)
	}
	return users.SortGroups(out), nil
}

func parseUser(e entry) (*users.User, []json.RawMessage, error) {
	id, err := parsePK(e.PK)
	if err != nil {
		return nil, nil, err
	}
	if len(e.Fields) == 0 || string(e.Fields) == "null" {
		return nil, nil, errors.New(`no "fields"`)
	}
	var f fields
	if err := json.Unmarshal(e.Fields, &f); err != nil {
		return nil, nil, fmt.Errorf("fields: %v", err)
	}
	if f.Username == nil || *f.Username == "" {
		return nil, nil, errors.New("no username")
	}
	if f.Password == nil {
		return nil, nil, errors.New("no password field")
	}
	if f.DateJoined == nil {
		return nil, nil, errors.New("no date_joined")
	}
	u := &users.User{
		ID:           id,
		Username:     *f.Username,
		PasswordHash: *f.Password,
		IsActive:     true, // Django's default
	}
	if f.Email != nil {
		u.Email = *f.Email
	}
	if f.IsActive != nil {
		u.IsActive = *f.IsActive
	}
	if f.IsSuperuser != nil {
		u.IsSuperuser = *f.IsSuperuser
	}
	if f.IsStaff != nil {
		u.IsStaff = *f.IsStaff
	}
	if u.DateJoined, err = parseTime(*f.DateJoined); err != nil {
		return nil, nil, fmt.Errorf("date_joined: %v", err)
	}
	if f.LastLogin != nil {
		if u.LastLogin, err = parseTime(*f.LastLogin); err != nil {
			return nil, nil, fmt.Errorf("last_login: %v", err)
		}
	}
	return u, f.Groups, nil
}

// parsePK accepts a positive integer primary key.
func parsePK(raw json.RawMessage) (int64, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s == "null" {
		return 0, errors.New(`no "pk" (was the dump made with --natural-primary? dump without it)`)
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("pk %s is not a positive integer", s)
	}
	return id, nil
}

// Django's serializer writes datetimes as ISO 8601: with USE_TZ = True in
// UTC with a "Z" (or an offset), with USE_TZ = False without a zone, which
// is read as UTC.
var naiveLayouts = []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range naiveLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 date and time", s)
}

// hashProblem says why a hash cannot be verified, naming only the
// algorithm, never the hash.
func hashProblem(encoded string, err error) string {
	switch {
	case errors.Is(err, passwords.ErrUnusablePassword):
		return "unusable password (Django's set_unusable_password)"
	case encoded == "":
		return "empty password"
	case errors.Is(err, passwords.ErrMalformedHash):
		return "malformed " + algorithm(encoded) + " hash"
	}
	return "unsupported hasher " + algorithm(encoded)
}

func algorithm(encoded string) string {
	name, _, ok := strings.Cut(strings.TrimPrefix(encoded, "$"), "$")
	if !ok || !plausibleAlgorithm(name) {
		return "(unrecognised format)"
	}
	return strconv.Quote(name)
}

// plausibleAlgorithm accepts what looks like a hasher name (Django's are
// short lower-case identifiers), so that no part of an odd hash is printed.
func plausibleAlgorithm(name string) bool {
	if name == "" || len(name) > 32 {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

type problemsError []string

func (p problemsError) Error() string {
	return fmt.Sprintf("the dump has %d problem(s):", len(p)) + Indented(p)
}

// Indented lists items one per indented line, the first maxProblems of
// them, for error messages.
func Indented(items []string) string {
	var b strings.Builder
	for i, msg := range items {
		if i == maxProblems {
			fmt.Fprintf(&b, "\n  ... and %d more", len(items)-maxProblems)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(msg)
	}
	return b.String()
}
