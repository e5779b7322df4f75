package passwords

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"sync"
)

// commonPasswordsGz is Django's list of 20,000 common passwords (19,727
// after lowercasing and deduplication), copied unmodified from Django 3.2;
// see data/LICENSE-django.
//
//go:embed data/common-passwords.txt.gz
var commonPasswordsGz []byte

var (
	commonOnce      sync.Once
	commonPasswords map[string]struct{}
)

// loadCommonPasswords decompresses the list on first use, so programs that
// never validate do not pay for the map (around a megabyte).
func loadCommonPasswords() map[string]struct{} {
	commonOnce.Do(func() {
		zr, err := gzip.NewReader(bytes.NewReader(commonPasswordsGz))
		if err != nil {
			panic("passwords: embedded common password list: " + err.Error())
		}
		m := make(map[string]struct{}, 20000)
		sc := bufio.NewScanner(zr)
		for sc.Scan() {
			// Django: {x.strip() for x in f}
			m[pyStrip(sc.Text())] = struct{}{}
		}
		if err := sc.Err(); err != nil {
			panic("passwords: embedded common password list: " + err.Error())
		}
		commonPasswords = m
	})
	return commonPasswords
}

// isCommon is Django's CommonPasswordValidator check.
func isCommon(password string) bool {
	_, ok := loadCommonPasswords()[pyStrip(pyLower(password))]
	return ok
}
