package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/externaltest"
)

// TestGroupCommitDiskFills: when the disk fills in the middle of a group commit, every
// op is answered as it was stored. A statement that meets SQLITE_FULL while the page
// cache spills into the log rolls back the whole transaction; the ops after it then
// ran, and committed, each on its own, and the batch's commit failed, so 24 of 640
// ops were stored and all 640 answered as failed (seen before endsTx). Now the batch
// ends there: nothing stored, every op answered ErrFull (507), and the store takes
// writes again once there is room.
func TestGroupCommitDiskFills(t *testing.T) {
	dir := externaltest.SmallDisk(t, 48<<20)
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(dir, "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.exec(ctx, `CREATE TABLE blobs (id INTEGER PRIMARY KEY, v BLOB NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	// 640 ops of 64 KiB, with the disk full but for about 12 MB: the batch spills the
	// writer's 32 MB page cache into the log part-way through. Then 300 (19 MB) with the
	// disk full: they stay in the cache, and it is the commit that meets the full disk
	// (SQLite ends the transaction then: the next write begins as it should).
	for _, c := range []struct{ first, ops, free int }{{0, 640, 12 << 20}, {1000, 300, 0}} {
		filler := externaltest.FillDisk(t, dir, int64(c.free))
		batch := make([]*writeOp, c.ops)
		for i := range batch {
			batch[i] = &writeOp{ctx: ctx, done: make(chan writeResult, 1), atomic: i%2 == 0, // both kinds of op
				steps: []writeStep{{query: `INSERT INTO blobs(id, v) VALUES (?, randomblob(65536))`, args: []any{c.first + i}}}}
		}
		db.runBatch(batch)
		errs := make([]error, len(batch))
		failed := 0
		for i, op := range batch {
			if errs[i] = (<-op.done).err; errs[i] != nil {
				failed++
			}
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		stored := map[int]bool{}
		rows, err := db.read.QueryContext(ctx, `SELECT id FROM blobs`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			stored[id] = true
		}
		rows.Close()
		if failed == 0 {
			t.Fatalf("%d ops: the disk did not fill during the batch: the test proves nothing", c.ops)
		}
		var wrong []string
		for i, err := range errs {
			if (err == nil) != stored[c.first+i] {
				wrong = append(wrong, fmt.Sprintf("op %d: answered %v, stored %v", i, err, stored[c.first+i]))
			}
			if err != nil && !errors.Is(err, storage.ErrFull) {
				wrong = append(wrong, fmt.Sprintf("op %d: answered %v, want storage.ErrFull", i, err))
			}
		}
		if len(wrong) > 0 {
			t.Fatalf("%d ops: %d answers wrong (%d failed); first: %s", c.ops, len(wrong), failed, wrong[0])
		}
		if _, err := db.exec(ctx, `INSERT INTO blobs(id, v) VALUES (?, x'00')`, c.first+c.ops); err != nil {
			t.Fatalf("%d ops: a write once there is room again: %v", c.ops, err)
		}
	}
}
