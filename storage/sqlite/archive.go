package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage/archive"
)

var _ archive.Store = (*DB)(nil)

// dumps are the queries Dump runs, in archive order, each with how to read its rows.
func (db *DB) dumps() []struct {
	query string
	scan  func(scanner) (any, error)
} {
	f := db.Fabrication()
	type dump = struct {
		query string
		scan  func(scanner) (any, error)
	}
	return []dump{
		{`SELECT ` + userColumns + ` FROM users ORDER BY id`, func(r scanner) (any, error) { return scanUser(r) }},
		{`SELECT ` + tokenColumns + ` FROM tokens ORDER BY id`, func(r scanner) (any, error) { return scanToken(r) }},
		{`SELECT ` + designColumns + ` FROM designs ORDER BY id`, func(r scanner) (any, error) { return scanDesign(r) }},
		{`SELECT ` + versionColumns + ` FROM versions ORDER BY design_id, number`, func(r scanner) (any, error) { return scanVersion(r) }},
		{`SELECT design_id, user_id, handle, reason, created_at FROM design_flags ORDER BY design_id, user_id`, func(r scanner) (any, error) { return scanFlag(r) }},
		{`SELECT data FROM labs ORDER BY id`, func(r scanner) (any, error) { return scanJSON[fabrication.Lab](r) }},
		{`SELECT lab_id, user_id, handle, role FROM lab_members ORDER BY lab_id, user_id`, func(r scanner) (any, error) {
			var m fabrication.Member
			return m, r.Scan(&m.LabID, &m.UserID, &m.Handle, &m.Role)
		}},
		{`SELECT lab_id, hash, revoked, data FROM join_tokens ORDER BY id`, func(r scanner) (any, error) { return f.scanJoinToken(r) }},
		{`SELECT ` + machineColumns + ` FROM machines ORDER BY id`, func(r scanner) (any, error) { return f.scanMachine(r) }},
		{`SELECT requester_id, data FROM orders ORDER BY id`, func(r scanner) (any, error) { return scanOrder(r) }},
		{`SELECT ` + jobColumns + `, events FROM jobs ORDER BY id`, func(r scanner) (any, error) { return f.scanJob(r, true) }},
		{`SELECT lab_id, requester_id, seconds, updated_at FROM usage ORDER BY lab_id, requester_id`, func(r scanner) (any, error) {
			var u fabrication.Usage
			var at int64
			err := r.Scan(&u.LabID, &u.RequesterID, &u.Seconds, &at)
			u.UpdatedAt = fromNano(at)
			return u, err
		}},
		{`SELECT closes, data FROM ledger ORDER BY seq`, func(r scanner) (any, error) { return scanLedger(r) }},
		{`SELECT ` + hookColumns + ` FROM webhooks ORDER BY id`, func(r scanner) (any, error) { return scanHook(r) }},
		{`SELECT ` + deliveryColumns + ` FROM webhook_deliveries ORDER BY id`, func(r scanner) (any, error) { return scanDelivery(r) }},
		{`SELECT ` + keyColumns + ` FROM federation_keys ORDER BY owner`, func(r scanner) (any, error) { return scanKey(r) }},
		{`SELECT ` + followColumns + ` FROM federation_follows ORDER BY id`, func(r scanner) (any, error) { return scanFollow(r) }},
		{`SELECT ` + followerColumns + ` FROM federation_followers ORDER BY local, actor`, func(r scanner) (any, error) { return scanFollower(r) }},
		{`SELECT host, created_at FROM federation_blocks ORDER BY host`, func(r scanner) (any, error) { return scanBlock(r) }},
		{`SELECT ` + makeColumns + ` FROM federation_makes ORDER BY id`, func(r scanner) (any, error) { return scanMake(r) }},
	}
}

// Dump reads every record inside one read transaction: SQLite's WAL gives it one
// snapshot of the file while the hub goes on writing.
func (db *DB) Dump(ctx context.Context, put func(any) error) error {
	conn, err := db.read.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A plain BEGIN (not the DSN's BEGIN IMMEDIATE, which wants the write lock): the
	// snapshot starts at the first read and holds until the end.
	if _, err := conn.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		return fmt.Errorf("begin the snapshot: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
	for _, d := range db.dumps() {
		if err := dumpRows(ctx, conn, d.query, d.scan, put); err != nil {
			return err
		}
	}
	return nil
}

func dumpRows(ctx context.Context, conn *sql.Conn, query string, scan func(scanner) (any, error), put func(any) error) error {
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return fmt.Errorf("%s: %w", query, err)
		}
		if err := put(v); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Load writes the archive's records in one transaction: a failed import leaves the
// store as it was.
func (db *DB) Load(ctx context.Context, next func() (any, error)) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM designs)`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return archive.ErrNotEmpty
	}
	for {
		v, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := load(ctx, tx, v); err != nil {
			return fmt.Errorf("load %T: %w", v, mapErr(err))
		}
	}
	return mapErr(tx.Commit())
}

func load(ctx context.Context, tx *sql.Tx, v any) error {
	exec := func(query string, args ...any) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	}
	switch v := v.(type) {
	case account.User:
		return exec(`INSERT INTO users(id, handle, email, password_hash, admin, created_at, disabled) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			v.ID, v.Handle, v.Email, v.PasswordHash, v.Admin, unixNano(v.CreatedAt), v.Disabled)
	case account.Token:
		return exec(`INSERT INTO tokens(id, user_id, name, prefix, hash, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			v.ID, v.UserID, v.Name, v.Prefix, v.Hash, unixNano(v.CreatedAt), nullNano(v.LastUsedAt))
	case catalog.Design:
		return insertDesign(ctx, tx, v)
	case catalog.Version:
		return insertVersion(ctx, tx, v)
	case catalog.Flag:
		return exec(`INSERT INTO design_flags(design_id, user_id, handle, reason, created_at) VALUES (?, ?, ?, ?, ?)`,
			v.DesignID, v.UserID, v.Handle, v.Reason, unixNano(v.CreatedAt))
	case fabrication.Lab:
		return exec(`INSERT INTO labs(id, slug, data) VALUES (?, ?, ?)`, v.ID, v.Slug, mustJSON(v))
	case fabrication.Member:
		return exec(`INSERT INTO lab_members(lab_id, user_id, handle, role) VALUES (?, ?, ?, ?)`, v.LabID, v.UserID, v.Handle, v.Role)
	case fabrication.JoinToken:
		return exec(`INSERT INTO join_tokens(id, lab_id, hash, revoked, data) VALUES (?, ?, ?, ?, ?)`, v.ID, v.LabID, v.Hash, v.Revoked, mustJSON(v))
	case fabrication.Machine:
		return exec(`INSERT INTO machines(id, lab_id, token_hash, state, last_seen, rev, data) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			v.ID, v.LabID, v.TokenHash, v.State, nullNano(v.LastSeen), v.Rev, mustJSON(v))
	case fabrication.Order:
		return exec(`INSERT INTO orders(id, lab_id, requester_id, data) VALUES (?, ?, ?, ?)`, v.ID, v.LabID, v.RequesterID, mustJSON(v))
	case fabrication.Job:
		data, events := jobJSON(v)
		return exec(`INSERT INTO jobs(id, order_id, lab_id, design_id, requester_id, state, priority, enqueued_at, updated_at,
			machine_id, holding, lease_hash, lease_expires, rev, data, events) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			v.ID, v.OrderID, v.LabID, v.DesignID, v.RequesterID, v.State, v.Priority, unixNano(v.EnqueuedAt), unixNano(v.UpdatedAt),
			v.MachineID, v.Holding, v.LeaseHash, nullNano(v.LeaseExpires), v.Rev, data, events)
	case fabrication.Usage:
		return exec(`INSERT INTO usage(lab_id, requester_id, seconds, updated_at) VALUES (?, ?, ?, ?)`,
			v.LabID, v.RequesterID, v.Seconds, unixNano(v.UpdatedAt))
	case fabrication.LedgerEntry:
		return exec(`INSERT INTO ledger(seq, closes, kind, from_account, to_account, data) VALUES (?, ?, ?, ?, ?, ?)`,
			v.Seq, v.Closes, v.Kind, v.From, v.To, mustJSON(v))
	case webhook.Hook:
		return exec(insertHook, hookArgs(v)...)
	case federation.Key:
		return exec(`INSERT INTO federation_keys(`+keyColumns+`) VALUES (?, ?, ?, ?)`, v.Owner, v.PublicPEM, v.PrivatePEM, unixNano(v.CreatedAt))
	case federation.Follow:
		return exec(`INSERT INTO federation_follows(`+followColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			v.ID, v.Target, v.Actor, v.Inbox, v.Host, v.State, unixNano(v.CreatedAt), unixNano(v.UpdatedAt))
	case federation.Follower:
		return exec(`INSERT INTO federation_followers(`+followerColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			v.Local, v.Actor, v.Inbox, v.Host, v.ActivityID, unixNano(v.CreatedAt))
	case federation.Block:
		return exec(`INSERT INTO federation_blocks(host, created_at) VALUES (?, ?)`, v.Host, unixNano(v.CreatedAt))
	case federation.RemoteMake:
		return exec(`INSERT INTO federation_makes(`+makeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			v.ID, v.DesignID, v.Version, v.Host, v.Lab, v.LabName, v.File, unixNano(v.EndedAt), unixNano(v.CreatedAt))
	case webhook.Delivery:
		return exec(`INSERT INTO webhook_deliveries(`+deliveryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			v.ID, v.HookID, v.Event, string(v.Payload), v.State, v.Attempts, unixNano(v.NextAttemptAt), v.LastStatus, v.LastError,
			unixNano(v.CreatedAt), unixNano(v.UpdatedAt))
	}
	return fmt.Errorf("no table for a %T", v)
}

// insertDesign writes a design's row, its search entry, its parents and its tags.
func insertDesign(ctx context.Context, tx *sql.Tx, d catalog.Design) error {
	var o catalog.Origin
	if d.Origin != nil {
		o = *d.Origin
	}
	res, err := tx.ExecContext(ctx, `
		INSERT INTO designs(`+designColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.Slug, d.OwnerID, d.Owner, d.Title, d.Summary, mustJSON(d.Tags), d.License, d.Hidden, d.Featured,
		mustJSON(d.Parents), d.LatestVersion, mustJSON(d.Counters), unixNano(d.CreatedAt), unixNano(d.UpdatedAt), d.Licensor,
		o.Hub, o.Object, o.URL)
	if err != nil {
		return fmt.Errorf("insert design %s: %w", d.Slug, mapErr(err))
	}
	rowid, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO designs_fts(rowid, title, summary, tags) VALUES (?, ?, ?, ?)`,
		rowid, d.Title, d.Summary, strings.Join(d.Tags, " ")); err != nil {
		return fmt.Errorf("index design %s: %w", d.Slug, err)
	}
	for _, p := range d.Parents {
		if p.DesignID == "" {
			continue // a parent on another hub this hub has no copy of
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO design_parents(child_id, parent_id) VALUES (?, ?)`, d.ID, p.DesignID); err != nil {
			return err
		}
	}
	for _, t := range d.Tags {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO design_tags(design_id, tag) VALUES (?, ?)`, d.ID, t); err != nil {
			return err
		}
	}
	return nil
}

func scanJSON[T any](r scanner) (T, error) {
	var v T
	var data string
	if err := r.Scan(&data); err != nil {
		return v, err
	}
	return v, json.Unmarshal([]byte(data), &v)
}
