package caddymodule

import (
	"net"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// DRF's messages for CharField/EmailField failures.
const (
	msgRequired        = "This field is required."
	msgBlank           = "This field may not be blank."
	msgNull            = "This field may not be null."
	msgNotString       = "Not a valid string."
	msgUsernameInvalid = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
	msgUsernameLong    = "Ensure this field has no more than 150 characters."
	msgUsernameTaken   = "A user with that username already exists."
	msgEmailInvalid    = "Enter a valid email address."
	msgPasswordsDiffer = "Password fields didn't match."
)

const maxUsernameLength = 150

// stringField reads a required CharField as DRF does (trimming surrounding
// whitespace). ok is false when an error was recorded.
func stringField(data requestData, name string, errs *fieldErrors) (string, bool) {
	v, present := data[name]
	switch {
	case !present:
		errs.add(name, msgRequired)
	case v.kind == fieldNull:
		errs.add(name, msgNull)
	case v.kind == fieldNotString:
		errs.add(name, msgNotString)
	default:
		s := strings.TrimSpace(v.str)
		if s == "" {
			errs.add(name, msgBlank)
			return "", false
		}
		return s, true
	}
	return "", false
}

// normalizeUsername applies NFKC, as Django's AbstractBaseUser does, so that
// look-alike spellings are one name.
func normalizeUsername(s string) string {
	return norm.NFKC.String(s)
}

// usernameProblems returns Django's UnicodeUsernameValidator and max-length
// messages for name (already normalised).
func usernameProblems(name string) []string {
	var out []string
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsNumber(r) || strings.ContainsRune("_@.+-", r)) {
			out = append(out, msgUsernameInvalid)
			break
		}
	}
	if utf8.RuneCountInString(name) > maxUsernameLength {
		out = append(out, msgUsernameLong)
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

func validEmail(email string) bool {
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

// normalizeEmail lower-cases the domain part, as Django's normalize_email.
func normalizeEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return email
	}
	return email[:at+1] + strings.ToLower(email[at+1:])
}

// loggableUsername is a typed username fit for a log line: what users
// type there is sometimes their password, so only a name that could be a
// username is logged, and never more than a username's length.
func loggableUsername(typed string) string {
	name := normalizeUsername(strings.TrimSpace(typed))
	if len(usernameProblems(name)) > 0 {
		return "(not a valid username)"
	}
	return name
}
