package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/accounts"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPIBase is where the admin API's user management lives:
//
//	GET  /session-auth/users           the users (never a hash)
//	POST /session-auth/create-user     createUserRequest
//	POST /session-auth/set-password    setPasswordRequest
//	POST /session-auth/deactivate      userRequest
//	POST /session-auth/activate        userRequest
//	POST /session-auth/delete-user     userRequest
//	POST /session-auth/import-django   importRequest
//	POST /session-auth/unban           userRequest
//	POST /session-auth/add-to-group    groupRequest
//	POST /session-auth/remove-from-group groupRequest
//	POST /session-auth/rotate-key      {}
//	POST /session-auth/list-sessions   userRequest
//	POST /session-auth/end-sessions    userRequest
//	POST /session-auth/verify-email    userRequest
//	POST /session-auth/update-user     updateUserRequest
//	POST /session-auth/reset-2fa       userRequest
//	GET  /session-auth/backup          the users database, a bbolt file (backup.go)
//
// Each takes ?users_db=<path or URL> to choose among several open users databases.
// Errors are Caddy's admin API errors: {"error":"…"} with a 4xx or 5xx.
const adminAPIBase = "/session-auth/"

// maxAdminBody bounds request bodies (an import of ~100,000 users fits).
const maxAdminBody = 64 << 20

// adminAPI is the admin.api.session_auth module: it manages the users of
// the session_auth handlers running in this process, on the same open
// database they use, so the server never has to stop. The `caddy
// session-auth` commands use it with --config.
type adminAPI struct {
	logger   *zap.Logger
	auditLog *zap.Logger // the handlers' audit logger's name and outputs
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.session_auth",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision sets up the module.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger(a)
	// Named as the handlers' audit lines, so that one `log` block with
	// `include http.handlers.session_auth.audit` gets them all.
	a.auditLog = ctx.Logger(SessionAuth{}).Named(auditLoggerName)
	return nil
}

// Routes returns the admin routes.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: adminAPIBase, Handler: caddy.AdminHandlerFunc(a.serve)},
		{Pattern: adminAPIBase + "backup", Handler: caddy.AdminHandlerFunc(a.serveBackup)}, // backup.go
	}
}

type adminOp struct {
	method string
	run    func(ctx context.Context, ua storeAdmin, body []byte) (any, error)
}

// decodeInto returns a run function that decodes the body strictly into Req.
func decodeInto[Req any](fn func(ctx context.Context, ua storeAdmin, r Req) (any, error)) func(context.Context, storeAdmin, []byte) (any, error) {
	return func(ctx context.Context, ua storeAdmin, body []byte) (any, error) {
		var r Req
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, bodyError(err)
		}
		if _, err := dec.Token(); err != io.EOF { // dec.More() would let a stray ']' or '}' through
			return nil, badRequest("request body: one JSON object expected, found more after it")
		}
		return fn(ctx, ua, r)
	}
}

var adminOps = map[string]adminOp{
	"users": {http.MethodGet, func(ctx context.Context, ua storeAdmin, _ []byte) (any, error) {
		return ua.listUsers(ctx)
	}},
	"create-user": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r createUserRequest) (any, error) {
		return ua.createUser(ctx, r)
	})},
	"set-password": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r setPasswordRequest) (any, error) {
		return ua.setPassword(ctx, r)
	})},
	"deactivate": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r userRequest) (any, error) {
		return ua.setActive(ctx, r, false)
	})},
	"activate": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r userRequest) (any, error) {
		return ua.setActive(ctx, r, true)
	})},
	"delete-user": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r userRequest) (any, error) {
		return ua.deleteUser(ctx, r)
	})},
	"import-django": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r importRequest) (any, error) {
		return ua.importUsers(ctx, r)
	})},
	"unban": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r userRequest) (any, error) {
		return ua.unban(ctx, r)
	})},
	// groupadmin.go
	"add-to-group": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r groupRequest) (any, error) {
		return ua.addToGroup(ctx, r)
	})},
	"remove-from-group": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r groupRequest) (any, error) {
		return ua.removeFromGroup(ctx, r)
	})},
	// sessionadmin.go
	"list-sessions": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r userRequest) (any, error) {
		return ua.listSessions(ctx, r)
	})},
	"end-sessions": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r userRequest) (any, error) {
		return ua.endSessions(ctx, r)
	})},
	"verify-email": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r userRequest) (any, error) {
		return ua.setEmailVerified(ctx, r)
	})},
	"update-user": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r updateUserRequest) (any, error) {
		return ua.updateUser(ctx, r) // updateuser.go
	})},
	"reset-2fa": {http.MethodPost, decodeInto(func(ctx context.Context, ua storeAdmin, r userRequest) (any, error) {
		return ua.resetSecondFactor(ctx, r)
	})},
	"rotate-key": {http.MethodPost, func(ctx context.Context, ua storeAdmin, body []byte) (any, error) {
		if b := bytes.TrimSpace(body); len(b) > 0 && string(b) != "{}" {
			return nil, badRequest("rotate-key takes no parameters (an empty body or {})")
		}
		res, err := ua.rotateKey(ctx)
		if err == nil {
			keyRotations.Add(1) // this process's handlers sign with the new key at once
		}
		return res, err
	}},
}

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimPrefix(r.URL.Path, adminAPIBase)
	op, ok := adminOps[name]
	if !ok {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("resource not found: %v", r.URL.Path)}
	}
	if r.Method != op.method {
		w.Header().Set("Allow", op.method)
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed: %v", r.Method)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		return caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge,
			Err: fmt.Errorf("request body too large: at most %d MiB", maxAdminBody>>20)}
	}
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("reading the request body failed")}
	}
	sdb, dbKey, release, err := resolveUsersDB(r.URL.Query().Get("users_db"))
	if err != nil {
		return a.apiError(name, err)
	}
	defer release()
	unban := func(username string) (bool, error) { return unbanUsername(dbKey, username) }

	// Hashing waits for a slot (the handlers', one bound for the process);
	// don't let a client that went away hold one.
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(adminWait.Load()))
	defer cancel()
	stores := func() []sessionAccess { return sessionStoresOf(dbKey) }
	result, err := op.run(ctx, storeAdmin{accounts: &accounts.Service{Store: sdb.users, Hasher: processHasher(), Scheme: sdb.scheme}, unbanUsername: unban,
		sessionStores: stores}, body)
	if err != nil {
		return a.apiError(name, err)
	}
	a.audit(name, result)
	a.auditEvent(name, result, r)
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(result)
}

// audit logs what changed (never a password or hash).
func (a *adminAPI) audit(op string, result any) {
	switch res := result.(type) {
	case *userResult:
		if res.Changed {
			fields := []zap.Field{zap.Int64("user_id", res.User.ID), zap.String("username", res.User.Username)}
			if res.group != "" {
				fields = append(fields, zap.String("group", res.group))
			}
			a.logger.Info(op, fields...)
		}
	case *importResult:
		a.logger.Info(op, zap.Int("imported", res.Imported), zap.Int("skipped", res.Skipped))
	case *rotateKeyResult:
		a.logger.Info(op, zap.String("kid", res.KeyID))
	}
}

// auditEvent writes the security event of an admin API change on the
// audit logger (http.handlers.session_auth.audit), in the handlers' format
// (writeAudit): user_created, user_changed (with change, the operation) or
// user_deleted, with actor admin_api and the caller's address; reset-2fa
// writes mfa_disabled with reason reset and what was removed, or, for a
// user who had no factor, user_changed (their sessions ended all the same).
func (a *adminAPI) auditEvent(op string, result any, r *http.Request) {
	remote := zap.String("remote_addr", r.RemoteAddr)
	switch res := result.(type) {
	case *importResult:
		if res.Imported > 0 {
			writeAudit(a.auditLog, auditEntry{event: auditUserCreated, actor: "admin_api",
				extra: []zap.Field{remote, zap.String("change", op), zap.Int("imported", res.Imported)}})
		}
	case *userResult:
		e := auditEntry{event: auditUserChanged, user: &users.User{ID: res.User.ID, Username: res.User.Username},
			actor: "admin_api", extra: []zap.Field{remote}}
		switch {
		case op == "reset-2fa" && len(res.Removed) > 0:
			e.event, e.reason = auditMFADisabled, "reset"
			e.extra = append(e.extra, zap.Strings("removed", res.Removed))
		case op == "reset-2fa":
		case !res.Changed:
			return
		case op == "create-user":
			e.event = auditUserCreated
		case op == "delete-user":
			e.event = auditUserDeleted
		}
		if e.event == auditUserChanged {
			e.extra = append(e.extra, zap.String("change", op))
		}
		if res.group != "" {
			e.extra = append(e.extra, zap.String("group", res.group))
		}
		writeAudit(a.auditLog, e)
	}
}

// adminWait bounds an admin request's work (a hash waits for a slot that
// the handlers share); tests shorten it.
var adminWait atomic.Int64

func init() { adminWait.Store(int64(time.Minute)) }

// apiError turns err into the admin API's answer: a refusal (opError) as
// it says; the request's time running out (no hashing slot) 503; any other
// error is a fault of the users database, logged here with its details and
// answered 503 without them.
func (a *adminAPI) apiError(op string, err error) error {
	if oe, ok := errors.AsType[*opError](err); ok {
		if oe.cause != nil {
			a.logger.Error("admin API: "+oe.msg, zap.String("op", op), zap.Error(oe.cause))
		}
		return caddy.APIError{HTTPStatus: oe.status, Err: oe}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable,
			Err: errors.New("the server is busy (no password hashing slot in time): nothing was changed, try again")}
	}
	a.logger.Error("admin API: users database failure", zap.String("op", op), zap.Error(err))
	return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable,
		Err: errors.New("the users database failed (details in Caddy's log): try again")}
}

// bodyError words a request body that does not decode, without Go's
// type names.
func bodyError(err error) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return badRequest("request body: not valid JSON (at byte %d)", se.Offset)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field != "" {
			return badRequest("request body: %q must be %s, not %s", te.Field, jsonKind(te.Type.Kind()), te.Value)
		}
		return badRequest("request body: want a JSON object, not %s", te.Value)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("request body: a JSON object expected")
	}
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest("request body: unknown field %s", field)
	}
	return badRequest("request body: not a valid request")
}

// jsonKind names a Go kind as JSON does.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "an object"
}

// resolveUsersDB finds the open users database to work on: the only one, or
// the one named by want (the users_db of the config: a PostgreSQL URL, or a
// path as written there or absolute; a relative path is also matched as a
// suffix, in case the CLI runs in another directory than Caddy), and its
// key. release must be called after use. Messages name URLs without their
// password.
func resolveUsersDB(want string) (*sharedDB, string, func(), error) {
	var keys []string
	dbPool.Range(func(k, _ any) bool {
		if s, ok := k.(string); ok {
			keys = append(keys, s)
		}
		return true
	})
	slices.Sort(keys)
	shown := make([]string, len(keys))
	for i, k := range keys {
		shown[i] = displayDBKey(k)
	}
	if len(keys) == 0 {
		return nil, "", nil, &opError{status: http.StatusNotFound, msg: "no session_auth handler is running in this Caddy (no users database is open)"}
	}
	var key string
	switch {
	case want == "" && len(keys) == 1:
		key = keys[0]
	case want == "":
		return nil, "", nil, badRequest("this Caddy has %d users databases open, choose one with --users-db: %s",
			len(keys), strings.Join(shown, ", "))
	case isUsersURL(want):
		want = strings.TrimSpace(want)
		i := slices.IndexFunc(keys, func(k string) bool { return keyURL(k) == want })
		if i < 0 {
			// The URL as the message showed it (password redacted).
			i = slices.Index(shown, want)
		}
		if i < 0 {
			return nil, "", nil, badRequest("users_db %s is not open in this Caddy; the open users databases: %s",
				displayDBKey(want), strings.Join(shown, ", "))
		}
		key = keys[i]
	default:
		clean := filepath.Clean(want)
		abs, err := filepath.Abs(clean)
		if err != nil {
			return nil, "", nil, badRequest("users_db %q: %v", want, err)
		}
		var matches []string
		for _, k := range keys {
			if k == abs || (!isUsersURL(k) && !filepath.IsAbs(clean) && strings.HasSuffix(k, string(filepath.Separator)+clean)) {
				matches = append(matches, k)
			}
		}
		if i := slices.Index(matches, abs); i >= 0 {
			matches = matches[i : i+1]
		}
		if len(matches) != 1 {
			return nil, "", nil, badRequest("users_db %q matches %d of the open users databases: %s",
				want, len(matches), strings.Join(shown, ", "))
		}
		key = matches[0]
	}
	// Take a reference, so a config reload cannot close the DB under us.
	// (If it was closed since the Range above, this opens it again.)
	sdb, key, err := openSharedDB(key, time.Duration(defaultDBLockTimeout))
	if err != nil {
		return nil, "", nil, err
	}
	return sdb, key, func() { _, _ = dbPool.Delete(key) }, nil
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
