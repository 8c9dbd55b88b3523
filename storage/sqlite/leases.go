package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

// Leases implements storage.Leases.
type Leases struct{ db *DB }

var _ storage.Leases = Leases{}

// Leases returns the named-lease store of db.
func (db *DB) Leases() Leases { return Leases{db} }

func (l Leases) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	res, err := l.db.write.ExecContext(ctx, `
		INSERT INTO leases(name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= ?`,
		name, holder, unixNano(now.Add(ttl)), unixNano(now))
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, mapErr(err))
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (l Leases) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := l.db.write.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder)
	return err
}
