package caddymodule

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
	"github.com/spf13/cobra"
)

// Sharing users with a Django app (README "Sharing users with Django"):
// django_users keeps the users in Django's own auth_user table of the
// users_db PostgreSQL database (users/postgres, Options.Django), and new
// password hashes are written in a format Django verifies
// (password_hasher, pbkdf2_iterations).

// djangoKeyPrefix marks a users-database pool key as the Django flavour:
// "django_users <hasher> <iterations> <url>". The flavour and the hasher are
// part of what identifies an open database, so a config that changes them
// opens a new store rather than reusing one that writes another format.
const djangoKeyPrefix = "django_users "

// djangoUsersKey is the pool key of url in the Django flavour with scheme.
func djangoUsersKey(url string, scheme passwords.Scheme) string {
	return djangoKeyPrefix + scheme.String() + " " + strconv.Itoa(scheme.Iterations) + " " + url
}

// parseDjangoKey splits a Django-flavour key; ok is false for other keys.
func parseDjangoKey(key string) (url string, scheme passwords.Scheme, ok bool) {
	rest, found := strings.CutPrefix(key, djangoKeyPrefix)
	if !found {
		return key, passwords.Scheme{}, false
	}
	f := strings.SplitN(rest, " ", 3)
	if len(f) != 3 {
		return key, passwords.Scheme{}, false
	}
	it, err := strconv.Atoi(f[1])
	if err != nil {
		return key, passwords.Scheme{}, false
	}
	scheme, err = passwords.ParseScheme(f[0], it)
	if err != nil {
		return key, passwords.Scheme{}, false
	}
	return f[2], scheme, true
}

// keyURL is the database a pool key names: the URL or path without the
// flavour.
func keyURL(key string) string {
	url, _, _ := parseDjangoKey(key)
	return url
}

// checkDjangoUsers checks django_users, password_hasher and
// pbkdf2_iterations together (Validate) and returns the hashing scheme.
func (s *SessionAuth) checkDjangoUsers() (passwords.Scheme, error) {
	if !s.DjangoUsers {
		switch {
		case s.PasswordHasher != "":
			return passwords.Scheme{}, fmt.Errorf("password_hasher: only with django_users (the sidecar's own users get argon2id)")
		case s.PBKDF2Iterations != 0:
			return passwords.Scheme{}, fmt.Errorf("pbkdf2_iterations: only with django_users and password_hasher pbkdf2_sha256")
		}
		return passwords.Scheme{}, nil
	}
	if !isUsersURL(s.UsersDB) {
		return passwords.Scheme{}, fmt.Errorf("django_users: needs users_db to be the PostgreSQL database Django uses (a postgres:// URL), not a file")
	}
	hasher := s.PasswordHasher
	if hasher == "" {
		hasher = "pbkdf2_sha256"
	}
	if s.PBKDF2Iterations < 0 {
		return passwords.Scheme{}, fmt.Errorf("pbkdf2_iterations: want 1 to %d", passwords.MaxPBKDF2Iterations)
	}
	return passwords.ParseScheme(hasher, s.PBKDF2Iterations)
}

// usersDBSpec is the pool key spec for the handler's users_db: with
// django_users, the URL marked with the flavour and hasher.
func (s *SessionAuth) usersDBSpec() string {
	if s.DjangoUsers {
		return djangoUsersKey(strings.TrimSpace(s.UsersDB), s.scheme)
	}
	return s.UsersDB
}

// cliDjangoKey turns the CLI's --db into the pool key for the Django flavour
// when --django-users is given (and refuses the hasher flags without it).
func cliDjangoKey(cmd *cobra.Command, db string) (string, error) {
	hasher, _ := cmd.Flags().GetString("password-hasher")
	iterations, _ := cmd.Flags().GetInt("pbkdf2-iterations")
	s := &SessionAuth{UsersDB: db, DjangoUsers: flagBool(cmd, "django-users"), PasswordHasher: hasher, PBKDF2Iterations: iterations}
	scheme, err := s.checkDjangoUsers()
	if err != nil {
		return "", fmt.Errorf("--%s", strings.ReplaceAll(err.Error(), "_", "-"))
	}
	if !s.DjangoUsers {
		return db, nil
	}
	return djangoUsersKey(strings.TrimSpace(db), scheme), nil
}
