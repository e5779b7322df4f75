package caddymodule

import (
	"net/http"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// healthCacheFor bounds how often a burst of health polls reaches Redis.
const healthCacheFor = time.Second

// healthCheck reports whether the stores answer, for load balancers. A
// result is reused for a second, so polling it costs one bbolt read
// transaction and at most one Redis PING per second.
type healthCheck struct {
	db       *bbolt.DB
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
		Sessions string `json:"sessions"`
		Redis    string `json:"redis,omitempty"`
		Cache    string `json:"session_cache,omitempty"`
	}{Status: "ok", UsersDB: "ok", Sessions: h.sessions.kind(), Cache: h.sessions.cacheStatus()}
	if err := h.db.View(func(*bbolt.Tx) error { return nil }); err != nil {
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
