package idtoken_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/idtoken"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// The README's Go snippet for an upstream, as it is: Identity, fetchJWKS
// and verify.

type Identity struct {
	jwt.Claims
	Username    string   `json:"username"`
	Email       string   `json:"email"`
	Groups      []string `json:"groups"`
	IsStaff     bool     `json:"is_staff"`
	IsSuperuser bool     `json:"is_superuser"`
}

var errUnknownKey = errors.New("unknown kid")

// fetchJWKS reads the sidecar's keys; fetch again on an unknown kid.
func fetchJWKS(url string) (*jose.JSONWebKeySet, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	return &set, json.NewDecoder(resp.Body).Decode(&set)
}

func verify(token string, keys *jose.JSONWebKeySet) (*Identity, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return nil, err
	}
	found := keys.Key(tok.Headers[0].KeyID)
	if len(found) == 0 {
		return nil, errUnknownKey // refetch the JWKS once, then refuse
	}
	var id Identity
	if err := tok.Claims(found[0].Key, &id); err != nil {
		return nil, err
	}
	return &id, id.Claims.ValidateWithLeeway(jwt.Expected{
		Issuer:      "https://auth.example.com",
		AnyAudience: jwt.Audience{"my-app"},
		Time:        time.Now(),
	}, 0)
}

// An upstream verifies a token the sidecar signed against the JWKS it
// serves (here a test server standing in for <api_prefix>/jwks/).
func Example_verifyUpstream() {
	k, _ := idtoken.NewKey(time.Now())
	ks := &idtoken.KeySet{Keys: []idtoken.Key{k}}
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(ks.JWKS(time.Now()))
	}))
	defer sidecar.Close()
	signer := &idtoken.Signer{Issuer: "https://auth.example.com", Audience: "my-app"}
	signer.SetKey(ks.Signing())
	token, _ := signer.Token(&users.User{ID: 42, Username: "alice", Email: "alice@example.com",
		IsStaff: true, Groups: []string{"editors"}}, idtoken.Origin{})

	keys, err := fetchJWKS(sidecar.URL + "/api/jwks/")
	if err != nil {
		panic(err)
	}
	id, err := verify(token, keys)
	fmt.Println(id.Subject, id.Username, id.Groups, id.IsStaff, id.IsSuperuser, err)

	// Another issuer's token, or a changed one, is refused.
	other := &idtoken.Signer{Issuer: "https://evil.example", Audience: "my-app"}
	other.SetKey(ks.Signing())
	forged, _ := other.Token(&users.User{ID: 1, Username: "root", IsSuperuser: true}, idtoken.Origin{})
	_, err = verify(forged, keys)
	fmt.Println(err)
	_, err = verify(token[:len(token)-4]+"AAAA", keys)
	fmt.Println(err != nil)
	// Output:
	// 42 alice [editors] true false <nil>
	// go-jose/go-jose/jwt: validation failed, invalid issuer claim (iss)
	// true
}
