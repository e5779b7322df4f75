// Package sessions provides the session storage pieces for scs
// (github.com/alexedwards/scs/v2): a bbolt-backed store for single-node
// deployments; a Redis store (RedisStore, key layout compatible with scs's
// redisstore) over a client (OpenRedis) that gets over a Redis restart,
// finds the master through Redis Sentinel and follows its failovers, reads
// sessions over one pipelined connection and, optionally, from an exact
// in-memory cache kept by Redis's client-side caching invalidations; and a
// compact binary Codec that is much cheaper than scs's default GobCodec.
//
// Every authenticated request loads one session, so Find and Decode are on
// the hot path. The package knows nothing about HTTP or Caddy.
package sessions
