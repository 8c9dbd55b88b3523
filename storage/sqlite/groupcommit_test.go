package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openKV(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "g.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.exec(context.Background(), `CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db, path
}

func countKV(t *testing.T, db *DB) int {
	t.Helper()
	var n int
	if err := db.read.QueryRowContext(context.Background(), `SELECT count(*) FROM kv`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGroupCommitBatch: one batch is one transaction; a failing statement fails alone;
// a caller that gave up before its turn is not written.
func TestGroupCommitBatch(t *testing.T) {
	t.Parallel()
	db, path := openKV(t)
	gaveUp, cancel := context.WithCancel(context.Background())
	cancel()
	var batch []*writeOp
	for i := range 10 {
		ctx, key := context.Background(), fmt.Sprint("k", i)
		switch i {
		case 4:
			key = "k0" // a duplicate
		case 7:
			ctx = gaveUp
		}
		batch = append(batch, &writeOp{ctx: ctx, query: `INSERT INTO kv (k, v) VALUES (?, ?)`, args: []any{key, i}, done: make(chan writeResult, 1)})
	}
	before := db.commits.Load()
	db.runBatch(batch)
	if got := db.commits.Load() - before; got != 1 {
		t.Errorf("one batch took %d commits, want 1", got)
	}
	for i, op := range batch {
		r := <-op.done
		switch {
		case i == 4:
			if r.err == nil || !strings.Contains(r.err.Error(), "UNIQUE") {
				t.Errorf("the duplicate: got %v, want a UNIQUE constraint error", r.err)
			}
		case i == 7:
			if r.err == nil {
				t.Error("a caller that gave up was written")
			}
		case r.err != nil:
			t.Errorf("write %d: %v", i, r.err)
		}
	}
	db.Close()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := countKV(t, db); n != 8 {
		t.Fatalf("after reopening: %d rows, want the 8 writes that succeeded", n)
	}
}

// TestGroupCommitConcurrent: many writers at once all land, and a write after Close
// fails instead of hanging.
func TestGroupCommitConcurrent(t *testing.T) {
	t.Parallel()
	db, _ := openKV(t)
	const n = 300
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = db.exec(context.Background(), `INSERT INTO kv (k, v) VALUES (?, ?)`, fmt.Sprint("k", i), i)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if got := countKV(t, db); got != n {
		t.Fatalf("got %d rows, want %d", got, n)
	}
	t.Logf("%d concurrent writes in %d commits", n, db.commits.Load())
	db.Close()
	if _, err := db.exec(context.Background(), `INSERT INTO kv (k, v) VALUES ('late', 1)`); err != errClosed {
		t.Fatalf("a write after Close: got %v, want errClosed", err)
	}
}
