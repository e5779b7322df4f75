// Package sessions provides the session storage pieces for scs
// (github.com/alexedwards/scs/v2): a bbolt-backed store for single-node
// deployments, a Redis connection pool for the shared redisstore, and a
// compact binary Codec that is much cheaper than scs's default GobCodec.
//
// Every authenticated request loads one session, so Find and Decode are on
// the hot path. The package knows nothing about HTTP or Caddy.
package sessions
