// Package account holds people's accounts: sign-up, passwords, personal API tokens,
// browser sessions and the throttling of failed logins. It imports no web framework and
// no database driver; storage/ implements its Store.
package account

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// User is one person's account. PasswordHash never leaves the server.
type User struct {
	ID           string    `json:"id"`
	Handle       string    `json:"handle"`
	Email        string    `json:"email,omitempty"`
	PasswordHash string    `json:"-"`
	Admin        bool      `json:"admin"`
	CreatedAt    time.Time `json:"created_at"`
	Disabled     bool      `json:"disabled,omitempty"` // by a site admin: no sign-in, no token, no session
}

// Token is a personal API token. Only the SHA-256 of its secret is stored.
type Token struct {
	ID         string     `json:"id"`
	UserID     string     `json:"-"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"` // the first characters of the secret, to tell tokens apart
	Hash       string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// Session is a browser login. Only the SHA-256 of the cookie value is stored; CSRF is
// the token unsafe requests of this session must echo.
type Session struct {
	Hash      string
	UserID    string
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Store keeps accounts. Backends return storage.ErrNotFound and storage.ErrConflict.
type Store interface {
	// CreateUser inserts u, making it site admin if and only if no user existed before
	// it; it returns the user as stored, or storage.ErrConflict when the handle is taken.
	CreateUser(ctx context.Context, u User) (User, error)
	UserByID(ctx context.Context, id string) (User, error)
	UserByHandle(ctx context.Context, handle string) (User, error)

	CreateToken(ctx context.Context, t Token) error
	// TokenByHash finds a token that has not been revoked.
	TokenByHash(ctx context.Context, hash string) (Token, error)
	ListTokens(ctx context.Context, userID string) ([]Token, error)
	TouchToken(ctx context.Context, id string, at time.Time) error
	// RevokeToken deletes the user's token id, or returns storage.ErrNotFound.
	RevokeToken(ctx context.Context, userID, id string) error

	CreateSession(ctx context.Context, s Session) error
	// SessionByHash finds a session that has not expired at now.
	SessionByHash(ctx context.Context, hash string, now time.Time) (Session, error)
	DeleteSession(ctx context.Context, hash string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)
	// DeleteUserSessions ends every session of a user and says how many there were.
	DeleteUserSessions(ctx context.Context, userID string) (int, error)
	// SetDisabled disables or re-enables a user, or returns storage.ErrNotFound.
	SetDisabled(ctx context.Context, userID string, disabled bool) error
}

// ErrBadCredentials is the one answer to a wrong password and to an unknown handle.
var ErrBadCredentials = errors.New("handle or password is wrong")

// ErrUnauthenticated is the answer to a token or session that does not exist, was
// revoked, or has expired.
var ErrUnauthenticated = errors.New("not logged in: the token or session is missing, revoked or expired")

// ErrDisabled is the answer to every credential of a disabled account.
var ErrDisabled = fmt.Errorf("this account was disabled by the site's maintainers: %w", ErrUnauthenticated)

// ThrottledError refuses an attempt made too soon after too many failures.
type ThrottledError struct{ Wait time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed attempts: try again in %s", e.Wait.Round(time.Second))
}
func (e *ThrottledError) RetryAfter() time.Duration { return e.Wait }

// Handles resolves people's handles to their user ids, for the packages that name
// people by handle (lab membership, the ledger's accounts).
type Handles struct{ Store Store }

func (h Handles) UserIDByHandle(ctx context.Context, handle string) (string, error) {
	u, err := h.Store.UserByHandle(ctx, NormalizeHandle(handle))
	return u.ID, err
}
