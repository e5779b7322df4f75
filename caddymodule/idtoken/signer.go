package idtoken

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// RefreshBefore: a cached token is handed out until this long before it
// expires, so that an upstream always gets one with at least this long to
// live; then it is signed anew.
const RefreshBefore = 15 * time.Second

// DefaultCacheSize bounds the cached tokens (one per user). Past it the
// cache starts over.
const DefaultCacheSize = 10000

// ErrNoKey is returned by Token before the Signer has a key.
var ErrNoKey = errors.New("idtoken: no signing key yet")

// Origin is the site's origin, the default issuer: kept as its parts so
// that comparing it with a cached token's costs no allocation.
type Origin struct {
	HTTPS bool
	Host  string
}

func (o Origin) String() string {
	scheme := "http://"
	if o.HTTPS {
		scheme = "https://"
	}
	return scheme + strings.ToLower(o.Host)
}

// Signer signs identity tokens and caches them per user. It is safe for
// concurrent use.
type Signer struct {
	// Issuer is the iss claim; empty means the request's origin.
	Issuer string
	// Audience, if set, is the aud claim.
	Audience string
	// Prefix is put before the token in what Token returns (e.g.
	// "Bearer " for an Authorization header).
	Prefix string
	// CacheSize bounds the cache (DefaultCacheSize if 0; <0: no cache).
	CacheSize int
	// Now is the clock (time.Now if nil), for tests.
	Now func() time.Time

	key   atomic.Pointer[signingKey]
	cache sync.Map // user id -> *cachedToken
	n     atomic.Int64
}

type signingKey struct {
	id     string
	signer jose.Signer
}

// cachedToken is a signed token and what it says, to tell whether it still
// says the truth about the user.
type cachedToken struct {
	keyID                string
	origin               Origin
	username, email      string
	groups               []string
	isStaff, isSuperuser bool
	emailVerified        bool
	value                string // Prefix + token
	refreshAt, expiresAt time.Time
}

// SetKey makes k the signing key. Tokens cached under another key are
// signed anew on their next use.
func (s *Signer) SetKey(k *Key) error {
	if cur := s.key.Load(); cur != nil && cur.id == k.ID {
		return nil
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return err
	}
	s.key.Store(&signingKey{id: k.ID, signer: sig})
	return nil
}

// KeyID returns the signing key's id ("" before SetKey).
func (s *Signer) KeyID() string {
	if k := s.key.Load(); k != nil {
		return k.id
	}
	return ""
}

func (s *Signer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Token returns the token for u (Prefix included): the cached one while it
// has more than RefreshBefore to live and still says what u and origin say,
// else a new one.
func (s *Signer) Token(u *users.User, origin Origin) (string, error) {
	return s.TokenAt(u, origin, s.now())
}

// TokenAt is Token at the time now (for a caller that has read the clock).
func (s *Signer) TokenAt(u *users.User, origin Origin, now time.Time) (string, error) {
	key := s.key.Load()
	if key == nil {
		return "", ErrNoKey
	}
	if v, ok := s.cache.Load(u.ID); ok {
		c := v.(*cachedToken)
		if now.Before(c.refreshAt) && c.keyID == key.id && c.matches(u, origin, s.Issuer == "") {
			return c.value, nil
		}
	}
	c, err := s.sign(key, u, origin, now)
	if err != nil {
		return "", err
	}
	if s.CacheSize >= 0 {
		if _, loaded := s.cache.Swap(u.ID, c); !loaded {
			max := s.CacheSize
			if max == 0 {
				max = DefaultCacheSize
			}
			if s.n.Add(1) > int64(max) {
				s.cache.Clear()
				s.n.Store(0)
			}
		}
	}
	return c.value, nil
}

func (c *cachedToken) matches(u *users.User, origin Origin, originIsIssuer bool) bool {
	return c.username == u.Username && c.email == u.Email && c.emailVerified == u.EmailVerified && c.isStaff == u.IsStaff &&
		c.isSuperuser == u.IsSuperuser && slices.Equal(c.groups, u.Groups) &&
		(!originIsIssuer || c.origin == origin)
}

// claims is the token's payload.
type claims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud,omitempty"`
	Username string `json:"username"`
	Email    string `json:"email"`
	// EmailVerified is OpenID Connect's claim: false until the user
	// proved the address.
	EmailVerified bool     `json:"email_verified"`
	Groups        []string `json:"groups"`
	IsStaff       bool     `json:"is_staff"`
	IsSuperuser   bool     `json:"is_superuser"`
	IssuedAt      int64    `json:"iat"`
	Expiry        int64    `json:"exp"`
}

func (s *Signer) sign(key *signingKey, u *users.User, origin Origin, now time.Time) (*cachedToken, error) {
	iss := s.Issuer
	if iss == "" {
		iss = origin.String()
	}
	groups := slices.Clone(u.Groups)
	cl := claims{
		Issuer: iss, Subject: strconv.FormatInt(u.ID, 10), Audience: s.Audience,
		Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified, Groups: groups, IsStaff: u.IsStaff, IsSuperuser: u.IsSuperuser,
		IssuedAt: now.Unix(), Expiry: now.Add(Lifetime).Unix(),
	}
	if cl.Groups == nil {
		cl.Groups = []string{}
	}
	payload, err := json.Marshal(cl)
	if err != nil {
		return nil, err
	}
	jws, err := key.signer.Sign(payload)
	if err != nil {
		return nil, err
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return nil, err
	}
	exp := time.Unix(cl.Expiry, 0)
	return &cachedToken{
		keyID: key.id, origin: origin, username: u.Username, email: u.Email, groups: groups,
		isStaff: u.IsStaff, isSuperuser: u.IsSuperuser, emailVerified: u.EmailVerified, value: s.Prefix + tok,
		refreshAt: exp.Add(-RefreshBefore),
	}, nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
