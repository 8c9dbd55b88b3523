package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
)

// Federation implements federation.Store.
type Federation struct{ db *DB }

var _ federation.Store = Federation{}

// Federation returns the federation store of db.
func (db *DB) Federation() Federation { return Federation{db} }

func (f Federation) Key(ctx context.Context, owner string) (federation.Key, error) {
	k, err := scanKey(f.db.read.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM federation_keys WHERE owner = ?`, owner))
	if err != nil {
		return federation.Key{}, fmt.Errorf("the key of %s: %w", owner, err)
	}
	return k, nil
}

const keyColumns = `owner, public_pem, private_pem, created_at`

func scanKey(row scanner) (federation.Key, error) {
	var k federation.Key
	var at int64
	if err := row.Scan(&k.Owner, &k.PublicPEM, &k.PrivatePEM, &at); err != nil {
		return federation.Key{}, mapErr(err)
	}
	k.CreatedAt = fromNano(at)
	return k, nil
}

func (f Federation) AddKey(ctx context.Context, k federation.Key) error {
	if _, err := f.db.write.ExecContext(ctx, `INSERT INTO federation_keys(`+keyColumns+`) VALUES (?, ?, ?, ?)`,
		k.Owner, k.PublicPEM, k.PrivatePEM, unixNano(k.CreatedAt)); err != nil {
		return fmt.Errorf("add the key of %s: %w", k.Owner, mapErr(err))
	}
	return nil
}

const followColumns = `id, target, actor, inbox, host, state, created_at, updated_at`

func scanFollow(row scanner) (federation.Follow, error) {
	var x federation.Follow
	var created, updated int64
	if err := row.Scan(&x.ID, &x.Target, &x.Actor, &x.Inbox, &x.Host, &x.State, &created, &updated); err != nil {
		return federation.Follow{}, mapErr(err)
	}
	x.CreatedAt, x.UpdatedAt = fromNano(created), fromNano(updated)
	return x, nil
}

func (f Federation) AddFollow(ctx context.Context, x federation.Follow) error {
	if _, err := f.db.write.ExecContext(ctx, `INSERT INTO federation_follows(`+followColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		x.ID, x.Target, x.Actor, x.Inbox, x.Host, x.State, unixNano(x.CreatedAt), unixNano(x.UpdatedAt)); err != nil {
		return fmt.Errorf("follow %s: %w", x.Actor, mapErr(err))
	}
	return nil
}

func (f Federation) Follow(ctx context.Context, id string) (federation.Follow, error) {
	x, err := scanFollow(f.db.read.QueryRowContext(ctx, `SELECT `+followColumns+` FROM federation_follows WHERE id = ?`, id))
	if err != nil {
		return federation.Follow{}, fmt.Errorf("follow %s: %w", id, err)
	}
	return x, nil
}

func (f Federation) Follows(ctx context.Context) ([]federation.Follow, error) {
	return queryAll(ctx, f.db, `SELECT `+followColumns+` FROM federation_follows ORDER BY created_at, id`, scanFollow)
}

func (f Federation) SetFollowState(ctx context.Context, id, state string, at time.Time) error {
	return f.exactlyOne(ctx, "set the state of follow "+id,
		`UPDATE federation_follows SET state = ?, updated_at = ? WHERE id = ?`, state, unixNano(at), id)
}

func (f Federation) DeleteFollow(ctx context.Context, id string) error {
	return f.exactlyOne(ctx, "delete follow "+id, `DELETE FROM federation_follows WHERE id = ?`, id)
}

// exactlyOne runs a statement that must change one row; none is storage.ErrNotFound.
func (f Federation) exactlyOne(ctx context.Context, what, query string, args ...any) error {
	res, err := f.db.write.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, storage.ErrNotFound)
	}
	return nil
}

const followerColumns = `local, actor, inbox, host, activity_id, created_at`

func scanFollower(row scanner) (federation.Follower, error) {
	var x federation.Follower
	var at int64
	if err := row.Scan(&x.Local, &x.Actor, &x.Inbox, &x.Host, &x.ActivityID, &at); err != nil {
		return federation.Follower{}, mapErr(err)
	}
	x.CreatedAt = fromNano(at)
	return x, nil
}

func (f Federation) AddFollower(ctx context.Context, x federation.Follower) error {
	if _, err := f.db.write.ExecContext(ctx, `INSERT INTO federation_followers(`+followerColumns+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(local, actor) DO UPDATE SET inbox = excluded.inbox, host = excluded.host, activity_id = excluded.activity_id`,
		x.Local, x.Actor, x.Inbox, x.Host, x.ActivityID, unixNano(x.CreatedAt)); err != nil {
		return fmt.Errorf("add follower %s of %s: %w", x.Actor, x.Local, mapErr(err))
	}
	return nil
}

func (f Federation) RemoveFollower(ctx context.Context, local, actor string) error {
	if _, err := f.db.write.ExecContext(ctx, `DELETE FROM federation_followers WHERE actor = ? AND (local = ? OR ? = '')`, actor, local, local); err != nil {
		return fmt.Errorf("remove follower %s of %s: %w", actor, local, mapErr(err))
	}
	return nil
}

func (f Federation) Followers(ctx context.Context, local string) ([]federation.Follower, error) {
	return queryAll(ctx, f.db, `SELECT `+followerColumns+` FROM federation_followers WHERE local = ? ORDER BY created_at, actor`, scanFollower, local)
}

func (f Federation) AddBlock(ctx context.Context, b federation.Block) error {
	if _, err := f.db.write.ExecContext(ctx, `INSERT INTO federation_blocks(host, created_at) VALUES (?, ?) ON CONFLICT(host) DO NOTHING`,
		b.Host, unixNano(b.CreatedAt)); err != nil {
		return fmt.Errorf("block %s: %w", b.Host, mapErr(err))
	}
	return nil
}

func scanBlock(row scanner) (federation.Block, error) {
	var b federation.Block
	var at int64
	if err := row.Scan(&b.Host, &at); err != nil {
		return federation.Block{}, mapErr(err)
	}
	b.CreatedAt = fromNano(at)
	return b, nil
}

func (f Federation) Blocks(ctx context.Context) ([]federation.Block, error) {
	return queryAll(ctx, f.db, `SELECT host, created_at FROM federation_blocks ORDER BY host`, scanBlock)
}

func (f Federation) RemoveBlock(ctx context.Context, host string) error {
	res, err := f.db.write.ExecContext(ctx, `DELETE FROM federation_blocks WHERE host = ?`, host)
	if err != nil {
		return fmt.Errorf("unblock %s: %w", host, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("unblock %s: %w", host, storage.ErrNotFound)
	}
	return nil
}

func (f Federation) DropHost(ctx context.Context, host string) error {
	// A host with no port covers every port of it ("name:%"); one with a port, itself.
	like := "\x00" // matches nothing
	if !strings.Contains(strings.TrimPrefix(host, "["), ":") || strings.HasSuffix(host, "]") {
		like = host + ":%"
	}
	for _, table := range []string{"federation_follows", "federation_followers", "federation_makes"} {
		if _, err := f.db.write.ExecContext(ctx, `DELETE FROM `+table+` WHERE host = ? OR host LIKE ?`, host, like); err != nil {
			return fmt.Errorf("drop %s from %s: %w", host, table, mapErr(err))
		}
	}
	return nil
}

const fedDeliveryColumns = `id, sender, inbox, hub, host, body, attempts, due, created_at`

func (f Federation) AddDelivery(ctx context.Context, d federation.Delivery) error {
	if _, err := f.db.write.ExecContext(ctx, `INSERT INTO federation_deliveries(`+fedDeliveryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.From, d.Inbox, d.Hub, d.Host, d.Body, d.Attempts, unixNano(d.Due), unixNano(d.CreatedAt)); err != nil {
		return fmt.Errorf("queue a delivery to %s: %w", d.Inbox, mapErr(err))
	}
	return nil
}

func scanFedDelivery(row scanner) (federation.Delivery, error) {
	var d federation.Delivery
	var due, created int64
	if err := row.Scan(&d.ID, &d.From, &d.Inbox, &d.Hub, &d.Host, &d.Body, &d.Attempts, &due, &created); err != nil {
		return federation.Delivery{}, mapErr(err)
	}
	d.Due, d.CreatedAt = fromNano(due), fromNano(created)
	return d, nil
}

func (f Federation) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]federation.Delivery, error) {
	return queryAll(ctx, f.db, `SELECT `+fedDeliveryColumns+` FROM federation_deliveries d WHERE due <= ?
		AND id = (SELECT min(e.id) FROM federation_deliveries e WHERE e.inbox = d.inbox AND e.hub = d.hub) ORDER BY id LIMIT ?`,
		scanFedDelivery, unixNano(now), limit)
}

func (f Federation) CountDeliveries(ctx context.Context, host string) (int, error) {
	q, args := `SELECT count(*) FROM federation_deliveries`, []any{}
	if host != "" {
		q, args = q+` WHERE host = ?`, append(args, host)
	}
	var n int
	err := f.db.read.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, mapErr(err)
}

func (f Federation) RetryDelivery(ctx context.Context, id string, attempts int, due time.Time) error {
	res, err := f.db.write.ExecContext(ctx, `UPDATE federation_deliveries SET attempts = ?, due = ? WHERE id = ?`, attempts, unixNano(due), id)
	if err != nil {
		return fmt.Errorf("retry delivery %s: %w", id, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("retry delivery %s: %w", id, storage.ErrNotFound)
	}
	return nil
}

func (f Federation) DeleteDelivery(ctx context.Context, id string) error {
	if _, err := f.db.write.ExecContext(ctx, `DELETE FROM federation_deliveries WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete delivery %s: %w", id, mapErr(err))
	}
	return nil
}

const makeColumns = `id, design_id, version, host, lab, lab_name, file, ended_at, created_at`

func scanMake(row scanner) (federation.RemoteMake, error) {
	var m federation.RemoteMake
	var ended, created int64
	if err := row.Scan(&m.ID, &m.DesignID, &m.Version, &m.Host, &m.Lab, &m.LabName, &m.File, &ended, &created); err != nil {
		return federation.RemoteMake{}, mapErr(err)
	}
	m.EndedAt, m.CreatedAt = fromNano(ended), fromNano(created)
	return m, nil
}

func (f Federation) AddRemoteMake(ctx context.Context, m federation.RemoteMake) error {
	if _, err := f.db.write.ExecContext(ctx, `INSERT INTO federation_makes(`+makeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.DesignID, m.Version, m.Host, m.Lab, m.LabName, m.File, unixNano(m.EndedAt), unixNano(m.CreatedAt)); err != nil {
		return fmt.Errorf("the make %s: %w", m.ID, mapErr(err))
	}
	return nil
}

func (f Federation) RemoteMakes(ctx context.Context, designID string, limit int) ([]federation.RemoteMake, error) {
	return queryAll(ctx, f.db, `SELECT `+makeColumns+` FROM federation_makes WHERE design_id = ? ORDER BY ended_at DESC, id LIMIT ?`,
		scanMake, designID, limit)
}

func (f Federation) CountRemoteMakes(ctx context.Context, host string) (int, error) {
	var n int
	err := f.db.read.QueryRowContext(ctx, `SELECT count(*) FROM federation_makes WHERE host = ?`, host).Scan(&n)
	return n, mapErr(err)
}

func (f Federation) RemoteMakeCounts(ctx context.Context) (map[string]int, error) {
	type count struct {
		design string
		n      int
	}
	counts, err := queryAll(ctx, f.db, `SELECT design_id, count(*) FROM federation_makes GROUP BY design_id`, func(r scanner) (count, error) {
		var c count
		return c, r.Scan(&c.design, &c.n)
	})
	out := map[string]int{}
	for _, c := range counts {
		out[c.design] = c.n
	}
	return out, err
}

// queryAll runs a query and scans every row.
func queryAll[T any](ctx context.Context, db *DB, query string, scan func(scanner) (T, error), args ...any) ([]T, error) {
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, mapErr(rows.Err())
}
