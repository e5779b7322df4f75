#!/usr/bin/python3
"""An upstream that trusts nothing but the sidecar's identity token.

Each request's token (the header named on the command line) is verified
with PyJWT against the sidecar's JWKS, as the README tells an upstream to:
EdDSA only, the expected issuer and audience, exp checked. The answer is
200 {"claims": {...}, "kid": "...", "token": "..."} or 401 {"error": "..."}.

    jwt_upstream.py serve PORT JWKS_URL ISSUER AUDIENCE HEADER
    jwt_upstream.py verify JWKS_URL ISSUER AUDIENCE TOKEN   (prints the claims; exit 1 if refused)

Debian's python3-jwt (PyJWT with cryptography); used by caddymodule's
identity token tests.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt


def verifier(jwks_url, issuer, audience):
    # PyJWKClient caches the key set and fetches it again for a kid it does
    # not know (a rotated key).
    keys = jwt.PyJWKClient(jwks_url)

    def verify(token):
        signing_key = keys.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=["EdDSA"],
            issuer=issuer,
            audience=audience or None,
            options={"require": ["exp", "iat", "iss", "sub"]},
        )
        return claims, jwt.get_unverified_header(token)["kid"]

    return verify


def serve(port, jwks_url, issuer, audience, header):
    verify = verifier(jwks_url, issuer, audience)

    class Handler(BaseHTTPRequestHandler):
        def answer(self):
            token = self.headers.get(header, "")
            try:
                claims, kid = verify(token)
                status, body = 200, {"claims": claims, "kid": kid, "path": self.path, "token": token}
            except Exception as e:  # every refusal is the test's to see
                status, body = 401, {"error": "%s: %s" % (type(e).__name__, e)}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = answer

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    print("ready", flush=True)
    srv.serve_forever()


def main():
    if sys.argv[1] == "serve":
        serve(*sys.argv[2:7])
    elif sys.argv[1] == "verify":
        jwks_url, issuer, audience, token = sys.argv[2:6]
        try:
            claims, kid = verifier(jwks_url, issuer, audience)(token)
        except Exception as e:
            print("%s: %s" % (type(e).__name__, e))
            sys.exit(1)
        print(json.dumps({"claims": claims, "kid": kid}))
    else:
        sys.exit("usage: see the docstring")


if __name__ == "__main__":
    main()
