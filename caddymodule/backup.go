package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"
)

// Backups of the users database: `caddy session-auth backup --db FILE OUT`
// copies the file of a stopped Caddy, `--config CONFIG OUT` asks the running
// Caddy's admin API (GET /session-auth/backup) for a consistent snapshot
// (one bbolt read transaction, Tx.WriteTo). Either way OUT is written to a
// temporary file beside it, checked (it opens as bbolt and passes bbolt's
// consistency check), and renamed into place, with mode 0600: a reader
// never sees half a backup, and a failed backup leaves an older one alone.
// With PostgreSQL users the command refuses and names pg_dump.

// pgDumpAdvice is the backup command's answer for PostgreSQL users.
const pgDumpAdvice = "users_db is a PostgreSQL database: back it up with PostgreSQL's own tools, e.g.\n" +
	"    pg_dump --format=custom --file users.dump \"$USERS_DB_URL\"\n" +
	"and restore with pg_restore --clean --dbname \"$USERS_DB_URL\" users.dump (sessions in Redis need no backup)"

func backupCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "backup (--db FILE | --config FILE) OUT",
		Short: "Writes a consistent copy of the users database",
		Long: `
Writes a copy of the users database (users_db) to OUT, atomically (a
temporary file beside OUT, checked, then renamed) and with mode 0600: it
holds every account's password hash, so keep it as private as the
original.

--db FILE copies the file of a stopped Caddy. --config FILE asks the Caddy
running with that config for a snapshot through its admin API, taken in
one read transaction: consistent, and the server keeps serving (writes
wait for nothing).

To restore: stop Caddy, copy the backup over the users_db file (keep its
mode 0600), start Caddy. Users log in with the passwords they had when the
backup was taken; sessions kept in the same file come back with it, those
in Redis are untouched.

With users in PostgreSQL, use pg_dump instead: the command says so and
fails.
`,
		Example: `  caddy session-auth backup --config /etc/caddy/Caddyfile /var/backups/users-$(date +%F).db
  caddy session-auth backup --db ./data/users.db ./users-backup.db`,
		Args: cobra.ExactArgs(1),
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		out := args[0]
		dbPath := flagString(cmd, "db")
		config, adapter := flagString(cmd, "config"), flagString(cmd, "adapter")
		address, usersDB := flagString(cmd, "address"), flagString(cmd, "users-db")
		var n int64
		var err error
		switch {
		case dbPath != "" && (config != "" || address != ""):
			return errors.New("--db opens the file directly, --config/--address go through a running Caddy: use one or the other")
		case dbPath != "":
			n, err = backupFile(dbPath, out)
		case config != "" || address != "":
			n, err = backupThroughAdmin(config, adapter, address, usersDB, out)
		default:
			return errors.New("which users database? --db FILE (Caddy stopped) or --config FILE (through the running Caddy's admin API)")
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d bytes)\n", out, n)
		return nil
	}
	return c
}

// backupFile copies the bbolt file at path (no Caddy may hold it) to out.
func backupFile(path, out string) (int64, error) {
	if isUsersURL(path) {
		return 0, errors.New(pgDumpAdvice)
	}
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("users db: %v", err)
	}
	if err := notSameFile(path, out); err != nil {
		return 0, err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: dbOpenTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return 0, fmt.Errorf("users db %s is in use by another process: if Caddy is running with it, back it up through Caddy: "+
			"replace --db with --config <its Caddyfile or JSON config>", path)
	}
	if err != nil {
		return 0, fmt.Errorf("users db %s: %v", path, err)
	}
	defer db.Close()
	var n int64
	err = writeAtomic(out, func(w io.Writer) error {
		return db.View(func(tx *bbolt.Tx) error {
			var err error
			n, err = tx.WriteTo(w)
			return err
		})
	}, -1)
	return n, err
}

// backupThroughAdmin streams the snapshot from the running Caddy.
func backupThroughAdmin(config, adapter, address, usersDB, out string) (int64, error) {
	if isUsersURL(usersDB) {
		return 0, errors.New(pgDumpAdvice)
	}
	if config != "" {
		cfg, _, _, err := caddycmd.LoadConfig(config, adapter)
		if err != nil {
			return 0, err
		}
		if dbs := configUsersDBs(cfg); usersDB == "" && len(dbs) > 0 && allPostgres(dbs) {
			return 0, errors.New(pgDumpAdvice)
		}
	}
	ac, err := newAdminClient(config, adapter, address, usersDB)
	if err != nil {
		return 0, err
	}
	uri := adminAPIBase + "backup"
	if usersDB != "" {
		uri += "?users_db=" + url.QueryEscape(usersDB)
	}
	resp, err := caddycmd.AdminAPIRequest(ac.addr, http.MethodGet, uri, nil, nil)
	if err != nil {
		return 0, ac.explain(err)
	}
	defer resp.Body.Close()
	var n int64
	err = writeAtomic(out, func(w io.Writer) error {
		var err error
		n, err = io.Copy(w, resp.Body)
		return err
	}, resp.ContentLength)
	return n, err
}

// writeAtomic writes out through a temporary file beside it: write, check
// the length (want >= 0) and that it is a sound bbolt file, sync, rename.
func writeAtomic(out string, write func(io.Writer) error, want int64) (err error) {
	dir := filepath.Dir(out)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backup: %v", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("backup: %v", err)
	}
	if err = write(tmp); err != nil {
		return fmt.Errorf("backup: writing %s: %v", out, err)
	}
	if want >= 0 {
		st, serr := tmp.Stat()
		if serr != nil {
			return fmt.Errorf("backup: %v", serr)
		}
		if st.Size() != want {
			return fmt.Errorf("backup: got %d of %d bytes from Caddy (cut short): nothing written to %s", st.Size(), want, out)
		}
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("backup: %v", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("backup: %v", err)
	}
	if err = checkBoltFile(tmp.Name()); err != nil {
		return fmt.Errorf("backup: the copy is not sound, nothing written to %s: %v", out, err)
	}
	if err = os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("backup: %v", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	return nil
}

// checkBoltFile opens path read-only and runs bbolt's consistency check.
func checkBoltFile(path string) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
}

// notSameFile refuses a backup over the database itself.
func notSameFile(db, out string) error {
	a, err1 := os.Stat(db)
	b, err2 := os.Stat(out)
	if err1 == nil && err2 == nil && os.SameFile(a, b) {
		return fmt.Errorf("backup: %s is the users database itself", out)
	}
	return nil
}

// configUsersDBs lists the users_db of every session_auth handler in a
// JSON config.
func configUsersDBs(cfg []byte) []string {
	var v any
	if json.Unmarshal(cfg, &v) != nil {
		return nil
	}
	var dbs []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "session_auth" {
				db, _ := x["users_db"].(string)
				dbs = append(dbs, db)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return dbs
}

func allPostgres(dbs []string) bool {
	for _, d := range dbs {
		if !isUsersURL(d) {
			return false
		}
	}
	return true
}

// serveBackup is GET /session-auth/backup[?users_db=…]: the open users
// database as a bbolt file, from one read transaction (a consistent
// snapshot while the server keeps writing), with its length.
func (a *adminAPI) serveBackup(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed: %v", r.Method)}
	}
	sdb, key, release, err := resolveUsersDB(r.URL.Query().Get("users_db"))
	if err != nil {
		return a.apiError("backup", err)
	}
	defer release()
	if sdb.db == nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New(pgDumpAdvice)}
	}
	start := time.Now()
	tx, err := sdb.db.Begin(false)
	if err != nil {
		return a.apiError("backup", err)
	}
	defer tx.Rollback()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(tx.Size(), 10))
	w.Header().Set("Content-Disposition", `attachment; filename="users.db"`)
	n, err := tx.WriteTo(w)
	if err != nil {
		// The client sees a short body (Content-Length) and keeps nothing.
		a.logger.Error("backup", zap.String("users_db", key), zap.Int64("bytes", n), zap.Error(err))
		return nil
	}
	a.logger.Info("backup", zap.String("users_db", key), zap.Int64("bytes", n),
		zap.Int64("duration_s", seconds(time.Since(start))))
	return nil
}
