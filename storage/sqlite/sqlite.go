// Package sqlite is the embedded document store: one SQLite file (modernc.org/sqlite,
// pure Go) in WAL mode, with versioned migrations applied when it opens.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
)

// DB is an open SQLite database. Writes go through one connection (SQLite allows one
// writer at a time; queueing them in Go is cheaper than busy-waiting in SQLite), reads
// through a pool. Several processes may share the file: busy_timeout covers them.
type DB struct {
	write      *sql.DB
	read       *sql.DB
	writeStmts stmts
	readStmts  stmts

	ckpt *sql.DB // the checkpointer's connection

	writer       // group commit (groupcommit.go)
	checkpointer // checkpoint.go
	jobs         decoder[fabrication.Job]
	machines     decoder[fabrication.Machine]
}

// writeCacheKiB is the write connection's page cache (SQLite's default is 2 MB). Every
// claim and report updates a job row and five of its indexes; with the default, a
// batch of them read most of their pages back from the file.
const writeCacheKiB = 32 << 10

// Open opens or creates the database at path and migrates it to the latest schema.
func Open(ctx context.Context, path string) (*DB, error) {
	dsn := func(mode string, pragmas ...string) string {
		q := url.Values{}
		for _, p := range pragmas {
			q.Add("_pragma", p)
		}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)") // a committed claim survives power loss
		q.Add("_pragma", "foreign_keys(ON)")
		q.Add("_txlock", "immediate")
		q.Add("mode", mode)
		return "file:" + path + "?" + q.Encode()
	}
	// The write connection never checkpoints: the checkpointer does, on its own
	// connection (checkpoint.go).
	write, err := sql.Open("sqlite", dsn("rwc", "wal_autocheckpoint(0)", fmt.Sprintf("cache_size(-%d)", writeCacheKiB)))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("migrate sqlite %s: %w", path, err)
	}
	read, err := sql.Open("sqlite", dsn("ro"))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	read.SetMaxOpenConns(max(4, runtime.NumCPU()))
	ckpt, err := sql.Open("sqlite", dsn("rw"))
	if err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	ckpt.SetMaxOpenConns(1)
	db := &DB{write: write, read: read, ckpt: ckpt, jobs: newJobDecoder(), machines: newMachineDecoder()}
	db.startWriter()
	db.startCheckpointer()
	return db, nil
}

// Close closes the pools.
func (db *DB) Close() error {
	db.stopWriter()
	db.stopCheckpointer()
	db.readStmts.close()
	db.writeStmts.close()
	return errors.Join(db.read.Close(), db.ckpt.Close(), db.write.Close())
}

// Ping checks that the database answers a query.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return db.read.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// mapErr turns SQLite's own errors into storage sentinels.
func mapErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %v", storage.ErrConflict, err)
		case sqlite3.SQLITE_FULL:
			return fmt.Errorf("%w: %v", storage.ErrFull, err)
		}
	}
	return err
}

// Times are stored as Unix nanoseconds: exact, ordered and cheap to compare.
func unixNano(t time.Time) int64 { return t.UnixNano() }

// inList is the parenthesised placeholder list for an IN over vals, and vals as
// arguments; for no values it is (NULL), which matches nothing.
func inList(vals []string) (string, []any) {
	if len(vals) == 0 {
		return "(NULL)", nil
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return "(?" + strings.Repeat(", ?", len(vals)-1) + ")", args
}

func fromNano(n int64) time.Time { return time.Unix(0, n).UTC() }

func fromNullNano(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromNano(n.Int64)
	return &t
}

// IntegrityCheck runs SQLite's integrity_check and returns an error unless it says ok.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	var result string
	if err := db.read.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&result); err != nil {
		return err
	}
	if result != "ok" {
		return fmt.Errorf("sqlite integrity check: %s", result)
	}
	return nil
}
