package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fabcommons/fabcommons/storage"
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
// a caller that gave up before its turn is not written; an op of several steps stops
// at the first that fails, and an atomic one then leaves none of its steps written.
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
		batch = append(batch, &writeOp{ctx: ctx, steps: []writeStep{insertKV(key, i)}, done: make(chan writeResult, 1)})
	}
	steps := func(atomic bool, keys ...string) *writeOp {
		op := &writeOp{ctx: context.Background(), atomic: atomic, done: make(chan writeResult, 1)}
		for i, k := range keys {
			op.steps = append(op.steps, insertKV(k, i))
		}
		return op
	}
	// After the ten: an atomic op that fails at its third step, one that is not atomic
	// failing at its third of four, and an atomic op that succeeds.
	batch = append(batch, steps(true, "a1", "a2", "k1"), steps(false, "b1", "b2", "k2", "b3"), steps(true, "c1", "c2"))
	wantN := map[int]int{10: 0, 11: 2, 12: 2}
	before := db.commits.Load()
	db.runBatch(batch)
	if got := db.commits.Load() - before; got != 1 {
		t.Errorf("one batch took %d commits, want 1", got)
	}
	for i, op := range batch {
		r := <-op.done
		if want, ok := wantN[i]; ok && r.n != want {
			t.Errorf("op %d: %d steps written, want %d", i, r.n, want)
		}
		switch {
		case i == 10 || i == 11:
			if r.err == nil || !strings.Contains(r.err.Error(), "UNIQUE") {
				t.Errorf("op %d: got %v, want the UNIQUE constraint error of its third step", i, r.err)
			}
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
	if n := countKV(t, db); n != 12 {
		t.Fatalf("after reopening: %d rows, want the 8 single writes that succeeded, b1, b2, c1 and c2", n)
	}
	for _, k := range []string{"a1", "a2", "b3"} {
		var n int
		if err := db.read.QueryRowContext(context.Background(), `SELECT count(*) FROM kv WHERE k = ?`, k).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d rows (%v), want none", k, n, err)
		}
	}
}

func insertKV(k string, v int) writeStep {
	return writeStep{query: `INSERT INTO kv (k, v) VALUES (?, ?)`, args: []any{k, v}}
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

// TestGroupCommitStepMustChangeARow: a step marked one that changes no row stops its
// op with storage.ErrNotFound, and an atomic op then writes none of its steps.
func TestGroupCommitStepMustChangeARow(t *testing.T) {
	t.Parallel()
	db, _ := openKV(t)
	defer db.Close()
	ctx := context.Background()
	if _, err := db.exec(ctx, `INSERT INTO kv (k, v) VALUES ('a', 1)`); err != nil {
		t.Fatal(err)
	}
	casStep := func(k string, from int) writeStep {
		return writeStep{query: `UPDATE kv SET v = v + 1 WHERE k = ? AND v = ?`, args: []any{k, from}, one: true}
	}
	// A compare-and-set that does not match: the insert after it is not made.
	if n, err := db.execSteps(ctx, true, []writeStep{insertKV("b", 0), casStep("a", 7), insertKV("c", 0)}); n != 0 || !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a missed compare-and-set: got %d steps, %v; want 0, ErrNotFound", n, err)
	}
	if got := countKV(t, db); got != 1 {
		t.Fatalf("after a missed compare-and-set: %d rows, want 1", got)
	}
	// One that matches: all three are.
	if n, err := db.execSteps(ctx, true, []writeStep{insertKV("b", 0), casStep("a", 1), insertKV("c", 0)}); n != 3 || err != nil {
		t.Fatalf("a matched compare-and-set: got %d steps, %v; want 3, nil", n, err)
	}
	if got := countKV(t, db); got != 3 {
		t.Fatalf("after a matched compare-and-set: %d rows, want 3", got)
	}
}
