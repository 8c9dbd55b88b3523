package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Group commit: single-statement writes from many goroutines are queued to one writer
// goroutine, which runs as many as are waiting in one transaction and commits once. With
// synchronous=FULL every commit waits for the disk, so under load (hundreds of agents
// reporting) a commit per write made the fsync the hub's ceiling; a batch pays one fsync
// for all of its writes. Each caller is answered only after the commit: a write that
// returned is durable, exactly as before. A failed statement is undone by SQLite on its
// own and does not affect the others in the batch; a failed commit fails them all.

// maxBatch bounds one transaction, so a burst cannot hold the write lock for long.
const maxBatch = 128

var errClosed = errors.New("sqlite: the database is closed")

type writer struct {
	ops        chan *writeOp
	quit       chan struct{}
	writerDone chan struct{}
	stopOnce   sync.Once
	commits    atomic.Int64 // transactions the writer committed, for tests and metrics
}

type writeOp struct {
	ctx   context.Context
	query string
	args  []any
	done  chan writeResult
}

type writeResult struct {
	res sql.Result
	err error
}

// startWriter starts the goroutine that runs queued writes.
func (db *DB) startWriter() {
	db.ops = make(chan *writeOp, 4*maxBatch)
	db.quit = make(chan struct{})
	db.writerDone = make(chan struct{})
	go func() {
		defer close(db.writerDone)
		for {
			select {
			case <-db.quit:
				return
			case op := <-db.ops:
				batch := []*writeOp{op}
			more:
				for len(batch) < maxBatch {
					select {
					case op := <-db.ops:
						batch = append(batch, op)
					default:
						break more
					}
				}
				db.runBatch(batch)
			}
		}
	}()
}

// stopWriter ends the writer; writes queued behind it get errClosed.
func (db *DB) stopWriter() {
	db.stopOnce.Do(func() { close(db.quit) })
	<-db.writerDone
	for {
		select {
		case op := <-db.ops:
			op.done <- writeResult{err: errClosed}
		default:
			return
		}
	}
}

// exec runs one write statement as part of the next group commit.
func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	op := &writeOp{ctx: ctx, query: query, args: args, done: make(chan writeResult, 1)}
	select {
	case db.ops <- op:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-db.writerDone:
		return nil, errClosed
	}
	// Once queued, wait for the answer even if ctx ends: the write may be running.
	select {
	case r := <-op.done:
		return r.res, r.err
	case <-db.writerDone:
		select {
		case r := <-op.done:
			return r.res, r.err
		default:
			return nil, errClosed
		}
	}
}

func (db *DB) runBatch(batch []*writeOp) {
	ctx := context.Background()
	results := make([]writeResult, len(batch))
	reply := func() {
		for i, op := range batch {
			op.done <- results[i]
		}
	}
	// Prepare first: the transaction holds the only write connection.
	stmts := make([]*sql.Stmt, len(batch))
	for i, op := range batch {
		stmts[i], results[i].err = db.writeStmts.get(ctx, db.write, op.query)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		for i := range results {
			results[i] = writeResult{err: fmt.Errorf("begin: %w", mapErr(err))}
		}
		reply()
		return
	}
	for i, op := range batch {
		if results[i].err != nil {
			continue
		}
		if err := op.ctx.Err(); err != nil {
			results[i].err = err // the caller gave up before its turn: do not write
			continue
		}
		results[i].res, results[i].err = tx.StmtContext(ctx, stmts[i]).ExecContext(ctx, op.args...)
		results[i].err = mapErr(results[i].err)
	}
	if err := tx.Commit(); err != nil {
		for i := range results {
			results[i] = writeResult{err: fmt.Errorf("commit: %w", mapErr(err))}
		}
	} else {
		db.commits.Add(1)
	}
	reply()
}
