package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
)

// fieldKind says what a submitted field held, for DRF-style messages.
type fieldKind uint8

const (
	fieldString fieldKind = iota
	fieldNull
	fieldNotString
)

type fieldValue struct {
	kind fieldKind
	str  string
}

// requestData is a decoded request body: field name to value.
type requestData map[string]fieldValue

// decodeError is a body the API refuses, with the response to send.
type decodeError struct {
	status int
	body   []byte
}

func (e *decodeError) Error() string { return string(e.body) }

func detailError(status int, msg string) *decodeError {
	b, _ := json.Marshal(struct {
		Detail string `json:"detail"`
	}{msg})
	return &decodeError{status, b}
}

func nonFieldError(msg string) *decodeError {
	var errs accounts.FieldErrors
	errs.Add("non_field_errors", msg)
	b, _ := errs.MarshalJSON()
	return &decodeError{http.StatusBadRequest, b}
}

// readData decodes the body as DRF's JSON, form and multipart parsers do,
// within limit bytes. An absent content type or empty body is no data.
func readData(w http.ResponseWriter, r *http.Request, limit int64) (requestData, *decodeError) {
	ctype := r.Header.Get("Content-Type")
	if ctype == "" {
		return requestData{}, nil
	}
	mediaType, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return nil, unsupported(ctype)
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	switch mediaType {
	case "application/json":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, readFailure(err, limit)
		}
		return decodeJSON(body)
	case "application/x-www-form-urlencoded":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, readFailure(err, limit)
		}
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, detailError(http.StatusBadRequest, "Form parse error - malformed form data.")
		}
		return fromValues(vals), nil
	case "multipart/form-data":
		if params["boundary"] == "" {
			return nil, detailError(http.StatusBadRequest, "Multipart form parse error - Invalid boundary in multipart: None")
		}
		// Values are kept in memory up to limit; the reader is capped anyway.
		if err := r.ParseMultipartForm(limit); err != nil {
			return nil, readFailure(err, limit)
		}
		if r.MultipartForm != nil {
			defer r.MultipartForm.RemoveAll()
			return fromValues(r.MultipartForm.Value), nil
		}
		return requestData{}, nil
	default:
		return nil, unsupported(ctype)
	}
}

func unsupported(ctype string) *decodeError {
	return detailError(http.StatusUnsupportedMediaType, fmt.Sprintf("Unsupported media type %q in request.", ctype))
}

func tooLarge(limit int64) *decodeError {
	return detailError(http.StatusRequestEntityTooLarge,
		"Request body is too large (the limit is "+strconv.FormatInt(limit, 10)+" bytes).")
}

func readFailure(err error, limit int64) *decodeError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(limit)
	}
	if strings.Contains(err.Error(), "too large") {
		return tooLarge(limit)
	}
	return detailError(http.StatusBadRequest, "Malformed request body.")
}

// fromValues takes the last value of each field, as Django's QueryDict does.
func fromValues(vals map[string][]string) requestData {
	data := make(requestData, len(vals))
	for k, vs := range vals {
		if len(vs) == 0 {
			continue
		}
		v := vs[len(vs)-1]
		if !utf8.ValidString(v) {
			data[k] = fieldValue{kind: fieldNotString}
			continue
		}
		data[k] = fieldValue{str: v}
	}
	return data
}

// decodeJSON reads a strict JSON object: one object, no duplicate keys, no
// trailing data, valid UTF-8.
func decodeJSON(body []byte) (requestData, *decodeError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return requestData{}, nil
	}
	if !utf8.Valid(body) {
		return nil, parseError("invalid UTF-8 in request body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonSyntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		// Read the rest so a syntax error wins over the type complaint.
		if d == '[' || d == '{' {
			if err := skipValue(dec, d); err != nil {
				return nil, jsonSyntax(err)
			}
		}
		if err := expectEOF(dec); err != nil {
			return nil, err
		}
		return nil, nonFieldError("Invalid data. Expected a dictionary, but got " + pythonTypeName(tok) + ".")
	}
	data := requestData{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonSyntax(err)
		}
		key, _ := tok.(string)
		if _, dup := data[key]; dup {
			return nil, parseError(fmt.Sprintf("duplicate key %q", key))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonSyntax(err)
		}
		switch raw[0] {
		case '"':
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, jsonSyntax(err)
			}
			data[key] = fieldValue{str: s}
		case 'n':
			data[key] = fieldValue{kind: fieldNull}
		default:
			data[key] = fieldValue{kind: fieldNotString}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, jsonSyntax(err)
	}
	if err := expectEOF(dec); err != nil {
		return nil, err
	}
	return data, nil
}

// skipValue consumes the rest of an array or object whose opening delimiter
// was just read.
func skipValue(dec *json.Decoder, open json.Delim) error {
	depth := 1
	for depth > 0 {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '[' || d == '{' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

func expectEOF(dec *json.Decoder) *decodeError {
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return parseError("extra data after the JSON value")
		}
		return jsonSyntax(err)
	}
	return nil
}

func parseError(what string) *decodeError {
	return detailError(http.StatusBadRequest, "JSON parse error - "+what)
}

// jsonSyntax turns a decoder error into a parse message that names the
// problem and where, without leaking Go type names.
func jsonSyntax(err error) *decodeError {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return parseError(fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return parseError("unexpected end of JSON input")
	default:
		return parseError("invalid JSON")
	}
}

// pythonTypeName names a JSON value's type as DRF (Python) would.
func pythonTypeName(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "list"
		}
		return "dict"
	case string:
		return "str"
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			return "float"
		}
		return "int"
	case bool:
		return "bool"
	default:
		return "NoneType"
	}
}
