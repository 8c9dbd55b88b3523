package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/fabcommons/fabcommons/storage"
)

// Group commit: single-statement writes from many goroutines are queued to one writer
// goroutine, which runs as many as are waiting in one transaction and commits once. With
// synchronous=FULL every commit waits for the disk, so under load (hundreds of agents
// reporting) a commit per write made the fsync the hub's ceiling; a batch pays one fsync
// for all of its writes. Each caller is answered only after the commit: a write that
// returned is durable, exactly as before. A failed statement is undone by SQLite on its
// own and does not affect the others in the batch; a failed commit fails them all.

// maxBatch bounds one transaction, so a burst cannot hold the write lock for long. At
// 128, under load-agents with 1,000 agents every batch was full and the commit (the
// log's pages written and synced) cost as much as the statements; a batch of up to
// 1,024 ops pays it once for several hundred (measured: 120 to 360 ops a batch, 20 to
// 60 ms a commit on the 2-core build machine).
const maxBatch = 1024

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
	steps []writeStep // run in order; the op stops at the first that fails
	// atomic: the steps are all written or none is (a savepoint undoes the earlier
	// ones when one fails); otherwise those before a failing step stay written.
	atomic bool
	done   chan writeResult
}

// writeStep is one statement of a write.
type writeStep struct {
	query string
	args  []any
	// one: the statement must change a row; when it changes none the op stops there
	// with storage.ErrNotFound (an atomic op then writes nothing), so that the steps
	// after a compare-and-set run only when it matched.
	one bool
}

type writeResult struct {
	res sql.Result // of the last step run
	n   int        // steps written
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
	r := db.write1(ctx, &writeOp{ctx: ctx, steps: []writeStep{{query: query, args: args}}})
	return r.res, r.err
}

// execSteps runs several statements, in order, as one op of the next group commit:
// atomic, all or none; otherwise up to the first that fails, whose error it returns
// with the number of steps written before it.
func (db *DB) execSteps(ctx context.Context, atomic bool, steps []writeStep) (int, error) {
	r := db.write1(ctx, &writeOp{ctx: ctx, steps: steps, atomic: atomic})
	return r.n, r.err
}

// write1 queues op for the writer and waits for its result.
func (db *DB) write1(ctx context.Context, op *writeOp) writeResult {
	op.done = make(chan writeResult, 1)
	select {
	case db.ops <- op:
	case <-ctx.Done():
		return writeResult{err: ctx.Err()}
	case <-db.writerDone:
		return writeResult{err: errClosed}
	}
	// Once queued, wait for the answer even if ctx ends: the write may be running.
	select {
	case r := <-op.done:
		return r
	case <-db.writerDone:
		select {
		case r := <-op.done:
			return r
		default:
			return writeResult{err: errClosed}
		}
	}
}

// Savepoint statements around an atomic op.
const (
	spBegin    = `SAVEPOINT op`
	spRelease  = `RELEASE op`
	spRollback = `ROLLBACK TO op`
)

func (db *DB) runBatch(batch []*writeOp) {
	ctx := context.Background()
	results := make([]writeResult, len(batch))
	reply := func() {
		for i, op := range batch {
			op.done <- results[i]
		}
	}
	// Prepare first: the transaction holds the only write connection.
	stmts := make([][]*sql.Stmt, len(batch))
	savepoints := map[string]*sql.Stmt{}
	for i, op := range batch {
		stmts[i] = make([]*sql.Stmt, len(op.steps))
		for k, step := range op.steps {
			if stmts[i][k], results[i].err = db.writeStmts.get(ctx, db.write, step.query); results[i].err != nil {
				break
			}
		}
		for _, q := range []string{spBegin, spRelease, spRollback} {
			if op.atomic && results[i].err == nil && savepoints[q] == nil {
				savepoints[q], results[i].err = db.writeStmts.get(ctx, db.write, q)
			}
		}
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		for i := range results {
			results[i] = writeResult{err: fmt.Errorf("begin: %w", mapErr(err))}
		}
		reply()
		return
	}
	// fail ends the batch with nothing written: every op is answered with err.
	fail := func(err error) {
		tx.Rollback()
		for i := range results {
			results[i] = writeResult{err: err}
		}
		reply()
	}
	run := func(q string) error {
		_, err := tx.StmtContext(ctx, savepoints[q]).ExecContext(ctx)
		return err
	}
	for i, op := range batch {
		if results[i].err != nil {
			continue
		}
		if err := op.ctx.Err(); err != nil {
			results[i].err = err // the caller gave up before its turn: do not write
			continue
		}
		if op.atomic {
			if err := run(spBegin); err != nil {
				if endsTx(err) {
					fail(fmt.Errorf("savepoint: %w", mapErr(err)))
					return
				}
				results[i].err = fmt.Errorf("savepoint: %w", mapErr(err))
				continue
			}
		}
		r := &results[i]
		for k, step := range op.steps {
			var res sql.Result
			res, r.err = tx.StmtContext(ctx, stmts[i][k]).ExecContext(ctx, step.args...)
			if r.err != nil && endsTx(r.err) {
				fail(mapErr(r.err))
				return
			}
			if r.err != nil {
				r.err = mapErr(r.err)
				break
			}
			r.res = settled(res)
			if n, _ := r.res.RowsAffected(); step.one && n == 0 {
				r.err = storage.ErrNotFound
				break
			}
			r.n++
		}
		if op.atomic {
			if r.err != nil {
				r.n = 0
				if err := run(spRollback); err != nil {
					// The op's writes could not be undone alone: undo the batch.
					fail(fmt.Errorf("rollback to savepoint: %w", mapErr(err)))
					return
				}
			}
			if err := run(spRelease); err != nil {
				fail(fmt.Errorf("release savepoint: %w", mapErr(err)))
				return
			}
		}
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

// result is a statement's result as plain figures. database/sql's own result locks
// the connection to answer RowsAffected, and the only write connection is nearly
// always busy with the next batch: hundreds of callers asking at once made the writer
// wait on that lock between statements.
type result struct {
	lastID, rows    int64
	lastErr, rowErr error
}

func settled(r sql.Result) result {
	var s result
	s.lastID, s.lastErr = r.LastInsertId()
	s.rows, s.rowErr = r.RowsAffected()
	return s
}

func (r result) LastInsertId() (int64, error) { return r.lastID, r.lastErr }
func (r result) RowsAffected() (int64, error) { return r.rows, r.rowErr }

// endsTx: an error of one of these kinds may have rolled back the whole transaction
// (https://www.sqlite.org/lang_transaction.html, "Response To Errors Within A
// Transaction"). The batch must not go on: each op after it would run, and commit, on
// its own, and the batch's commit then fail, so ops that were stored would be
// answered as failed. It is ended instead, nothing of it written, every op answered
// with the error.
func endsTx(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_CORRUPT:
		return true
	}
	return false
}
