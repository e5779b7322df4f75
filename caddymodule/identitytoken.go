package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/idtoken"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// IdentityToken turns on the signed identity token: a short-lived JWT
// (EdDSA over Ed25519) with the user's identity, added to each forwarded
// request and to forward-auth answers, which an upstream verifies against
// the keys published at <api_prefix>/jwks/.
type IdentityToken struct {
	// Header carries the token. Default: X-Auth-Token. With
	// "Authorization" the value is "Bearer <token>".
	Header string `json:"header,omitempty"`

	// Issuer is the iss claim. Default: the site's origin, as the request
	// gives it (scheme://host[:port]); set it when the upstream checks iss.
	Issuer string `json:"issuer,omitempty"`

	// Audience, if set, is the aud claim.
	Audience string `json:"audience,omitempty"`

	// KeyFiles are PEM files of Ed25519 private keys (openssl genpkey
	// -algorithm ed25519): the first signs, the others are only published
	// (a key being rotated out). Default: a key generated once and kept
	// with the users (users_db), shared by every instance and rotated with
	// `caddy session-auth rotate-key`.
	KeyFiles []string `json:"key_files,omitempty"`
}

const defaultTokenHeader = "X-Auth-Token"

// keyReloadInterval is how often the signing key is re-read from the users
// backend, so that a rotation made elsewhere (the CLI, another instance)
// is signed with within this long; jwksReloadInterval likewise for what
// the JWKS endpoint publishes.
const (
	keyReloadInterval  = 5 * time.Second
	jwksReloadInterval = time.Second
	keyLoadTimeout     = 5 * time.Second
)

// keyRotations counts rotations made through this process's admin API,
// so its handlers reload at once rather than within keyReloadInterval.
var keyRotations atomic.Int64

// tokenIssuer is the handler's identity token state.
type tokenIssuer struct {
	signer  *idtoken.Signer
	secrets users.Secrets // nil: keys from files
	logger  *zap.Logger

	set          atomic.Pointer[idtoken.KeySet]
	loadedAt     atomic.Int64 // unix nanoseconds of the last load (attempt)
	seenRotation atomic.Int64
	loading      atomic.Bool
	mu           sync.Mutex // one synchronous reload at a time
}

// provisionIdentityToken sets the token up: keys from files, or the key
// set kept with the users (made on first use). A corrupt stored set is an
// error; a users backend that does not answer is not (requests get 503
// until it does).
func (s *SessionAuth) provisionIdentityToken() error {
	it := s.IdentityToken
	if it == nil {
		return nil
	}
	if err := checkTokenHeader(it.Header, s.IdentityHeaders); err != nil {
		return err
	}
	t := &tokenIssuer{
		signer: &idtoken.Signer{Issuer: it.Issuer, Audience: it.Audience},
		logger: s.logger,
	}
	if strings.EqualFold(it.Header, "Authorization") {
		t.signer.Prefix = "Bearer "
	}
	t.seenRotation.Store(keyRotations.Load())
	s.token = t
	if len(it.KeyFiles) > 0 {
		ks, err := idtoken.FromFiles(it.KeyFiles)
		if err != nil {
			return err
		}
		return t.install(ks, time.Now())
	}
	sec, ok := s.users.(users.Secrets)
	if !ok {
		return fmt.Errorf("identity_token: the users backend %T cannot keep keys: set identity_token_key", s.users)
	}
	t.secrets = sec
	ctx, cancel := context.WithTimeout(context.Background(), keyLoadTimeout)
	defer cancel()
	ks, err := idtoken.Ensure(ctx, sec)
	if errors.Is(err, idtoken.ErrCorrupt) {
		return fmt.Errorf("identity_token: %v (the %q secret in users_db; delete it to start over with a new key)", err, idtoken.SecretName)
	}
	if err != nil {
		s.logger.Warn("identity token keys unreadable at start; gated requests will get 503 until the users database answers", zap.Error(err))
		return nil
	}
	return t.install(ks, time.Now())
}

// checkTokenHeader refuses a token header that is no header name, or one
// the sidecar sets or reads for something else.
func checkTokenHeader(name string, ih *IdentityHeaders) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("identity_token: %q is not a header name", name)
	}
	n := normalHeader(name)
	for _, other := range []string{ih.UserID, ih.Username, ih.Email, ih.Groups, ih.EmailVerified, "Cookie", "Host", "Content-Length",
		"Transfer-Encoding", "Connection", "X-CSRFToken", "Origin", "Content-Type"} {
		if normalHeader(other) == n {
			return fmt.Errorf("identity_token: header %q is taken (by %s)", name, other)
		}
	}
	return nil
}

func (t *tokenIssuer) install(ks *idtoken.KeySet, now time.Time) error {
	if err := t.signer.SetKey(ks.Signing()); err != nil {
		return fmt.Errorf("identity_token: %v", err)
	}
	t.set.Store(ks)
	t.loadedAt.Store(now.UnixNano())
	return nil
}

// tokenFor returns the token for u on a request to origin.
func (t *tokenIssuer) tokenFor(u *users.User, origin idtoken.Origin) (string, error) {
	now := time.Now()
	t.maybeReload(now)
	return t.signer.TokenAt(u, origin, now)
}

// identityToken is the token for a gated request ("" when off).
func (s *SessionAuth) identityToken(r *http.Request, u *users.User) (string, error) {
	if s.token == nil {
		return "", nil
	}
	var origin idtoken.Origin
	if s.token.signer.Issuer == "" {
		origin = idtoken.Origin{HTTPS: requestIsHTTPS(r), Host: r.Host}
	}
	return s.token.tokenFor(u, origin)
}

// maybeReload re-reads the key set: in the background once it is older
// than keyReloadInterval; at once, before signing, after this process's
// admin API rotated it.
func (t *tokenIssuer) maybeReload(now time.Time) {
	if t.secrets == nil {
		return
	}
	if rotated := keyRotations.Load(); rotated != t.seenRotation.Load() {
		t.seenRotation.Store(rotated)
		ctx, cancel := context.WithTimeout(context.Background(), keyLoadTimeout)
		defer cancel()
		t.reload(ctx)
		return
	}
	if now.UnixNano()-t.loadedAt.Load() < int64(keyReloadInterval) {
		return
	}
	if !t.loading.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer t.loading.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), keyLoadTimeout)
		defer cancel()
		t.reload(ctx)
	}()
}

// reload reads the key set; a failure keeps the current one (and is
// retried after keyReloadInterval).
func (t *tokenIssuer) reload(ctx context.Context) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ks, err := idtoken.Load(ctx, t.secrets)
	if errors.Is(err, users.ErrNotFound) { // deleted by an operator: start over
		ks, err = idtoken.Ensure(ctx, t.secrets)
	}
	now := time.Now()
	if err != nil {
		t.loadedAt.Store(now.UnixNano())
		t.logger.Warn("reading the identity token keys failed; signing with the keys read before", zap.Error(err))
		return
	}
	if cur := t.set.Load(); cur != nil && cur.Signing().ID != ks.Signing().ID {
		t.logger.Info("identity token signing key changed", zap.String("kid", ks.Signing().ID))
	}
	if err := t.install(ks, now); err != nil {
		t.logger.Error("identity token key unusable", zap.Error(err))
	}
}

// jwks returns the published keys, re-read if older than
// jwksReloadInterval.
func (t *tokenIssuer) jwks(ctx context.Context) ([]byte, error) {
	now := time.Now()
	rotated := keyRotations.Load()
	if t.secrets != nil && (now.UnixNano()-t.loadedAt.Load() >= int64(jwksReloadInterval) || rotated != t.seenRotation.Load()) {
		t.seenRotation.Store(rotated)
		t.reload(ctx)
	}
	ks := t.set.Load()
	if ks == nil {
		return nil, idtoken.ErrNoKey
	}
	return ks.JWKS(now), nil
}

var (
	valJWKSCache = []string{"no-cache"}
	allowJWKS    = []string{"GET, HEAD, OPTIONS"}
)

// serveJWKS answers <api_prefix>/jwks/: the identity token's public keys,
// to anyone (no session needed).
func (s *SessionAuth) serveJWKS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["Allow"] = allowJWKS
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if r.Method == http.MethodOptions {
			h["Content-Length"] = valZero
			w.WriteHeader(http.StatusOK)
			return
		}
		writeMethodNotAllowed(w, r.Method)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), keyLoadTimeout)
	defer cancel()
	body, err := s.token.jwks(ctx)
	if err != nil {
		s.storeFailure(w, "reading the identity token keys", err)
		return
	}
	h["Content-Type"] = valJSON
	h["Cache-Control"] = valJWKSCache
	h["X-Content-Type-Options"] = valNosniff
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
