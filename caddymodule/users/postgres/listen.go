package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// channel is the NOTIFY channel the users table's trigger signals on; the
// payload is the id of the user that changed, or "*" for all of them.
const channel = "session_auth_users"

// Reconnect backoff of the listener.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// listen keeps a connection LISTENing until ctx ends, and keeps the cache
// honest: it flushes the cache and withdraws the lease whenever the
// connection is lost, and grants it again only once LISTEN is back.
func (s *Store) listen(ctx context.Context) {
	defer close(s.done)
	var downSince time.Time
	state := 0 // 0 unknown, 1 listening, -1 down
	backoff := minBackoff
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, func() {
			ev := ListenerEvent{Listening: true}
			if state == -1 {
				ev.Down = time.Since(downSince)
			}
			state, backoff = 1, minBackoff
			s.listening.Store(true)
			s.report(ev)
		})
		// Whatever happened, nothing heard from now on can be trusted
		// to cover the cache.
		s.leaseUntil.Store(0)
		s.cache.Invalidate()
		s.listening.Store(false)
		s.listenerPID.Store(0)
		if ctx.Err() != nil {
			return
		}
		if state != -1 {
			state, downSince = -1, time.Now()
			s.report(ListenerEvent{Err: err})
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (s *Store) report(ev ListenerEvent) {
	if s.opts.OnListener != nil {
		s.opts.OnListener(ev)
	}
}

// listenOnce connects, LISTENs, calls up, and then waits for notifications
// (handled by onNotification as they are read) and checks the connection
// every heartbeat, renewing the lease, until an error or ctx's end.
func (s *Store) listenOnce(ctx context.Context, up func()) error {
	cctx, cancel := context.WithTimeout(ctx, s.listenCfg.ConnectTimeout)
	conn, err := pgconn.ConnectConfig(cctx, s.listenCfg)
	cancel()
	if err != nil {
		return fmt.Errorf("users: postgres: listener: connecting: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	s.listenerPID.Store(conn.PID())
	sent := s.now()
	if err := s.check(ctx, conn, "LISTEN "+channel); err != nil {
		return fmt.Errorf("users: postgres: listener: LISTEN: %w", err)
	}
	// Changes made while nobody listened were missed: start afresh. A
	// ByID that read before this flush cannot fill the cache after it
	// (the generation moved), and none fills it while the lease is 0.
	s.cache.Invalidate()
	s.leaseUntil.Store(sent + int64(s.lease))
	up()
	next := time.Now().Add(s.opts.Heartbeat)
	for {
		wctx, cancel := context.WithDeadline(ctx, next)
		err := conn.WaitForNotification(wctx)
		heartbeat := wctx.Err() != nil // before cancel sets it
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			continue // onNotification has invalidated
		}
		if !heartbeat {
			return fmt.Errorf("users: postgres: listener: %w", err)
		}
		// Heartbeat. Every NOTIFY committed before the check reached the
		// server is delivered before its reply (and handled while
		// reading it), so the cache is exact as of sent.
		sent := s.now()
		if err := s.check(ctx, conn, "-- ping"); err != nil {
			return fmt.Errorf("users: postgres: listener: heartbeat: %w", err)
		}
		s.leaseUntil.Store(sent + int64(s.lease))
		next = time.Now().Add(s.opts.Heartbeat)
	}
}

// check runs sql on the listener connection within QueryTimeout.
func (s *Store) check(ctx context.Context, conn *pgconn.PgConn, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	err := conn.Exec(ctx, sql).Close()
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// onNotification drops the notified user (or everyone) from the cache.
func (s *Store) onNotification(_ *pgconn.PgConn, n *pgconn.Notification) {
	if n.Channel != channel {
		return
	}
	id, err := strconv.ParseInt(n.Payload, 10, 64)
	if err != nil || id <= 0 {
		s.cache.Invalidate() // "*", or anything unexpected: everyone
		return
	}
	s.cache.Invalidate(id)
}
