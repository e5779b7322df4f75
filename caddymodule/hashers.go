package caddymodule

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
)

// Password hashers are shared by every handler in the process (all sites,
// old and new config during a reload, the admin API), so hash_concurrency
// bounds argon2's memory for the whole process rather than per handler.
var hashers struct {
	sync.Mutex
	byLimit map[int]*passwords.Hasher
}

func sharedHasher(concurrency int) *passwords.Hasher {
	hashers.Lock()
	defer hashers.Unlock()
	if h, ok := hashers.byLimit[concurrency]; ok {
		return h
	}
	if hashers.byLimit == nil {
		hashers.byLimit = map[int]*passwords.Hasher{}
	}
	h := passwords.NewHasher(passwords.DefaultParams, concurrency)
	h.SetObserver(observeHash)
	hashers.byLimit[concurrency] = h
	return h
}

// defaultHashWait bounds how long a request waits for a hashing slot:
// under a flood, requests are answered 503 instead of piling up. hashWait
// holds it (tests shorten it).
const defaultHashWait = 10 * time.Second

var hashWait atomic.Int64

func init() { hashWait.Store(int64(defaultHashWait)) }

func hashContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, time.Duration(hashWait.Load()))
}
