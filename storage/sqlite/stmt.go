package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// stmts caches prepared statements per pool. database/sql prepares a statement for
// every call otherwise, and parsing SQL was a fifth of the hub's CPU under agent load
// (measured with scripts/load-agents.sh and pprof).
type stmts struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (s *stmts) get(ctx context.Context, pool *sql.DB, query string) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.m[query]; ok {
		return st, nil
	}
	st, err := pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if s.m == nil {
		s.m = map[string]*sql.Stmt{}
	}
	s.m[query] = st
	return st, nil
}

func (s *stmts) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.m {
		st.Close()
	}
}

// query runs a read through a cached statement.
func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := db.readStmts.get(ctx, db.read, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// errRow is a *sql.Row-like scanner that only reports an error.
type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

// queryRow runs a one-row read through a cached statement.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) scanner {
	st, err := db.readStmts.get(ctx, db.read, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}
