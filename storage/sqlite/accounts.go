package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/storage"
)

// Accounts implements account.Store.
type Accounts struct{ db *DB }

var _ account.Store = Accounts{}

// Accounts returns the account store of db.
func (db *DB) Accounts() Accounts { return Accounts{db} }

func (a Accounts) CreateUser(ctx context.Context, u account.User) (account.User, error) {
	// One statement: with SQLite's single writer, "no user existed" cannot change
	// between the check and the insert, so exactly one first user becomes admin.
	err := a.db.write.QueryRowContext(ctx, `
		INSERT INTO users(id, handle, email, password_hash, admin, created_at)
		VALUES (?, ?, ?, ?, NOT EXISTS (SELECT 1 FROM users), ?)
		RETURNING admin`,
		u.ID, u.Handle, u.Email, u.PasswordHash, unixNano(u.CreatedAt)).Scan(&u.Admin)
	if err != nil {
		return account.User{}, fmt.Errorf("create user %s: %w", u.Handle, mapErr(err))
	}
	return u, nil
}

const userColumns = `id, handle, email, password_hash, admin, created_at, disabled`

func scanUser(row scanner) (account.User, error) {
	var u account.User
	var created int64
	if err := row.Scan(&u.ID, &u.Handle, &u.Email, &u.PasswordHash, &u.Admin, &created, &u.Disabled); err != nil {
		return account.User{}, mapErr(err)
	}
	u.CreatedAt = fromNano(created)
	return u, nil
}

func (a Accounts) UserByID(ctx context.Context, id string) (account.User, error) {
	u, err := scanUser(a.db.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if err != nil {
		return u, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

func (a Accounts) UserByHandle(ctx context.Context, handle string) (account.User, error) {
	u, err := scanUser(a.db.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE handle = ?`, handle))
	if err != nil {
		return u, fmt.Errorf("user %s: %w", handle, err)
	}
	return u, nil
}

func (a Accounts) CreateToken(ctx context.Context, t account.Token) error {
	_, err := a.db.write.ExecContext(ctx, `
		INSERT INTO tokens(id, user_id, name, prefix, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.UserID, t.Name, t.Prefix, t.Hash, unixNano(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("create token: %w", mapErr(err))
	}
	return nil
}

const tokenColumns = `id, user_id, name, prefix, hash, created_at, last_used_at`

type scanner interface{ Scan(...any) error }

func scanToken(row scanner) (account.Token, error) {
	var t account.Token
	var created int64
	var used sql.NullInt64
	if err := row.Scan(&t.ID, &t.UserID, &t.Name, &t.Prefix, &t.Hash, &created, &used); err != nil {
		return account.Token{}, mapErr(err)
	}
	t.CreatedAt, t.LastUsedAt = fromNano(created), fromNullNano(used)
	return t, nil
}

func (a Accounts) TokenByHash(ctx context.Context, hash string) (account.Token, error) {
	t, err := scanToken(a.db.read.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash))
	if err != nil {
		return t, fmt.Errorf("token: %w", err)
	}
	return t, nil
}

func (a Accounts) ListTokens(ctx context.Context, userID string) ([]account.Token, error) {
	rows, err := a.db.read.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	tokens := []account.Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		tokens = append(tokens, t)
	}
	return tokens, rows.Err()
}

func (a Accounts) TouchToken(ctx context.Context, id string, at time.Time) error {
	_, err := a.db.write.ExecContext(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`, unixNano(at), id)
	return err
}

func (a Accounts) RevokeToken(ctx context.Context, userID, id string) error {
	return expectOne(a.db.write.ExecContext(ctx, `DELETE FROM tokens WHERE id = ? AND user_id = ?`, id, userID))
}

// expectOne turns "no row changed" into storage.ErrNotFound.
func expectOne(res sql.Result, err error) error {
	if err != nil {
		return mapErr(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

func (a Accounts) CreateSession(ctx context.Context, s account.Session) error {
	_, err := a.db.write.ExecContext(ctx, `
		INSERT INTO sessions(hash, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		s.Hash, s.UserID, s.CSRF, unixNano(s.CreatedAt), unixNano(s.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create session: %w", mapErr(err))
	}
	return nil
}

func (a Accounts) SessionByHash(ctx context.Context, hash string, now time.Time) (account.Session, error) {
	var s account.Session
	var created, expires int64
	err := a.db.read.QueryRowContext(ctx, `
		SELECT hash, user_id, csrf, created_at, expires_at FROM sessions WHERE hash = ? AND expires_at > ?`,
		hash, unixNano(now)).Scan(&s.Hash, &s.UserID, &s.CSRF, &created, &expires)
	if err != nil {
		return account.Session{}, fmt.Errorf("session: %w", mapErr(err))
	}
	s.CreatedAt, s.ExpiresAt = fromNano(created), fromNano(expires)
	return s, nil
}

func (a Accounts) DeleteSession(ctx context.Context, hash string) error {
	_, err := a.db.write.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, hash)
	return err
}

func (a Accounts) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := a.db.write.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, unixNano(now))
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (a Accounts) DeleteUserSessions(ctx context.Context, userID string) (int, error) {
	res, err := a.db.exec(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (a Accounts) SetDisabled(ctx context.Context, userID string, disabled bool) error {
	return expectOne(a.db.exec(ctx, `UPDATE users SET disabled = ? WHERE id = ?`, disabled, userID))
}
