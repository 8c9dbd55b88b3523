package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestGroupCommit: writes queued while the writer is busy go out together in one
// transaction; a failing statement fails alone; a caller that gave up is not written;
// every write that returned is there after a reopen.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.exec(ctx, `CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	before := db.commits.Load()

	// Hold the write connection so that the writes pile up behind it.
	block, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprint("k", i)
			if i%50 == 7 {
				key = "k0" // a duplicate: fails on its own
			}
			c := ctx
			if i == 3 {
				c = gaveUp
			}
			_, errs[i] = db.exec(c, `INSERT INTO kv (k, v) VALUES (?, ?)`, key, i)
		}()
	}
	for len(db.ops) < n-2 { // all queued (one is in the writer, one gave up before queueing maybe)
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		runtime.Gosched()
	}
	block.Rollback()
	wg.Wait()

	ok, dup := 0, 0
	for i, err := range errs {
		switch {
		case i == 3:
			if err == nil {
				t.Errorf("a canceled caller's write went through")
			}
		case i%50 == 7:
			if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
				t.Errorf("write %d (a duplicate): got %v, want a UNIQUE constraint error", i, err)
			}
			dup++
		case err != nil:
			t.Errorf("write %d: %v", i, err)
		default:
			ok++
		}
	}
	if got := db.commits.Load() - before; got > 4 {
		t.Errorf("%d writes took %d commits, want them grouped (at most 4)", ok+dup, got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM kv`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != ok {
		t.Fatalf("after reopening: %d rows, want the %d writes that succeeded", rows, ok)
	}
	if _, err := db.exec(ctx, `SELECT 1`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := db.exec(ctx, `INSERT INTO kv (k, v) VALUES ('late', 1)`); err != errClosed {
		t.Fatalf("a write after Close: got %v, want errClosed", err)
	}
}
