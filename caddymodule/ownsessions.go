package caddymodule

import (
	"errors"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"
	"go.uber.org/zap"

	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/sessions"
	"github.com/caddy-session-auth/caddy-session-auth/caddymodule/users"
)

// Own sessions (issue 14): GET <api>/sessions/ lists the caller's live
// sessions, DELETE <api>/sessions/<id>/ ends one. The session stores keep
// an index of each user's sessions (sessions.UserIndex) with what is shown;
// "last seen" is written there at most once a minute per session and
// instance, off the request, so that the gate's hot path stays one
// session read and one user read.

// touchEvery is how often a session's last-seen time is written.
const touchEvery = time.Minute

// sessionAccess is a session store with its user index.
type sessionAccess struct {
	store scs.Store
	index sessions.UserIndex
}

// sessionJSON is one session as GET <api>/sessions/ and the CLI show it.
type sessionJSON struct {
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"last_seen"`
	ClientIP  string    `json:"client_ip"`
	UserAgent string    `json:"user_agent"`
	Current   bool      `json:"current"`
}

// seenSet remembers which sessions were touched lately, in two
// generations swapped every touchEvery: a session found in neither was
// not touched for at least touchEvery.
type seenSet struct {
	mu        sync.RWMutex
	cur, prev map[string]struct{}
	swapped   time.Time
	busy      atomic.Int32 // touches running
}

// due reports whether token's session should be touched now, and marks it.
// The common answer (no: touched lately) takes only the read lock.
func (t *seenSet) due(token string, now time.Time) bool {
	t.mu.RLock()
	_, inCur := t.cur[token]
	_, inPrev := t.prev[token]
	fresh := now.Sub(t.swapped) < touchEvery
	t.mu.RUnlock()
	if fresh && (inCur || inPrev) {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.swapped) >= touchEvery || t.cur == nil {
		t.prev, t.cur, t.swapped = t.cur, make(map[string]struct{}), now
	}
	if _, ok := t.cur[token]; ok {
		return false
	}
	if _, ok := t.prev[token]; ok {
		return false
	}
	t.cur[token] = struct{}{}
	return true
}

// maxTouches bounds the touches running at once (each one write).
const maxTouches = 4

// touchSession records, at most once per touchEvery, that the session was
// used; the write runs in the background.
func (s *SessionAuth) touchSession(p *principal) {
	if s.sessAccess.index == nil || !s.seen.due(p.token, time.Now()) {
		return
	}
	if s.seen.busy.Add(1) > maxTouches {
		s.seen.busy.Add(-1)
		return // a later request tries again (the mark is per minute)
	}
	uid, key := p.user.ID, storeKey(p.token)
	go func() {
		defer s.seen.busy.Add(-1)
		if err := s.sessAccess.index.TouchUserSession(uid, key, time.Now().UTC()); err != nil {
			s.logger.Warn("could not record a session's last use", zap.Error(err))
		}
	}()
}

// indexSession records a session just committed.
func (s *SessionAuth) indexSession(r *http.Request, u *users.User, token string, expiry time.Time) {
	if s.sessAccess.index == nil {
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	info := sessions.SessionInfo{Key: storeKey(token), Created: now, LastSeen: now, Expiry: expiry,
		IP: clientIP(r), UserAgent: userAgent(r)}
	s.seen.due(token, now)
	if err := s.sessAccess.index.AddUserSession(u.ID, info); err != nil {
		s.logger.Warn("could not add a session to the user's list", zap.Int64("user_id", u.ID), zap.Error(err))
	}
}

// forgetSessions drops the user's sessions from the index and the store,
// all but keep (a token, or ""), once an epoch change has ended them.
func (s *SessionAuth) forgetSessions(userID int64, keep string) {
	if err := endIndexed(s.sessAccess, userID, keep); err != nil {
		s.logger.Warn("could not clear the user's session list (the sessions have ended all the same)",
			zap.Int64("user_id", userID), zap.Error(err))
	}
}

// endIndexed deletes every indexed session of the user (but keep's) from
// the store and the index.
func endIndexed(a sessionAccess, userID int64, keep string) error {
	if a.index == nil {
		return nil
	}
	infos, err := a.index.UserSessions(userID)
	if err != nil {
		return err
	}
	keepKey := ""
	if keep != "" {
		keepKey = storeKey(keep)
	}
	var gone []string
	var firstErr error
	for _, info := range infos {
		if info.Key == keepKey {
			continue
		}
		if err := a.store.Delete(info.Key); err != nil && firstErr == nil {
			firstErr = err
		}
		gone = append(gone, info.Key)
	}
	if err := a.index.RemoveUserSessions(userID, gone...); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// liveSessions lists the user's sessions that still exist and belong to
// the user's current epoch; entries of ended ones are dropped.
func liveSessions(a sessionAccess, u *users.User, currentKey string) ([]sessionJSON, error) {
	if a.index == nil {
		return []sessionJSON{}, nil
	}
	infos, err := a.index.UserSessions(u.ID)
	if err != nil {
		return nil, err
	}
	out := []sessionJSON{}
	var dead []string
	for _, info := range infos {
		b, found, err := a.store.Find(info.Key)
		if err != nil && !errors.Is(err, sessions.ErrCorrupt) {
			return nil, err
		}
		alive := found && err == nil
		if alive {
			_, values, derr := (sessions.Codec{}).Decode(b)
			uid, _ := values[keyUserID].(int64)
			epoch, _ := values[keyEpoch].(int64)
			alive = derr == nil && uid == u.ID && epoch == u.SessionEpoch
		}
		if !alive {
			dead = append(dead, info.Key)
			continue
		}
		out = append(out, sessionJSON{ID: sessionIDFromKey(info.Key), Created: info.Created, LastSeen: info.LastSeen,
			ClientIP: info.IP, UserAgent: info.UserAgent, Current: info.Key == currentKey})
	}
	if len(dead) > 0 {
		_ = a.index.RemoveUserSessions(u.ID, dead...)
	}
	slices.SortFunc(out, func(x, y sessionJSON) int { return y.LastSeen.Compare(x.LastSeen) })
	return out, nil
}

// listSessions serves GET <api>/sessions/.
func (s *SessionAuth) listSessions(w http.ResponseWriter, r *http.Request, auth authResult) {
	list, err := liveSessions(s.sessAccess, auth.who.user, storeKey(auth.who.token))
	if err != nil {
		s.storeFailure(w, "listing sessions", err)
		return
	}
	writeValue(w, http.StatusOK, list)
}

// sessionItemPath returns the id of a DELETE <api>/sessions/<id>/ path.
func (s *SessionAuth) sessionItemPath(path string) (string, bool) {
	return s.apiItemID(path, "/sessions/")
}

// sessionItem is the endpoint of DELETE <api>/sessions/<id>/.
var sessionItem = endpoint{name: "Session", needsSession: true, allow: []string{"DELETE, OPTIONS"},
	methods: []string{http.MethodDelete}, serve: (*SessionAuth).endSession}

// endSession serves DELETE <api>/sessions/<id>/: 204, or 404 when the
// caller has no live session with that id.
func (s *SessionAuth) endSession(w http.ResponseWriter, r *http.Request, auth authResult) {
	id, _ := s.sessionItemPath(r.URL.Path)
	u := auth.who.user
	var key string
	if s.sessAccess.index != nil {
		infos, err := s.sessAccess.index.UserSessions(u.ID)
		if err != nil {
			s.storeFailure(w, "listing sessions", err)
			return
		}
		for _, info := range infos {
			if sessionIDFromKey(info.Key) == id {
				key = info.Key
				break
			}
		}
	}
	if key == "" {
		writeJSON(w, http.StatusNotFound, bodyKeyNotFound)
		return
	}
	if err := s.sessAccess.store.Delete(key); err != nil {
		s.storeFailure(w, "ending a session", err)
		return
	}
	if err := s.sessAccess.index.RemoveUserSessions(u.ID, key); err != nil {
		s.logger.Warn("could not remove an ended session from the list", zap.Error(err))
	}
	current := key == storeKey(auth.who.token)
	if current {
		s.expireSessionCookie(w, r)
	}
	s.audit(auditEntry{event: auditSessionEnded, user: u, r: r, sessionID: id,
		extra: []zap.Field{zap.Bool("current", current)}})
	w.Header()["Content-Length"] = valZero
	w.WriteHeader(http.StatusNoContent)
}

// The session stores of the running handlers, by users DB, for the admin
// API's list-sessions and end-sessions.
var (
	sessionRegistryMu sync.Mutex
	sessionRegistry   = map[string][]*SessionAuth{}
)

func registerSessions(s *SessionAuth) {
	sessionRegistryMu.Lock()
	defer sessionRegistryMu.Unlock()
	sessionRegistry[s.dbKey] = append(sessionRegistry[s.dbKey], s)
}

func unregisterSessions(s *SessionAuth) {
	sessionRegistryMu.Lock()
	defer sessionRegistryMu.Unlock()
	list := slices.DeleteFunc(sessionRegistry[s.dbKey], func(x *SessionAuth) bool { return x == s })
	if len(list) == 0 {
		delete(sessionRegistry, s.dbKey)
	} else {
		sessionRegistry[s.dbKey] = list
	}
}

// sessionStoresOf returns the distinct session stores of the handlers
// running over a users DB (several sites may keep sessions apart).
func sessionStoresOf(dbKey string) []sessionAccess {
	sessionRegistryMu.Lock()
	defer sessionRegistryMu.Unlock()
	var out []sessionAccess
	for _, s := range sessionRegistry[dbKey] {
		if s.sessAccess.index != nil && !slices.ContainsFunc(out, func(a sessionAccess) bool { return a.store == s.sessAccess.store }) {
			out = append(out, s.sessAccess)
		}
	}
	return out
}
