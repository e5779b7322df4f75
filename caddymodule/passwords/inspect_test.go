package passwords

import (
	"context"
	"errors"
	"testing"
)

func TestCheckFormat(t *testing.T) {
	h := NewHasher(DefaultParams, 1)
	own, err := h.Hash(context.Background(), "Corr3ct-Horse")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		encoded string
		want    error
	}{
		{own, nil},
		{"pbkdf2_sha256$600000$c2FsdHNhbHQ$" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", nil},
		{"bcrypt_sha256$$2b$12$abcdefghijklmnopqrstuu5Bhx9Z1Ff0fM8h7o5oZ1v2u3w4x5y6z7", nil},
		{"!unusable-marker", ErrUnusablePassword},
		{"", ErrUnknownFormat},
		{"md5$salt$0123456789abcdef0123456789abcdef", ErrUnknownFormat},
		{"pbkdf2_sha256$0$salt$xx", ErrMalformedHash},
		{"$argon2id$v=19$m=bad", ErrMalformedHash},
	} {
		err := CheckFormat(tc.encoded)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("CheckFormat(%q) = %v, want %v", tc.encoded, err, tc.want)
		}
	}
}
