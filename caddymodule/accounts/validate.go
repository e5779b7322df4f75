package accounts

import (
	"net"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Django's (and DRF's) messages for the fields of an account.
const (
	MsgBlank           = "This field may not be blank."
	MsgUsernameInvalid = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
	MsgUsernameLong    = "Ensure this field has no more than 150 characters."
	MsgUsernameTaken   = "A user with that username already exists."
	MsgEmailInvalid    = "Enter a valid email address."
)

// MaxUsernameLength is Django's limit on usernames, in characters.
const MaxUsernameLength = 150

// NormalizeUsername applies NFKC, as Django's AbstractBaseUser does, so that
// look-alike spellings are one name.
func NormalizeUsername(s string) string {
	return norm.NFKC.String(s)
}

// UsernameProblems returns Django's UnicodeUsernameValidator and max-length
// messages for name (already normalised).
func UsernameProblems(name string) []string {
	var out []string
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsNumber(r) || strings.ContainsRune("_@.+-", r)) {
			out = append(out, MsgUsernameInvalid)
			break
		}
	}
	if utf8.RuneCountInString(name) > MaxUsernameLength {
		out = append(out, MsgUsernameLong)
	}
	return out
}

// Django's EmailValidator, ported (no lookbehind in RE2: the TLD's trailing
// '-' is checked by hand).
var (
	emailDotAtom  = regexp.MustCompile("(?i)^[-!#$%&'*+/=?^_`{}|~0-9a-z]+(\\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*$")
	emailQuoted   = regexp.MustCompile(`(?i)^"([\x01-\x08\x0b\x0c\x0e-\x1f!#-\[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*"$`)
	emailDomain   = regexp.MustCompile(`(?i)^((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+)([a-z0-9-]{2,63})$`)
	emailLiteral  = regexp.MustCompile(`^\[([A-Fa-f0-9:.]+)\]$`)
	maxEmailChars = 320
)

// ValidEmail is Django's EmailValidator.
func ValidEmail(email string) bool {
	if len(email) > maxEmailChars {
		return false
	}
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return false
	}
	user, domain := email[:at], email[at+1:]
	if !emailDotAtom.MatchString(user) && !emailQuoted.MatchString(user) {
		return false
	}
	if domain == "localhost" || validEmailDomain(domain) {
		return true
	}
	if ascii, err := idna.Lookup.ToASCII(domain); err == nil && ascii != domain {
		return validEmailDomain(ascii)
	}
	if m := emailLiteral.FindStringSubmatch(domain); m != nil {
		addr := strings.TrimPrefix(m[1], "IPv6:")
		return net.ParseIP(addr) != nil
	}
	return false
}

func validEmailDomain(d string) bool {
	m := emailDomain.FindStringSubmatch(d)
	return m != nil && !strings.HasSuffix(m[2], "-")
}

// NormalizeEmail lower-cases the domain part, as Django's normalize_email.
func NormalizeEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return email
	}
	return email[:at+1] + strings.ToLower(email[at+1:])
}
