package sqlite

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCheckpointerCopiesTheLog: the write connection never checkpoints, so the rows
// reach the database file only through the checkpointer.
func TestCheckpointerCopiesTheLog(t *testing.T) {
	t.Parallel()
	db, path := openKV(t)
	defer db.Close()
	ctx := context.Background()
	if _, err := db.exec(ctx, `CREATE TABLE blobs (v TEXT)`); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 4000)
	for range 1500 { // 1,500 pages: SQLite's own checkpoint would have run at 1,000
		if _, err := db.exec(ctx, `INSERT INTO blobs (v) VALUES (?)`, big); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * checkpointEvery)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= 1500*4000 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the database file is %d bytes after %v, want the 6 MB written copied into it", fi.Size(), 20*checkpointEvery)
		}
		time.Sleep(checkpointEvery / 5)
	}
}
