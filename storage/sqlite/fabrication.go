package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
)

// Fabrication implements fabrication.Store.
type Fabrication struct{ db *DB }

var (
	_ fabrication.Store         = Fabrication{}
	_ fabrication.JobUsageSaver = Fabrication{} // a job's end and its usage in one write
)

// Fabrication returns the fabrication store of db.
func (db *DB) Fabrication() Fabrication { return Fabrication{db} }

func nullNano(t *time.Time) any {
	if t == nil {
		return nil
	}
	return unixNano(*t)
}

// ---- labs -----------------------------------------------------------------------

func (f Fabrication) CreateLab(ctx context.Context, lab fabrication.Lab, owner fabrication.Member) error {
	tx, err := f.db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO labs(id, slug, data) VALUES (?, ?, ?)`, lab.ID, lab.Slug, mustJSON(lab)); err != nil {
		return fmt.Errorf("create lab %s: %w", lab.Slug, mapErr(err))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO lab_members(lab_id, user_id, handle, role) VALUES (?, ?, ?, ?)`,
		lab.ID, owner.UserID, owner.Handle, owner.Role); err != nil {
		return err
	}
	return mapErr(tx.Commit())
}

func (f Fabrication) lab(ctx context.Context, where string, arg any) (fabrication.Lab, error) {
	var data string
	if err := f.db.queryRow(ctx, `SELECT data FROM labs WHERE `+where, arg).Scan(&data); err != nil {
		return fabrication.Lab{}, fmt.Errorf("lab %v: %w", arg, mapErr(err))
	}
	var lab fabrication.Lab
	return lab, json.Unmarshal([]byte(data), &lab)
}

func (f Fabrication) LabBySlug(ctx context.Context, slug string) (fabrication.Lab, error) {
	return f.lab(ctx, "slug = ?", slug)
}

func (f Fabrication) SetPolicy(ctx context.Context, labID string, p fabrication.Policy) error {
	res, err := f.db.exec(ctx, `UPDATE labs SET data = json_set(data, '$.policy', json(?)) WHERE id = ?`, mustJSON(p), labID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("lab %s: %w", labID, storage.ErrNotFound)
	}
	return nil
}

func (f Fabrication) LabByID(ctx context.Context, id string) (fabrication.Lab, error) {
	return f.lab(ctx, "id = ?", id)
}

func (f Fabrication) Labs(ctx context.Context) ([]fabrication.Lab, error) {
	return queryJSON[fabrication.Lab](ctx, f.db.read, `SELECT data FROM labs ORDER BY slug`)
}

// queryJSON decodes the single JSON column of each row.
func queryJSON[T any](ctx context.Context, db *sql.DB, query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (f Fabrication) PutMember(ctx context.Context, m fabrication.Member) error {
	_, err := f.db.exec(ctx, `
		INSERT INTO lab_members(lab_id, user_id, handle, role) VALUES (?, ?, ?, ?)
		ON CONFLICT(lab_id, user_id) DO UPDATE SET role = excluded.role, handle = excluded.handle`,
		m.LabID, m.UserID, m.Handle, m.Role)
	return mapErr(err)
}

func (f Fabrication) DeleteMember(ctx context.Context, labID, userID string) error {
	return expectOne(f.db.exec(ctx, `DELETE FROM lab_members WHERE lab_id = ? AND user_id = ?`, labID, userID))
}

func (f Fabrication) Member(ctx context.Context, labID, userID string) (fabrication.Member, error) {
	m := fabrication.Member{LabID: labID, UserID: userID}
	err := f.db.queryRow(ctx, `SELECT handle, role FROM lab_members WHERE lab_id = ? AND user_id = ?`, labID, userID).Scan(&m.Handle, &m.Role)
	if err != nil {
		return fabrication.Member{}, mapErr(err)
	}
	return m, nil
}

func (f Fabrication) Members(ctx context.Context, labID string) ([]fabrication.Member, error) {
	rows, err := f.db.query(ctx, `SELECT user_id, handle, role FROM lab_members WHERE lab_id = ? ORDER BY handle`, labID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	members := []fabrication.Member{}
	for rows.Next() {
		m := fabrication.Member{LabID: labID}
		if err := rows.Scan(&m.UserID, &m.Handle, &m.Role); err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	return members, rows.Err()
}

func (f Fabrication) CreateJoinToken(ctx context.Context, t fabrication.JoinToken) error {
	_, err := f.db.exec(ctx, `INSERT INTO join_tokens(id, lab_id, hash, data) VALUES (?, ?, ?, ?)`, t.ID, t.LabID, t.Hash, mustJSON(t))
	return mapErr(err)
}

func (f Fabrication) scanJoinToken(row scanner) (fabrication.JoinToken, error) {
	var t fabrication.JoinToken
	var data string
	if err := row.Scan(&t.LabID, &t.Hash, &t.Revoked, &data); err != nil {
		return t, mapErr(err)
	}
	lab, hash, revoked := t.LabID, t.Hash, t.Revoked
	if err := json.Unmarshal([]byte(data), &t); err != nil {
		return t, err
	}
	t.LabID, t.Hash, t.Revoked = lab, hash, revoked
	return t, nil
}

func (f Fabrication) JoinTokenByHash(ctx context.Context, hash string) (fabrication.JoinToken, error) {
	return f.scanJoinToken(f.db.queryRow(ctx, `SELECT lab_id, hash, revoked, data FROM join_tokens WHERE hash = ?`, hash))
}

func (f Fabrication) JoinTokens(ctx context.Context, labID string) ([]fabrication.JoinToken, error) {
	rows, err := f.db.query(ctx, `SELECT lab_id, hash, revoked, data FROM join_tokens WHERE lab_id = ? ORDER BY rowid`, labID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []fabrication.JoinToken{}
	for rows.Next() {
		t, err := f.scanJoinToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func (f Fabrication) RevokeJoinToken(ctx context.Context, labID, id string) error {
	return expectOne(f.db.exec(ctx, `UPDATE join_tokens SET revoked = 1 WHERE id = ? AND lab_id = ?`, id, labID))
}

// ---- machines -------------------------------------------------------------------

// machineRow is what machines keep outside the JSON (json:"-" fields and indexed ones).
const machineColumns = `token_hash, state, last_seen, rev, data`

func (f Fabrication) scanMachine(row scanner) (fabrication.Machine, error) {
	var m fabrication.Machine
	var token, state, data string
	var seen sql.NullInt64
	var rev int
	if err := row.Scan(&token, &state, &seen, &rev, &data); err != nil {
		return m, mapErr(err)
	}
	m, err := f.db.machines.decode(data)
	if err != nil {
		return m, err
	}
	m.TokenHash, m.State, m.LastSeen, m.Rev = token, state, fromNullNano(seen), rev
	return m, nil
}

func (f Fabrication) CreateMachine(ctx context.Context, m fabrication.Machine) error {
	_, err := f.db.exec(ctx, `INSERT INTO machines(id, lab_id, token_hash, state, last_seen, rev, data) VALUES (?, ?, ?, ?, ?, 0, ?)`,
		m.ID, m.LabID, m.TokenHash, m.State, nullNano(m.LastSeen), mustJSON(m))
	return mapErr(err)
}

func (f Fabrication) Machine(ctx context.Context, id string) (fabrication.Machine, error) {
	return f.scanMachine(f.db.queryRow(ctx, `SELECT `+machineColumns+` FROM machines WHERE id = ?`, id))
}

func (f Fabrication) MachineByTokenHash(ctx context.Context, hash string) (fabrication.Machine, error) {
	if hash == "" {
		return fabrication.Machine{}, storage.ErrNotFound
	}
	return f.scanMachine(f.db.queryRow(ctx, `SELECT `+machineColumns+` FROM machines WHERE token_hash = ? AND token_hash != ''`, hash)) // the second term lets SQLite use the partial index
}

func (f Fabrication) Machines(ctx context.Context, labID string) ([]fabrication.Machine, error) {
	rows, err := f.db.query(ctx, `SELECT `+machineColumns+` FROM machines WHERE lab_id = ? ORDER BY rowid`, labID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []fabrication.Machine{}
	for rows.Next() {
		m, err := f.scanMachine(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (f Fabrication) SaveMachine(ctx context.Context, m fabrication.Machine, prevRev int) error {
	err := expectOne(f.db.exec(ctx, `UPDATE machines SET token_hash = ?, state = ?, last_seen = ?, rev = rev + 1, data = ? WHERE id = ? AND rev = ?`,
		m.TokenHash, m.State, nullNano(m.LastSeen), mustJSON(m), m.ID, prevRev))
	if err == storage.ErrNotFound {
		return fmt.Errorf("machine %s changed: %w", m.ID, storage.ErrConflict)
	}
	return err
}

func (f Fabrication) TouchMachine(ctx context.Context, id string, at time.Time, from, to string) error {
	return expectOne(f.db.exec(ctx, `UPDATE machines SET last_seen = ?, state = CASE WHEN state = ? THEN ? ELSE state END WHERE id = ?`,
		unixNano(at), from, to, id))
}

func (f Fabrication) MarkUnheard(ctx context.Context, before time.Time, from []string, to string) ([]string, error) {
	if len(from) == 0 {
		return nil, nil
	}
	in, args := inList(from)
	rows, err := f.db.write.QueryContext(ctx, `UPDATE machines SET state = ?
		WHERE state IN `+in+` AND (last_seen IS NULL OR last_seen < ?) RETURNING id`, append(append([]any{to}, args...), unixNano(before))...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func (f Fabrication) CreateEnrollment(ctx context.Context, e fabrication.Enrollment) error {
	_, err := f.db.exec(ctx, `INSERT INTO enrollments(code_hash, machine_id, expires_at) VALUES (?, ?, ?)`, e.CodeHash, e.MachineID, unixNano(e.ExpiresAt))
	return mapErr(err)
}

func (f Fabrication) DeleteEnrollments(ctx context.Context, machineIDs []string) error {
	if len(machineIDs) == 0 {
		return nil
	}
	in, args := inList(machineIDs)
	_, err := f.db.exec(ctx, `DELETE FROM enrollments WHERE machine_id IN `+in, args...)
	return mapErr(err)
}

func (f Fabrication) ConsumeEnrollment(ctx context.Context, codeHash string, now time.Time) (string, error) {
	var id string
	err := f.db.write.QueryRowContext(ctx, `UPDATE enrollments SET used = 1 WHERE code_hash = ? AND used = 0 AND expires_at > ? RETURNING machine_id`,
		codeHash, unixNano(now)).Scan(&id)
	return id, mapErr(err)
}

// ---- orders and jobs --------------------------------------------------------------
