package caddymodule

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// healthCacheFor bounds how often a burst of health polls reaches Redis.
const healthCacheFor = time.Second

// healthTimeout bounds the users database check: a hung PostgreSQL is
// reported unavailable rather than hanging the load balancer's probe.
const healthTimeout = 2 * time.Second

// healthCheck reports whether the stores answer, for load balancers. A
// result is reused for a second, so polling it costs at most one users
// database check (a bbolt read transaction, or a PostgreSQL ping) and one
// Redis PING per second.
type healthCheck struct {
	db       *sharedDB
	sessions sessionBackend

	mu      sync.Mutex
	checked time.Time
	status  int
	body    []byte
}

func (h *healthCheck) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = []string{"GET, HEAD"}
		writeMethodNotAllowed(w, r.Method)
		return
	}
	status, body := h.result()
	writeJSON(w, status, body)
}

func (h *healthCheck) result() (int, []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if time.Since(h.checked) < healthCacheFor && h.body != nil {
		return h.status, h.body
	}
	report := struct {
		Status   string `json:"status"`
		UsersDB  string `json:"users_db"`
		Backend  string `json:"users_backend,omitempty"` // "postgres"; absent for bbolt
		Sessions string `json:"sessions"`
		Redis    string `json:"redis,omitempty"`
		Cache    string `json:"session_cache,omitempty"`
	}{Status: "ok", UsersDB: "ok", Sessions: h.sessions.kind(), Cache: h.sessions.cacheStatus()}
	if h.db.kind() == "postgres" {
		report.Backend = "postgres"
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	err := h.db.ping(ctx)
	cancel()
	if err != nil {
		report.Status, report.UsersDB = "unavailable", "unavailable"
	}
	if report.Sessions == "redis" {
		report.Redis = "ok"
		if err := h.sessions.ping(); err != nil {
			report.Status, report.Redis = "unavailable", "unreachable"
		}
	}
	h.status = http.StatusOK
	if report.Status != "ok" {
		h.status = http.StatusServiceUnavailable
	}
	h.body = mustJSON(report)
	h.checked = time.Now()
	return h.status, h.body
}
