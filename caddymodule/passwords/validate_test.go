package passwords

import (
	"reflect"
	"slices"
	"testing"
)

// validateCases were produced by Django 3.2.25's validate_password with the
// four default AUTH_PASSWORD_VALIDATORS, given an unsaved
// django.contrib.auth.models.User built from attrs (or no user for nil
// attrs); the messages are ValidationError.messages.
var validateCases = []struct {
	name     string
	password string
	attrs    map[string]string
	want     []string
}{
	{"no user, empty", "", nil, []string{"This password is too short. It must contain at least 8 characters."}},
	{"no user, short", "short", nil, []string{"This password is too short. It must contain at least 8 characters."}},
	{"common", "password", nil, []string{"This password is too common."}},
	{"common uppercase", "PASSWORD", nil, []string{"This password is too common."}},
	{"common padded with spaces", "  password  ", nil, []string{"This password is too common."}},
	{"common padded with info separators", "\u001cpassword\u001f", nil, []string{"This password is too common."}},
	{"numeric common", "12345678", nil, []string{"This password is too common.", "This password is entirely numeric."}},
	{"numeric short common", "123", nil, []string{"This password is too short. It must contain at least 8 characters.", "This password is too common.", "This password is entirely numeric."}},
	{"numeric not common", "98765432109876", nil, []string{"This password is entirely numeric."}},
	{"numeric superscripts", "\u00b2\u00b3\u00b9\u00b2\u00b3\u00b9\u00b2\u00b3", nil, []string{"This password is entirely numeric."}},
	{"numeric arabic-indic", "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669", nil, []string{"This password is entirely numeric."}},
	{"fraction is not a digit", "1234567\u00bd", nil, nil},
	{"valid passphrase", "correct horse battery staple", nil, nil},
	{"valid accented", "\u00c0\u00c9\u00ce\u00d5\u00dc\u00e0\u00e9\u00ee\u00f5\u00fc", nil, nil},
	{"seven code points, more bytes", "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9", nil, []string{"This password is too short. It must contain at least 8 characters."}},
	{"similar to username", "alice2024!", map[string]string{"username": "alice2024", "email": "a@example.com"}, []string{"The password is too similar to the username."}},
	{"username checked before email", "aliceexample", map[string]string{"username": "aliceexample1", "email": "alice@example.com"}, []string{"The password is too similar to the username."}},
	{"similar to email part", "example.com", map[string]string{"username": "zz", "email": "alice@example.com"}, []string{"The password is too similar to the email address."}},
	{"similar to whole email", "alice@example", map[string]string{"username": "zz", "email": "alice@example.com"}, []string{"The password is too similar to the email address."}},
	{"similar to first name", "Bartholomew", map[string]string{"username": "zz", "first_name": "bartholomew", "email": "b@x.io"}, []string{"The password is too similar to the first name."}},
	{"similar to last name", "Smithsonian", map[string]string{"username": "zz", "last_name": "Smithson", "email": "b@x.io"}, []string{"The password is too similar to the last name."}},
	{"not similar", "tr0ub4dor&3-horse", map[string]string{"username": "alice", "email": "alice@example.com"}, nil},
	{"similar and short and common and numeric", "1234567", map[string]string{"username": "1234567"}, []string{"The password is too similar to the username.", "This password is too short. It must contain at least 8 characters.", "This password is too common.", "This password is entirely numeric."}},
	{"long password skips short value", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", map[string]string{"username": "aaaaa"}, nil},
	{"empty password vs empty part", "", map[string]string{"username": "@foo"}, []string{"The password is too similar to the username.", "This password is too short. It must contain at least 8 characters."}},
	{"dotless capital I lowercasing", "\u0130stanbul1923", map[string]string{"username": "i\u0307stanbul"}, []string{"The password is too similar to the username."}},
	{"dotted capital I lowercases to two code points", "\u0130\u0130\u0130\u0130\u0130\u0130\u0130\u0130", map[string]string{"username": "iiiiiiii"}, nil},
	{"final sigma lowercasing", "\u0391\u03a3 \u0391\u03a3 \u0391\u03a3", map[string]string{"username": "\u03b1\u03c2 \u03b1\u03c2 \u03b1\u03c2"}, []string{"The password is too similar to the username."}},
	{"final sigma", "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u0391\u03a3", map[string]string{"username": "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03b1\u03c2"}, []string{"The password is too similar to the username."}},
	{"email with plus", "johndoe.tag", map[string]string{"username": "jd", "email": "john.doe+tag@mail.example.org"}, nil},
	{"unicode word split", "\u00e9t\u00e9-\u00e9t\u00e9-2024", map[string]string{"username": "\u00e9t\u00e9\u2014\u00e9t\u00e9"}, nil},
	{"common qwerty", "qwertyuiop", map[string]string{"username": "bob", "email": "bob@example.com"}, []string{"This password is too common."}},
	{"no shortcut when lengths are close", "abcdefghij0123456789", map[string]string{"username": "abcdefghijklmn"}, nil},
	// Not from Django: attributes Django's User lacks are ignored, and an
	// empty map behaves like no user.
	{"unknown attribute ignored", "Zebra-Crossing-42", map[string]string{"nickname": "zebracrossing42"}, nil},
	{"empty attrs", "", map[string]string{}, []string{"This password is too short. It must contain at least 8 characters."}},
}

func TestValidate(t *testing.T) {
	for _, tc := range validateCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // also exercises the lazy list loading under -race
			if got := Validate(tc.password, tc.attrs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Validate(%q, %v)\n got %q\nwant %q", tc.password, tc.attrs, got, tc.want)
			}
		})
	}
}

func TestCommonPasswordList(t *testing.T) {
	// Distinct lowercased entries: Django 3.2's 19,727, zxcvbn 4.4.2's
	// 30,000, 40,255 in their union (see data/README.md).
	for _, tc := range []struct {
		name string
		gz   []byte
		want int
	}{
		{"django", djangoPasswordsGz, 19727},
		{"zxcvbn", zxcvbnPasswordsGz, 30000},
	} {
		m := make(map[string]struct{})
		if err := addPasswordList(m, tc.gz); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(m) != tc.want {
			t.Errorf("%s list has %d entries, want %d", tc.name, len(m), tc.want)
		}
	}
	n := len(loadCommonPasswords())
	if n < 20000 {
		t.Errorf("merged common password list has %d entries, want at least 20000", n)
	}
	if n != 40255 {
		t.Errorf("merged common password list has %d entries, want 40255", n)
	}
	for _, tc := range []struct{ source, password string }{
		{"django only, first line", "bigpimpin1"},
		{"django only", "manman1"},
		{"django, last line", "chobits"},
		{"both", "password"},
		{"zxcvbn only", "razz"},
		{"zxcvbn only", "Detlef"},
		{"zxcvbn only, last entry", " GEEKBOY\t"},
	} {
		if got := Validate(tc.password, nil); !slices.Contains(got, "This password is too common.") {
			t.Errorf("%s: Validate(%q) = %q, want it refused as too common", tc.source, tc.password, got)
		}
	}
	for _, pw := range []string{"correct horse battery staple", "Tr0ub4dor&3-alice", ""} {
		if isCommon(pw) {
			t.Errorf("%q unexpectedly common", pw)
		}
	}
}

// Expected values from Python 3.11: re.split(r'\W+', s).
func TestSplitNonWord(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"alice@example.com", []string{"alice", "example", "com"}},
		{"john.doe+tag@mail.example.org", []string{"john", "doe", "tag", "mail", "example", "org"}},
		{"@foo", []string{"", "foo"}},
		{"foo@", []string{"foo", ""}},
		{"", []string{""}},
		{"a--b__c", []string{"a", "b__c"}},
		{"\u00e9t\u00e9\u2014\u00e9t\u00e9", []string{"\u00e9t\u00e9", "\u00e9t\u00e9"}},
		{"jos\u00e9.garc\u00eda", []string{"jos\u00e9", "garc\u00eda"}},
		{"x\u0301y", []string{"x", "y"}},
		{"\u0661\u0662\u0663-abc", []string{"\u0661\u0662\u0663", "abc"}},
		{"\u00bd.x", []string{"\u00bd", "x"}},
		{"a  b\tc", []string{"a", "b", "c"}},
	} {
		if got := splitNonWord(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitNonWord(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Expected values from Python 3.11: s.lower().
func TestPyLower(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ABC", "abc"},
		{"\u0130", "i\u0307"},
		{"\u0391\u03a3", "\u03b1\u03c2"},
		{"\u03a3", "\u03c3"},
		{"\u03a3\u0391", "\u03c3\u03b1"},
		{"\u0391\u03a3'", "\u03b1\u03c2'"},
		{"\u0391\u03a3'\u0391", "\u03b1\u03c3'\u03b1"},
		{"\u0391'\u03a3", "\u03b1'\u03c2"},
		{"\u1e9e", "\u00df"},
		{"\u01c5", "\u01c6"},
		{"\u2160", "\u2170"},
	} {
		if got := pyLower(tc.in); got != tc.want {
			t.Errorf("pyLower(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Expected values from Python: SequenceMatcher(a=a, b=b).quick_ratio().
func TestQuickRatio(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want float64
	}{
		{"", "", 1.0},
		{"abc", "", 0.0},
		{"abcd", "bcde", 0.75},
		{"aab", "abb", 2.0 * 2 / 6},
		{"A", "AAAAAAAAAA", 2.0 / 11},
	} {
		if got := quickRatio([]rune(tc.a), []rune(tc.b)); got != tc.want {
			t.Errorf("quickRatio(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
