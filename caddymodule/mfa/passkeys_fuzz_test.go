package mfa

import (
	"encoding/json"
	"testing"

	"github.com/caddy-session-auth/caddy-session-auth/internal/testwebauthn"
)

// FuzzPasskeyResponses feeds mutated WebAuthn responses through
// FinishLogin (both kinds of ceremony) and FinishRegistration: an error,
// never a panic. (A review ran it for 90 s, about two million inputs;
// `go test` runs the seeds.)
func FuzzPasskeyResponses(f *testing.F) {
	s, id, _ := newService(f)
	rp := RP{ID: "localhost", Name: "x", Origin: "http://localhost:8080"}
	a := testwebauthn.New(rp.Origin)
	creation, sd, err := s.BeginRegistration(bg, rp, id, "alice")
	if err != nil {
		f.Fatal(err)
	}
	opts, _ := json.Marshal(creation)
	cred, _, err := a.Create(opts)
	if err != nil {
		f.Fatal(err)
	}
	if _, _, err := s.FinishRegistration(bg, rp, id, "alice", *sd, cred, "k", false); err != nil {
		f.Fatal(err)
	}
	creation2, sdReg, _ := s.BeginRegistration(bg, rp, id, "alice")
	opts2, _ := json.Marshal(creation2)
	cred2, _, _ := a.Create(opts2)
	assertion, sdDisc, _ := s.BeginLogin(bg, rp, 0)
	o, _ := json.Marshal(assertion)
	as, err := a.Get(o)
	if err != nil {
		f.Fatal(err)
	}
	assertion2, sdUser, _ := s.BeginLogin(bg, rp, id)
	o2, _ := json.Marshal(assertion2)
	as2, _ := a.Get(o2)
	f.Add(as, uint8(0))
	f.Add(as2, uint8(1))
	f.Add(cred2, uint8(2))
	f.Add([]byte(`{"id":"","rawId":"","type":"public-key","response":{"clientDataJSON":"","authenticatorData":"","signature":"","userHandle":"AAAAAAAAAAE"}}`), uint8(0))
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		switch which % 3 {
		case 0:
			s.FinishLogin(bg, rp, *sdDisc, body)
		case 1:
			s.FinishLogin(bg, rp, *sdUser, body)
		case 2:
			s.FinishRegistration(bg, rp, id, "alice", *sdReg, body, "n", false)
		}
	})
}
