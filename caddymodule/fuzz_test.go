package caddymodule

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for what clients control: request bodies and the session
// cookie. The seeds run as ordinary tests; `go test -fuzz=FuzzDecodeJSON
// ./caddymodule` explores further.

var jsonSeeds = []string{
	``, ` `, `{}`, `[]`, `null`, `"x"`, `12`, `1e999`, `true`,
	`{"username":"alice","password":"Corr3ct-Horse-Battery"}`,
	`{"username":"a","username":"b"}`,
	`{"username":"a","user\u006eame":"b"}`,
	`{"username":12,"password":{"a":[1,2,{"b":null}]}}`,
	`{"username":null}`,
	`{"username":"\ud800"}`,
	"{\"username\":\"\xff\"}",
	`{"username":"a\u0000b"}`,
	`{} {}`, `{}x`, `{"a":1,}`, `{"a"}`, `{"a":`, `{`, `[[[[[[`, `]`,
	`{"a":[` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `]}`,
	strings.Repeat("[", 12000),
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		data, derr := decodeJSON(body)
		if derr != nil {
			checkDecodeError(t, derr)
			return
		}
		if data == nil {
			t.Fatal("no data and no error")
		}
		if len(bytes.TrimSpace(body)) == 0 {
			if len(data) != 0 {
				t.Fatalf("fields from a blank body: %v", data)
			}
			return
		}
		// Accepted means a valid JSON object, all of it, in valid UTF-8.
		if !json.Valid(body) || !utf8.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			t.Fatalf("accepted %q, which is not an object: %v", body, err)
		}
		if len(obj) != len(data) {
			t.Fatalf("%d fields decoded, the object has %d", len(data), len(obj))
		}
		for k, v := range data {
			if v.kind == fieldString && !utf8.ValidString(v.str) {
				t.Fatalf("field %q: invalid UTF-8 %q", k, v.str)
			}
		}
	})
}

func checkDecodeError(t *testing.T, derr *decodeError) {
	t.Helper()
	switch derr.status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
	default:
		t.Fatalf("status %d for bad input", derr.status)
	}
	var v map[string]any
	if err := json.Unmarshal(derr.body, &v); err != nil || len(v) == 0 {
		t.Fatalf("error body is not a JSON object: %q", derr.body)
	}
}

func FuzzReadData(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add("application/json", []byte(s))
	}
	f.Add("application/json; charset=utf-8", []byte(`{"a":"b"}`))
	f.Add("application/x-www-form-urlencoded", []byte("username=a&password=b&username=c"))
	f.Add("application/x-www-form-urlencoded", []byte("username=%ff&%zz"))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--XX--\r\n"))
	f.Add("multipart/form-data; boundary=XX", []byte("--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nfile\r\n--XX--\r\n"))
	f.Add("multipart/form-data", []byte("--XX--"))
	f.Add("text/plain", []byte("hello"))
	f.Add("", []byte("{}"))
	f.Add(";;;", []byte(""))
	f.Add("application/json", bytes.Repeat([]byte("a"), 2000))
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/api/login/", bytes.NewReader(body))
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		data, derr := readData(w, r, 1024)
		if derr != nil {
			checkDecodeError(t, derr)
			return
		}
		if data == nil {
			t.Fatal("no data and no error")
		}
		if len(body) > 1024 && ctype != "" {
			t.Fatalf("accepted a %d-byte body over the 1024-byte limit", len(body))
		}
		for k, v := range data {
			if v.kind == fieldString && !utf8.ValidString(v.str) {
				t.Fatalf("field %q: invalid UTF-8 %q", k, v.str)
			}
		}
	})
}

func FuzzCookieValue(f *testing.F) {
	tok := strings.Repeat("Ab9_-", 8) + "xyz" // 43 characters
	for _, h := range []string{
		"", "sessionid=" + tok, `sessionid="` + tok + `"`, "a=b; sessionid=" + tok + "; c=d",
		"sessionid=", "sessionid", "sessionid==x", ";;;", " sessionid = x ", "sessionidx=1; sessionid=2",
		"sessionid=" + tok + "A", "sessionid=" + strings.Repeat("\xff", 43), `sessionid="`, `sessionid=""`,
		"sessionid=\x00" + tok[1:], "csrftoken=abc; sessionid=" + tok[:42],
	} {
		f.Add(h, "sessionid")
	}
	f.Add("=x", "")
	f.Add("a=b", "a")
	f.Fuzz(func(t *testing.T, header, name string) {
		r := &http.Request{Header: http.Header{"Cookie": {header}}}
		for _, n := range []string{name, "sessionid"} {
			v, ok := cookieValue(r, n)
			if !ok {
				if v != "" {
					t.Fatalf("value %q reported absent", v)
				}
				continue
			}
			if !strings.Contains(header, v) {
				t.Fatalf("value %q is not in the header %q", v, header)
			}
			if plausibleToken(v) {
				if len(v) != 43 || strings.ContainsAny(v, "=;\" \t\x00+/") {
					t.Fatalf("implausible token %q accepted", v)
				}
			}
		}
	})
}

// plausibleToken accepts exactly what scs issues.
func TestPlausibleToken(t *testing.T) {
	good := strings.Repeat("Ab9_-", 8) + "xyz"
	for tok, want := range map[string]bool{
		good:                          true,
		good[:42]:                     false,
		good + "A":                    false,
		"":                            false,
		good[:42] + "=":               false,
		good[:42] + "+":               false,
		good[:42] + "/":               false,
		good[:42] + "\xff":            false,
		good[:42] + "\x00":            false,
		strings.Repeat("é", 21) + "a": false,
	} {
		if plausibleToken(tok) != want {
			t.Errorf("plausibleToken(%q) = %v", tok, !want)
		}
	}
}
