package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order, each once, each in its own transaction. Never edit
// one that has shipped: append a new one.
var migrations = []string{
	// 1: accounts and named leases
	`CREATE TABLE users (
		id TEXT PRIMARY KEY,
		handle TEXT NOT NULL UNIQUE,
		email TEXT NOT NULL,
		password_hash TEXT NOT NULL,
		admin INTEGER NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE tokens (
		id TEXT PRIMARY KEY,
		user_id TEXT NOT NULL REFERENCES users(id),
		name TEXT NOT NULL,
		prefix TEXT NOT NULL,
		hash TEXT NOT NULL UNIQUE,
		created_at INTEGER NOT NULL,
		last_used_at INTEGER
	);
	CREATE INDEX tokens_user ON tokens(user_id);
	CREATE TABLE sessions (
		hash TEXT PRIMARY KEY,
		user_id TEXT NOT NULL REFERENCES users(id),
		csrf TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL
	);
	CREATE INDEX sessions_expiry ON sessions(expires_at);
	CREATE TABLE leases (
		name TEXT PRIMARY KEY,
		holder TEXT NOT NULL,
		expires_at INTEGER NOT NULL
	);`,
	// 2: the catalog
	`CREATE TABLE designs (
		id TEXT PRIMARY KEY,
		slug TEXT NOT NULL UNIQUE,
		owner_id TEXT NOT NULL,
		owner TEXT NOT NULL,
		title TEXT NOT NULL,
		summary TEXT NOT NULL,
		tags TEXT NOT NULL,
		license TEXT NOT NULL,
		hidden INTEGER NOT NULL DEFAULT 0,
		featured INTEGER NOT NULL DEFAULT 0,
		parents TEXT NOT NULL,
		latest_version INTEGER NOT NULL,
		counters TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE INDEX designs_listing ON designs(hidden, created_at DESC, id DESC);
	CREATE INDEX designs_owner ON designs(owner, created_at DESC);
	CREATE TABLE design_parents (
		child_id TEXT NOT NULL REFERENCES designs(id),
		parent_id TEXT NOT NULL,
		PRIMARY KEY (child_id, parent_id)
	);
	CREATE INDEX design_parents_parent ON design_parents(parent_id);
	CREATE TABLE design_tags (
		design_id TEXT NOT NULL REFERENCES designs(id),
		tag TEXT NOT NULL,
		PRIMARY KEY (design_id, tag)
	);
	CREATE INDEX design_tags_tag ON design_tags(tag);
	CREATE TABLE versions (
		design_id TEXT NOT NULL,
		number INTEGER NOT NULL,
		message TEXT NOT NULL,
		license TEXT NOT NULL,
		files TEXT NOT NULL,
		bom TEXT NOT NULL,
		created_by TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		PRIMARY KEY (design_id, number)
	);
	CREATE VIRTUAL TABLE designs_fts USING fts5(title, summary, tags, content='', tokenize='unicode61 remove_diacritics 2');`,
	// 3: fabrication
	`CREATE TABLE labs (
		id TEXT PRIMARY KEY,
		slug TEXT NOT NULL UNIQUE,
		data TEXT NOT NULL
	);
	CREATE TABLE lab_members (
		lab_id TEXT NOT NULL REFERENCES labs(id),
		user_id TEXT NOT NULL,
		handle TEXT NOT NULL,
		role TEXT NOT NULL,
		PRIMARY KEY (lab_id, user_id)
	);
	CREATE TABLE join_tokens (
		id TEXT PRIMARY KEY,
		lab_id TEXT NOT NULL REFERENCES labs(id),
		hash TEXT NOT NULL UNIQUE,
		revoked INTEGER NOT NULL DEFAULT 0,
		data TEXT NOT NULL
	);
	CREATE TABLE machines (
		id TEXT PRIMARY KEY,
		lab_id TEXT NOT NULL REFERENCES labs(id),
		token_hash TEXT NOT NULL,
		state TEXT NOT NULL,
		last_seen INTEGER,
		rev INTEGER NOT NULL DEFAULT 0,
		data TEXT NOT NULL
	);
	CREATE INDEX machines_lab ON machines(lab_id);
	CREATE INDEX machines_token ON machines(token_hash) WHERE token_hash != '';
	CREATE INDEX machines_seen ON machines(state, last_seen);
	CREATE TABLE enrollments (
		code_hash TEXT PRIMARY KEY,
		machine_id TEXT NOT NULL,
		expires_at INTEGER NOT NULL,
		used INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE orders (
		id TEXT PRIMARY KEY,
		lab_id TEXT NOT NULL,
		requester_id TEXT NOT NULL,
		data TEXT NOT NULL
	);
	CREATE TABLE jobs (
		id TEXT PRIMARY KEY,
		order_id TEXT NOT NULL,
		lab_id TEXT NOT NULL,
		design_id TEXT NOT NULL,
		requester_id TEXT NOT NULL,
		state TEXT NOT NULL,
		priority INTEGER NOT NULL,
		enqueued_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		machine_id TEXT NOT NULL,
		holding INTEGER NOT NULL,
		lease_hash TEXT NOT NULL,
		lease_expires INTEGER,
		rev INTEGER NOT NULL,
		data TEXT NOT NULL,
		events TEXT NOT NULL
	);
	CREATE INDEX jobs_queue ON jobs(lab_id, state, priority DESC, enqueued_at, id);
	CREATE INDEX jobs_lab_updated ON jobs(lab_id, state, updated_at DESC);
	CREATE INDEX jobs_order ON jobs(order_id);
	CREATE INDEX jobs_held ON jobs(machine_id) WHERE holding = 1;
	CREATE INDEX jobs_lease ON jobs(lease_expires) WHERE lease_expires IS NOT NULL;
	CREATE TABLE usage (
		lab_id TEXT NOT NULL,
		requester_id TEXT NOT NULL,
		seconds REAL NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (lab_id, requester_id)
	);`,
	// 4: reports on designs, for curation.
	`CREATE TABLE design_flags (
		design_id TEXT NOT NULL REFERENCES designs(id),
		user_id TEXT NOT NULL,
		handle TEXT NOT NULL,
		reason TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		PRIMARY KEY (design_id, user_id)
	);
	CREATE INDEX design_flags_created ON design_flags(created_at DESC);`,
	// 5: a design's fabrication record.
	`CREATE INDEX jobs_design ON jobs(design_id, state);`,
	// 6: accounts a site admin disabled; ending a user's sessions; voiding a machine's codes.
	`ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX sessions_user ON sessions(user_id);
	CREATE INDEX enrollments_machine ON enrollments(machine_id);`,
	// 7: quota counters, one row per key and window.
	`CREATE TABLE quotas (
		key TEXT NOT NULL,
		window_start INTEGER NOT NULL,
		used INTEGER NOT NULL,
		PRIMARY KEY (key, window_start)
	);`,
	// 8: the machine-time ledger: one chain of entries (fabrication/ledger.go).
	`CREATE TABLE ledger (
		seq INTEGER PRIMARY KEY,
		closes TEXT NOT NULL UNIQUE,
		kind TEXT NOT NULL,
		from_account TEXT NOT NULL,
		to_account TEXT NOT NULL,
		data TEXT NOT NULL
	);
	CREATE INDEX ledger_from ON ledger(from_account, seq);
	CREATE INDEX ledger_to ON ledger(to_account, seq);`,
	// 9: webhooks and their deliveries (webhook/). events is ",a,b," so one LIKE finds a
	// subscriber; the secret is kept as it is, since the hub signs with it.
	`CREATE TABLE webhooks (
		id TEXT PRIMARY KEY,
		owner_id TEXT NOT NULL,
		lab_id TEXT NOT NULL,
		lab TEXT NOT NULL,
		url TEXT NOT NULL,
		events TEXT NOT NULL,
		secret TEXT NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE INDEX webhooks_owner ON webhooks(owner_id, created_at);
	CREATE INDEX webhooks_lab ON webhooks(lab_id);
	CREATE TABLE webhook_deliveries (
		id TEXT PRIMARY KEY,
		hook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
		event TEXT NOT NULL,
		payload TEXT NOT NULL,
		state TEXT NOT NULL,
		attempts INTEGER NOT NULL,
		next_attempt_at INTEGER NOT NULL,
		last_status INTEGER NOT NULL,
		last_error TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_attempt_at);
	CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(hook_id, created_at);`,
	// 10: hooks for the whole hub (a site admin's: every design reported).
	`ALTER TABLE webhooks ADD COLUMN hub INTEGER NOT NULL DEFAULT 0;`,
	// 11: a design's licensor, when the rights holder is not its owner.
	`ALTER TABLE designs ADD COLUMN licensor TEXT NOT NULL DEFAULT '';`,
	// 12: federation (federation/): local actors' keys, follows both ways, blocked hosts
	`CREATE TABLE federation_keys (
		owner TEXT PRIMARY KEY,
		public_pem TEXT NOT NULL,
		private_pem TEXT NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE federation_follows (
		id TEXT PRIMARY KEY,
		target TEXT NOT NULL,
		actor TEXT NOT NULL UNIQUE,
		inbox TEXT NOT NULL,
		host TEXT NOT NULL,
		state TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE TABLE federation_followers (
		local TEXT NOT NULL,
		actor TEXT NOT NULL,
		inbox TEXT NOT NULL,
		host TEXT NOT NULL,
		activity_id TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		PRIMARY KEY (local, actor)
	);
	CREATE TABLE federation_blocks (
		host TEXT PRIMARY KEY,
		created_at INTEGER NOT NULL
	);`,
	// 13: remote designs (federation): where a design comes from, looked up by its object.
	`ALTER TABLE designs ADD COLUMN origin_hub TEXT NOT NULL DEFAULT '';
	ALTER TABLE designs ADD COLUMN origin_object TEXT NOT NULL DEFAULT '';
	ALTER TABLE designs ADD COLUMN origin_url TEXT NOT NULL DEFAULT '';
	CREATE UNIQUE INDEX designs_origin ON designs(origin_object) WHERE origin_object <> '';
	CREATE INDEX designs_origin_hub ON designs(origin_hub) WHERE origin_hub <> '';`,
	// 14: activities on their way to other hubs (federation/deliver.go), kept across restarts.
	`CREATE TABLE federation_deliveries (
		id TEXT PRIMARY KEY,
		sender TEXT NOT NULL,
		inbox TEXT NOT NULL,
		hub TEXT NOT NULL,
		host TEXT NOT NULL,
		body BLOB NOT NULL,
		attempts INTEGER NOT NULL,
		due INTEGER NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE INDEX federation_deliveries_due ON federation_deliveries(due);
	CREATE INDEX federation_deliveries_destination ON federation_deliveries(inbox, hub, id);
	CREATE INDEX federation_deliveries_host ON federation_deliveries(host);`,
	// 15: makes of this hub's designs at other hubs' labs (federation), by the job's URL there.
	`CREATE TABLE federation_makes (
		id TEXT PRIMARY KEY,
		design_id TEXT NOT NULL,
		version INTEGER NOT NULL,
		host TEXT NOT NULL,
		lab TEXT NOT NULL,
		lab_name TEXT NOT NULL,
		file TEXT NOT NULL,
		ended_at INTEGER NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE INDEX federation_makes_design ON federation_makes(design_id, ended_at);
	CREATE INDEX federation_makes_host ON federation_makes(host);`,
	// 16: the queue's index holds queued jobs alone: a job's claim, start and end no
	// longer rewrite its entry there (Queued names state = 'queued', as the index does).
	`DROP INDEX jobs_queue;
	CREATE INDEX jobs_queue ON jobs(lab_id, priority DESC, enqueued_at, id) WHERE state = 'queued';`,
}

func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	for i, m := range migrations {
		version := i + 1
		if err := applyMigration(ctx, db, version, m); err != nil {
			return fmt.Errorf("migration %d: %w", version, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, version int, stmt string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, stmt); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, version, time.Now().UnixNano()); err != nil {
		return err
	}
	return mapErr(tx.Commit())
}
