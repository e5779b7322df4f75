package caddymodule

import (
	"time"

	"go.uber.org/zap"
)

// A reload starts the new config, stops the old one's servers without
// waiting for the requests they are still serving, and then cleans up the
// old config's modules. Were the shared stores released at that moment, a
// reload that changes users_db (or redis) would close the DB under those
// requests ("database not open", a 503). So Cleanup releases them once this
// instance has no request in flight, waiting at most drainTimeout (a
// proxied request counts until the upstream's response is done: a
// long-lived one only delays the release).
const (
	drainTimeout = time.Minute
	drainPoll    = 10 * time.Millisecond
)

// Cleanup releases the shared stores this instance acquired: at once when
// it serves no request, otherwise in the background once they are done.
func (s *SessionAuth) Cleanup() error {
	if s.inflight == nil || s.inflight.Load() == 0 {
		return s.release()
	}
	go func() {
		deadline := time.Now().Add(drainTimeout)
		for s.inflight.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(drainPoll)
		}
		if n := s.inflight.Load(); n > 0 {
			s.logger.Warn("releasing stores of a replaced config with requests still in flight", zap.Int64("requests", n))
		}
		if err := s.release(); err != nil {
			s.logger.Error("releasing stores of a replaced config", zap.Error(err))
		}
	}()
	return nil
}
