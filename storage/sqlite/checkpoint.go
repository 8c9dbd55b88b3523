package sqlite

import (
	"context"
	"sync"
	"time"
)

// The checkpointer copies the write-ahead log back into the database file, on its own
// connection and goroutine, every checkpointEvery (a round with nothing to copy costs
// a few reads of the log's index; writes outside the group commit count too). SQLite
// would otherwise do it inside a commit now and then (every 1000 pages), on the one
// writer that every claim and report waits for: under load-agents that was a sixth of
// the writer's time, with two fsyncs of the database file. A PASSIVE checkpoint never
// blocks the writer or readers; what it cannot copy yet (a reader still needs it) is
// copied on a later round. Crash safety is the log's, whenever it is copied.

const checkpointEvery = 250 * time.Millisecond

type checkpointer struct {
	ckptQuit chan struct{}
	ckptDone chan struct{}
	ckptOnce sync.Once
}

func (db *DB) startCheckpointer() {
	db.ckptQuit, db.ckptDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(db.ckptDone)
		tick := time.NewTicker(checkpointEvery)
		defer tick.Stop()
		for {
			select {
			case <-db.ckptQuit:
				return
			case <-tick.C:
				db.Checkpoint(context.Background())
			}
		}
	}()
}

func (db *DB) stopCheckpointer() {
	db.ckptOnce.Do(func() { close(db.ckptQuit) })
	<-db.ckptDone
}

// Checkpoint copies what it can of the write-ahead log into the database file now.
func (db *DB) Checkpoint(ctx context.Context) error {
	_, err := db.ckpt.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	return err
}
