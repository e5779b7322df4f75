package bolt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// OpenDB opens (creating if needed) the bbolt file at path, creating its
// parent directory with mode 0700. bbolt takes an exclusive file lock; if it
// is not acquired within timeout (0 means wait forever) the error says the
// file is in use by another process, which in practice is a second Caddy.
func OpenDB(path string, timeout time.Duration) (*bbolt.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("users db %s: creating directory: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("users db %s is in use by another process (bbolt lock not acquired within %s): stop the other Caddy or use its admin API: %w",
			path, timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("users db %s: %w", path, err)
	}
	return db, nil
}
