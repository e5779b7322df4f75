package passwords

import (
	"fmt"
	"unicode/utf8"
)

// MinLength is Django's MinimumLengthValidator default, in characters
// (Unicode code points, as Python's len counts).
const MinLength = 8

// Validate returns the messages for every failing check, in the order of
// Django's default AUTH_PASSWORD_VALIDATORS: UserAttributeSimilarityValidator,
// MinimumLengthValidator, CommonPasswordValidator, NumericPasswordValidator.
// Messages are Django's (English) text exactly. It returns nil for an
// acceptable password.
//
// attrs holds the user's attributes by Django field name; "username",
// "first_name", "last_name" and "email" are compared, others ignored, and
// empty values are skipped. A nil or empty map skips the similarity check,
// as Django does without a user.
func Validate(password string, attrs map[string]string) []string {
	var msgs []string
	if name := similarAttribute(password, attrs); name != "" {
		msgs = append(msgs, fmt.Sprintf("The password is too similar to the %s.", name))
	}
	if utf8.RuneCountInString(password) < MinLength {
		msgs = append(msgs, fmt.Sprintf("This password is too short. It must contain at least %d characters.", MinLength))
	}
	if isCommon(password) {
		msgs = append(msgs, "This password is too common.")
	}
	if pyIsDigit(password) {
		msgs = append(msgs, "This password is entirely numeric.")
	}
	return msgs
}
