package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

// Quotas implements storage.Quotas.
type Quotas struct{ db *DB }

var _ storage.Quotas = Quotas{}

// Quotas returns the quota counters of db.
func (db *DB) Quotas() Quotas { return Quotas{db} }

// Use is one statement: SQLite's single writer makes the check and the add one step.
func (q Quotas) Use(ctx context.Context, key string, amount, limit int64, now time.Time, window time.Duration) (bool, int64, error) {
	start := now.Truncate(window).UnixNano()
	var used int64
	if amount > limit { // a first row is inserted unchecked: never with more than the limit
		err := q.db.read.QueryRowContext(ctx, `SELECT used FROM quotas WHERE key = ? AND window_start = ?`, key, start).Scan(&used)
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
		}
		return false, used, err
	}
	err := q.db.write.QueryRowContext(ctx, `
		INSERT INTO quotas(key, window_start, used) VALUES (?, ?, ?)
		ON CONFLICT(key, window_start) DO UPDATE SET used = used + excluded.used
		WHERE quotas.used + excluded.used <= ?
		RETURNING used`, key, start, amount, limit).Scan(&used)
	if errors.Is(err, sql.ErrNoRows) { // the update's WHERE said no: over the limit
		err = q.db.write.QueryRowContext(ctx, `SELECT used FROM quotas WHERE key = ? AND window_start = ?`, key, start).Scan(&used)
		return false, used, err
	}
	if err != nil {
		return false, 0, fmt.Errorf("quota %s: %w", key, mapErr(err))
	}
	return true, used, nil
}
