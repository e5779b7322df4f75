package passwords

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"sync"
)

// The common-password list is the union of two embedded lists, each copied
// unmodified with its licence; data/README.md says where they come from.
var (
	// djangoPasswordsGz is Django 3.2's common-passwords.txt.gz (19,727
	// distinct entries); see data/LICENSE-django.
	//
	//go:embed data/common-passwords.txt.gz
	djangoPasswordsGz []byte

	// zxcvbnPasswordsGz is the 30,000-entry "passwords" frequency list of
	// the zxcvbn npm package 4.4.2, one entry a line; see
	// data/LICENSE-zxcvbn.
	//
	//go:embed data/zxcvbn-passwords.txt.gz
	zxcvbnPasswordsGz []byte
)

// commonPasswordLists are the embedded lists merged into one set.
var commonPasswordLists = []struct {
	name string
	gz   []byte
}{
	{"data/common-passwords.txt.gz", djangoPasswordsGz},
	{"data/zxcvbn-passwords.txt.gz", zxcvbnPasswordsGz},
}

var (
	commonOnce      sync.Once
	commonPasswords map[string]struct{}
)

// loadCommonPasswords decompresses and merges the lists on first use, so
// programs that never validate do not pay for the map (a few megabytes).
func loadCommonPasswords() map[string]struct{} {
	commonOnce.Do(func() {
		m := make(map[string]struct{}, 40300)
		for _, l := range commonPasswordLists {
			if err := addPasswordList(m, l.gz); err != nil {
				panic("passwords: embedded common password list " + l.name + ": " + err.Error())
			}
		}
		commonPasswords = m
	})
	return commonPasswords
}

// addPasswordList adds each line of a gzipped list to m, normalised the way
// isCommon normalises a password. Django only strips its entries ({x.strip()
// for x in f}); they are all lowercase already, and lowercasing here keeps
// any list with capitals from holding entries no password could match.
func addPasswordList(m map[string]struct{}, gz []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		m[pyStrip(pyLower(sc.Text()))] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return zr.Close()
}

// isCommon is Django's CommonPasswordValidator check.
func isCommon(password string) bool {
	_, ok := loadCommonPasswords()[pyStrip(pyLower(password))]
	return ok
}
