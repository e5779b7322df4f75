package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/rules"
)

// unmarshalPermissions reads the subdirectives of groups, rules and the
// identity token (see UnmarshalCaddyfile); handled is false for any other.
//
//	require                 <who…> [<METHOD…>] <path_pattern…>
//	identity_token          [<header>]
//	identity_token_issuer   <issuer>
//	identity_token_audience <audience>
//	identity_token_key      <pem_file> [<old_pem_file>…]
func (s *SessionAuth) unmarshalPermissions(d *caddyfile.Dispenser, st *permsParse) (handled bool, err error) {
	tok := func() *IdentityToken {
		if s.IdentityToken == nil {
			s.IdentityToken = new(IdentityToken)
		}
		if d.Val() != "identity_token" && st.orphan == nil {
			st.orphan = d.Errf("%s needs identity_token", d.Val())
		}
		return s.IdentityToken
	}
	switch d.Val() {
	case "require":
		sp, err := parseRequire(d)
		if err != nil {
			return true, err
		}
		s.Rules = append(s.Rules, sp)
	case "identity_token":
		st.tokenOn = true
		if !optionalArg(d, &tok().Header, "") {
			return true, d.ArgErr()
		}
	case "identity_token_issuer":
		if !d.AllArgs(&tok().Issuer) {
			return true, d.ArgErr()
		}
	case "identity_token_audience":
		if !d.AllArgs(&tok().Audience) {
			return true, d.ArgErr()
		}
	case "identity_token_key":
		files := d.RemainingArgs()
		if len(files) == 0 {
			return true, d.ArgErr()
		}
		tok().KeyFiles = append(tok().KeyFiles, files...)
	case "two_factor", "passkey_rp_id", "passkey_origins", "totp_issuer":
		return true, s.unmarshalTwoFactor(d)
	default:
		return false, nil
	}
	return true, nil
}

// unmarshalTwoFactor reads the second factor's subdirectives:
//
//	two_factor      optional | required [<who…>]
//	passkey_rp_id   <domain>
//	passkey_origins <origin…>
//	totp_issuer     <name>
//
// Whether the values are acceptable is checkTwoFactor's to say (the same
// errors for a JSON config), reported here with the line.
func (s *SessionAuth) unmarshalTwoFactor(d *caddyfile.Dispenser) error {
	if s.TwoFactor == nil {
		s.TwoFactor = new(TwoFactor)
	}
	tf := s.TwoFactor
	sub := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	switch sub {
	case "two_factor":
		tf.Policy, tf.Who = args[0], args[1:]
		if len(tf.Who) == 0 {
			tf.Who = nil
		}
	case "passkey_rp_id":
		if len(args) != 1 {
			return d.ArgErr()
		}
		tf.PasskeyRPID = args[0]
	case "passkey_origins":
		tf.PasskeyOrigins = append(tf.PasskeyOrigins, args...)
	case "totp_issuer":
		if len(args) != 1 {
			return d.ArgErr()
		}
		tf.TOTPIssuer = args[0]
	}
	if sub == "two_factor" {
		if err := checkTwoFactorPolicy(tf); err != nil {
			return d.Err(err.Error())
		}
	}
	return nil
}

// permsParse is what unmarshalPermissions keeps over a block.
type permsParse struct {
	tokenOn bool
	orphan  error // an identity_token_* line, in case identity_token never comes
}

// finishPermissions checks what only the whole block tells.
func (s *SessionAuth) finishPermissions(st *permsParse) error {
	if !st.tokenOn && st.orphan != nil {
		return st.orphan
	}
	return nil
}

// parseRequire reads `require <who…> [<METHOD…>] <path_pattern…>`: who is
// staff, superuser or group:<name>, methods are upper case, patterns begin
// with / or *. Whether each part is acceptable is Provision's to say (the
// same errors for a JSON config).
func parseRequire(d *caddyfile.Dispenser) (rules.Spec, error) {
	var sp rules.Spec
	args := d.RemainingArgs()
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a != rules.WhoStaff && a != rules.WhoSuperuser && !strings.HasPrefix(a, rules.WhoGroupPrefix) {
			break
		}
		sp.Who = append(sp.Who, a)
	}
	if len(sp.Who) == 0 {
		if len(args) == 0 {
			return sp, d.ArgErr()
		}
		return sp, d.Errf("require: %q: begin with who may pass: staff, superuser or group:<name>", args[0])
	}
	for ; i < len(args) && !rules.IsPattern(args[i]); i++ {
		if !rules.IsMethod(args[i]) {
			return sp, d.Errf("require: %q is neither an upper-case HTTP method nor a path pattern (which begins with / or *)", args[i])
		}
		sp.Methods = append(sp.Methods, args[i])
	}
	for ; i < len(args); i++ {
		if !rules.IsPattern(args[i]) {
			return sp, d.Errf("require: %q is not a path pattern (it must begin with / or *); methods go before the patterns", args[i])
		}
		sp.Paths = append(sp.Paths, args[i])
	}
	if len(sp.Paths) == 0 {
		return sp, d.Errf("require: no path pattern after %s", strings.Join(args, " "))
	}
	return sp, nil
}
