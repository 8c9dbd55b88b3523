package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
)

// Backup copies the database at path into dest, a file that must not exist yet, as one
// consistent snapshot (SQLite's VACUUM INTO, which reads inside a single transaction).
// It reads through a read-only connection and runs no migrations, so it is safe while a
// hub, even one of another version, serves from path: in WAL mode the hub's writers carry
// on while it reads; only a checkpoint waits for it. It ends one of two ways:
//   - nil: dest holds the whole database as of one moment, fsynced, and passes
//     SQLite's quick_check;
//   - an error: nothing of the copy is left at dest (an existing dest is refused, never
//     overwritten).
func Backup(ctx context.Context, path, dest string) (err error) {
	// Opening a missing file read-only fails too, but with "unable to open database
	// file", which does not say which one.
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("back up sqlite %s: %w", path, err)
	}
	src, err := openReadOnly(path)
	if err != nil {
		return fmt.Errorf("back up sqlite %s: %w", path, err)
	}
	defer src.Close()
	// Made here, exclusively, so that what is removed on failure is only ever ours;
	// VACUUM INTO accepts an empty file.
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("back up sqlite %s: %w", path, err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(dest)
		}
	}()
	// Bound as a parameter, so no file name needs quoting.
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, dest); err != nil {
		return fmt.Errorf("back up sqlite %s to %s: %w", path, dest, err)
	}
	if err := syncFile(dest); err != nil {
		return fmt.Errorf("back up sqlite %s: sync %s: %w", path, dest, err)
	}
	// VACUUM reads every row but does not check indexes against tables; a backup that
	// is trusted later is worth a second read now.
	if err := quickCheck(ctx, dest); err != nil {
		return fmt.Errorf("back up sqlite %s: check the copy: %w", path, err)
	}
	return nil
}

// openReadOnly opens path for reading only. A read-only connection to a WAL database
// still maps its -shm file, so it sees what the live hub committed. When no hub has the
// file open, it leaves an empty -wal and the -shm beside it (a read-only connection may
// not remove them), which the next hub to open the file simply uses.
func openReadOnly(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("mode", "ro")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func quickCheck(ctx context.Context, path string) error {
	db, err := openReadOnly(path)
	if err != nil {
		return err
	}
	defer db.Close()
	var result string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&result); err != nil {
		return err
	}
	if result != "ok" {
		return fmt.Errorf("quick_check: %s", result)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
