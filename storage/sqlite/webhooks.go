package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/storage"
)

// Webhooks implements webhook.Store.
type Webhooks struct{ db *DB }

var _ webhook.Store = Webhooks{}

// Webhooks returns the webhook store of db.
func (db *DB) Webhooks() Webhooks { return Webhooks{db} }

const hookColumns = `id, owner_id, lab_id, lab, url, events, secret, created_at, hub`

// insertHook and hookArgs write a hook, for CreateHook and for an import.
const insertHook = `INSERT INTO webhooks(` + hookColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

func hookArgs(h webhook.Hook) []any {
	return []any{h.ID, h.OwnerID, h.LabID, h.Lab, h.URL, "," + strings.Join(h.Events, ",") + ",", h.Secret, unixNano(h.CreatedAt), h.Hub}
}

func (w Webhooks) CreateHook(ctx context.Context, h webhook.Hook) error {
	_, err := w.db.write.ExecContext(ctx, insertHook, hookArgs(h)...)
	if err != nil {
		return fmt.Errorf("create webhook: %w", mapErr(err))
	}
	return nil
}

func scanHook(row interface{ Scan(...any) error }) (webhook.Hook, error) {
	var h webhook.Hook
	var events string
	var created int64
	if err := row.Scan(&h.ID, &h.OwnerID, &h.LabID, &h.Lab, &h.URL, &events, &h.Secret, &created, &h.Hub); err != nil {
		return webhook.Hook{}, mapErr(err)
	}
	h.Events = strings.Split(strings.Trim(events, ","), ",")
	h.CreatedAt = fromNano(created)
	return h, nil
}

func (w Webhooks) queryHooks(ctx context.Context, where string, args ...any) ([]webhook.Hook, error) {
	rows, err := w.db.read.QueryContext(ctx, `SELECT `+hookColumns+` FROM webhooks WHERE `+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []webhook.Hook
	for rows.Next() {
		h, err := scanHook(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, mapErr(rows.Err())
}

func (w Webhooks) Hook(ctx context.Context, id string) (webhook.Hook, error) {
	h, err := scanHook(w.db.read.QueryRowContext(ctx, `SELECT `+hookColumns+` FROM webhooks WHERE id = ?`, id))
	if err != nil {
		return webhook.Hook{}, fmt.Errorf("webhook %s: %w", id, err)
	}
	return h, nil
}

func (w Webhooks) Hooks(ctx context.Context, ownerID string) ([]webhook.Hook, error) {
	hs, err := w.queryHooks(ctx, `owner_id = ?`, ownerID)
	if err != nil {
		return nil, fmt.Errorf("webhooks of %s: %w", ownerID, err)
	}
	return hs, nil
}

func (w Webhooks) HooksFor(ctx context.Context, event, labID, ownerID string, hub bool) ([]webhook.Hook, error) {
	hs, err := w.queryHooks(ctx, `events LIKE ? AND ((lab_id = ? AND lab_id != '') OR (lab_id = '' AND NOT hub AND owner_id = ? AND owner_id != '') OR (hub AND ?))`,
		"%,"+event+",%", labID, ownerID, hub)
	if err != nil {
		return nil, fmt.Errorf("webhooks for %s: %w", event, err)
	}
	return hs, nil
}

// DeleteHook deletes the hook; its deliveries go with it (ON DELETE CASCADE).
func (w Webhooks) DeleteHook(ctx context.Context, id string) error {
	res, err := w.db.write.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete webhook %s: %w", id, storage.ErrNotFound)
	}
	return nil
}

const deliveryColumns = `id, hook_id, event, payload, state, attempts, next_attempt_at, last_status, last_error, created_at, updated_at`

func (w Webhooks) AddDelivery(ctx context.Context, d webhook.Delivery) error {
	_, err := w.db.write.ExecContext(ctx, `INSERT INTO webhook_deliveries(`+deliveryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.HookID, d.Event, string(d.Payload), d.State, d.Attempts, unixNano(d.NextAttemptAt), d.LastStatus, d.LastError,
		unixNano(d.CreatedAt), unixNano(d.UpdatedAt))
	if err != nil {
		if strings.Contains(err.Error(), "FOREIGN KEY") {
			return fmt.Errorf("add a delivery to webhook %s: %w", d.HookID, storage.ErrNotFound)
		}
		return fmt.Errorf("add a delivery to webhook %s: %w", d.HookID, mapErr(err))
	}
	return nil
}

func (w Webhooks) queryDeliveries(ctx context.Context, query string, args ...any) ([]webhook.Delivery, error) {
	rows, err := w.db.read.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE `+query, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []webhook.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, mapErr(rows.Err())
}

func scanDelivery(row interface{ Scan(...any) error }) (webhook.Delivery, error) {
	var d webhook.Delivery
	var payload string
	var next, created, updated int64
	if err := row.Scan(&d.ID, &d.HookID, &d.Event, &payload, &d.State, &d.Attempts, &next, &d.LastStatus, &d.LastError, &created, &updated); err != nil {
		return webhook.Delivery{}, mapErr(err)
	}
	d.Payload = []byte(payload)
	d.NextAttemptAt, d.CreatedAt, d.UpdatedAt = fromNano(next), fromNano(created), fromNano(updated)
	return d, nil
}

func (w Webhooks) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]webhook.Delivery, error) {
	ds, err := w.queryDeliveries(ctx, `state = ? AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?`,
		webhook.Pending, unixNano(now), limit)
	if err != nil {
		return nil, fmt.Errorf("due webhook deliveries: %w", err)
	}
	return ds, nil
}

func (w Webhooks) SaveAttempt(ctx context.Context, d webhook.Delivery) error {
	res, err := w.db.write.ExecContext(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?,
		last_status = ?, last_error = ?, updated_at = ? WHERE id = ?`,
		d.State, d.Attempts, unixNano(d.NextAttemptAt), d.LastStatus, d.LastError, unixNano(d.UpdatedAt), d.ID)
	if err != nil {
		return fmt.Errorf("save webhook delivery %s: %w", d.ID, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("save webhook delivery %s: %w", d.ID, storage.ErrNotFound)
	}
	return nil
}

func (w Webhooks) PruneDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := w.db.write.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE state != ? AND updated_at < ?`, webhook.Pending, unixNano(before))
	if err != nil {
		return 0, fmt.Errorf("prune webhook deliveries: %w", mapErr(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (w Webhooks) Deliveries(ctx context.Context, hookID string, limit int) ([]webhook.Delivery, error) {
	ds, err := w.queryDeliveries(ctx, `hook_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`, hookID, limit)
	if err != nil {
		return nil, fmt.Errorf("deliveries of webhook %s: %w", hookID, err)
	}
	return ds, nil
}
