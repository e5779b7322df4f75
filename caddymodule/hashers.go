package caddymodule

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/passwords"
)

// One password hasher serves the whole process: every handler (all sites,
// old and new config during a reload) and the admin API hash through it,
// so one semaphore bounds argon2's memory for the process, whatever each
// handler's hash_concurrency. Its size is the smallest hash_concurrency
// among the handlers provisioned and not yet cleaned up (the default with
// none): the bound is a memory limit, and the tightest one asked for holds.
var hashers struct {
	sync.Mutex
	hasher *passwords.Hasher
	limits map[int]int // hash_concurrency -> handlers holding it
}

// hasherParams are the process hasher's argon2id parameters: the
// package's defaults (OWASP's 19 MiB, t=2), lowered only by this package's
// own tests (export_test.go) where the cost is not what is tested.
var hasherParams = passwords.DefaultParams

// defaultHashConcurrency is the number of CPUs, at most 4.
func defaultHashConcurrency() int {
	return min(runtime.NumCPU(), maxDefaultHashConcurrency)
}

// processHasher returns the process's hasher.
func processHasher() *passwords.Hasher {
	hashers.Lock()
	defer hashers.Unlock()
	return processHasherLocked()
}

func processHasherLocked() *passwords.Hasher {
	if hashers.hasher == nil {
		hashers.hasher = passwords.NewHasher(hasherParams, defaultHashConcurrency())
		hashers.hasher.SetObserver(observeHash)
		hashers.hasher.SetWaitObserver(observeHashWait) // signals.go
		hashers.limits = map[int]int{}
	}
	return hashers.hasher
}

// acquireHasher registers a handler's hash_concurrency and returns the
// process's hasher, its bound updated; releaseHasher undoes it.
func acquireHasher(concurrency int) *passwords.Hasher {
	hashers.Lock()
	defer hashers.Unlock()
	h := processHasherLocked()
	hashers.limits[concurrency]++
	setHashLimitLocked()
	return h
}

func releaseHasher(concurrency int) {
	hashers.Lock()
	defer hashers.Unlock()
	if hashers.limits[concurrency] <= 1 {
		delete(hashers.limits, concurrency)
	} else {
		hashers.limits[concurrency]--
	}
	setHashLimitLocked()
}

func setHashLimitLocked() {
	limit := 0
	for n := range hashers.limits {
		if limit == 0 || n < limit {
			limit = n
		}
	}
	if limit == 0 {
		limit = defaultHashConcurrency()
	}
	hashers.hasher.Slots().SetLimit(limit)
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
