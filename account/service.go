package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/fabcommons/fabcommons/storage"
)

// Options tune a Service. The zero value of each field means its default.
type Options struct {
	Argon2         Argon2Params     // password hashing cost
	SessionTTL     time.Duration    // browser session lifetime (30 days)
	FailuresPerKey int              // failed logins allowed per handle from one client per window (10); a client gets ten times that
	FailureWindow  time.Duration    // the throttling window (15 minutes)
	Clock          func() time.Time // time.Now
}

// Service is the account use cases on top of a Store.
type Service struct {
	store      Store
	log        *slog.Logger
	argon      Argon2Params
	sessionTTL time.Duration
	now        func() time.Time
	byClient   *Throttle
	byPair     *Throttle // failures of one handle from one client
	dummyHash  string    // checked for unknown handles so they cost what a wrong password costs
}

// NewService builds the account service.
func NewService(store Store, log *slog.Logger, o Options) (*Service, error) {
	if o.Argon2 == (Argon2Params{}) {
		o.Argon2 = DefaultArgon2
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = 30 * 24 * time.Hour
	}
	if o.FailuresPerKey == 0 {
		o.FailuresPerKey = 10
	}
	if o.FailureWindow == 0 {
		o.FailureWindow = 15 * time.Minute
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	dummy, err := HashPassword("not a real password", o.Argon2)
	if err != nil {
		return nil, err
	}
	return &Service{
		store: store, log: log, argon: o.Argon2, sessionTTL: o.SessionTTL, now: storage.Milliseconds(o.Clock),
		// A client (an address, which a whole lab may share behind its router) gets ten
		// times the failures one handle gets from it, bounding guessing from one place
		// without one person's mistakes locking out the rest of the room.
		byClient:  NewThrottle(10*o.FailuresPerKey, o.FailureWindow, 100_000),
		byPair:    NewThrottle(o.FailuresPerKey, o.FailureWindow, 100_000),
		dummyHash: dummy,
	}, nil
}

var handleRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){1,31}$`)

// reserved handles would collide with page paths or mislead people.
var reserved = map[string]bool{
	"admin": true, "administrator": true, "api": true, "account": true, "designs": true, "labs": true,
	"login": true, "logout": true, "signup": true, "search": true, "static": true, "me": true,
	"root": true, "system": true, "fabcommons": true, "orders": true, "jobs": true, "new": true,
}

// NormalizeHandle lower-cases a handle; handles are unique regardless of case.
func NormalizeHandle(h string) string { return strings.ToLower(strings.TrimSpace(h)) }

// SignUp creates an account. The first account of a site becomes its admin.
func (s *Service) SignUp(ctx context.Context, handle, email, password string) (User, error) {
	handle = NormalizeHandle(handle)
	if !handleRE.MatchString(handle) {
		return User{}, storage.Invalid("handle", "use 2 to 32 lowercase letters, digits and single hyphens, starting and ending with a letter or digit")
	}
	if reserved[handle] {
		return User{}, storage.Invalid("handle", fmt.Sprintf("%q is reserved", handle))
	}
	email = strings.TrimSpace(email)
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email || len(email) > 254 {
		return User{}, storage.Invalid("email", "want a plain address such as ada@example.org")
	}
	if err := checkPassword(password); err != nil {
		return User{}, err
	}
	hash, err := HashPassword(password, s.argon)
	if err != nil {
		return User{}, fmt.Errorf("sign up %s: %w", handle, err)
	}
	u, err := s.store.CreateUser(ctx, User{
		ID: uuid.NewString(), Handle: handle, Email: email, PasswordHash: hash, CreatedAt: s.now().UTC(),
	})
	if errors.Is(err, storage.ErrConflict) {
		return User{}, fmt.Errorf("handle %q is taken: %w", handle, storage.ErrConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("sign up %s: %w", handle, err)
	}
	s.log.Info("account created", "user", u.ID, "handle", u.Handle, "admin", u.Admin)
	return u, nil
}

func checkPassword(p string) error {
	switch n := utf8.RuneCountInString(p); {
	case n < 10:
		return storage.Invalid("password", "use at least 10 characters")
	case len(p) > 1024:
		return storage.Invalid("password", "use at most 1024 bytes")
	}
	return nil
}

// Authenticate checks a handle and password from client (an IP address). A wrong
// password and an unknown handle give the same ErrBadCredentials after the same work;
// too many failures from a client, or from a client for one handle, give a
// *ThrottledError. Failures count per client, never per handle alone: someone else's
// failures cannot lock the owner of a handle out of signing in from their own client.
func (s *Service) Authenticate(ctx context.Context, handle, password, client string) (User, error) {
	handle = NormalizeHandle(handle)
	now := s.now()
	pair := handle + "\x00" + client
	// The attempt is counted before the password is hashed: attempts sent at once are
	// counted as they come, not after all of them were checked.
	if wait := s.byClient.Take(client, now); wait > 0 {
		return User{}, &ThrottledError{Wait: wait}
	}
	if wait := s.byPair.Take(pair, now); wait > 0 {
		return User{}, &ThrottledError{Wait: wait}
	}
	u, err := s.store.UserByHandle(ctx, handle)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return User{}, fmt.Errorf("log in: %w", err)
	}
	hash := u.PasswordHash
	if err != nil || len(password) > 1024 {
		hash = s.dummyHash
	}
	ok, herr := CheckPassword(password, hash)
	if herr != nil {
		return User{}, fmt.Errorf("log in %s: %w", handle, herr)
	}
	if err != nil || !ok || len(password) > 1024 {
		return User{}, ErrBadCredentials
	}
	if u.Disabled {
		return User{}, ErrDisabled
	}
	s.byPair.Reset(pair)
	return u, nil
}

// Token secrets look like fab_p_<43 base64url characters>; the prefix tells a leaked
// secret's kind at a glance (and to secret scanners).
const personalTokenPrefix = "fab_p_"

func newSecret(prefix string) (secret, hash string) {
	b := make([]byte, 32)
	rand.Read(b)
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret)
}

// HashSecret is how tokens and session cookies are stored: they carry 256 random
// bits, so one SHA-256 is enough (no password-style stretching needed).
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// IssueToken creates a personal API token for u. The secret is returned once.
func (s *Service) IssueToken(ctx context.Context, u User, name string) (Token, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return Token{}, "", storage.Invalid("name", "name the token (1 to 100 characters), e.g. the script that uses it")
	}
	secret, hash := newSecret(personalTokenPrefix)
	t := Token{ID: uuid.NewString(), UserID: u.ID, Name: name, Prefix: secret[:10], Hash: hash, CreatedAt: s.now().UTC()}
	if err := s.store.CreateToken(ctx, t); err != nil {
		return Token{}, "", fmt.Errorf("issue token: %w", err)
	}
	return t, secret, nil
}

// TokenUser resolves a bearer secret to its user, or ErrUnauthenticated.
func (s *Service) TokenUser(ctx context.Context, secret string) (User, error) {
	if !strings.HasPrefix(secret, personalTokenPrefix) {
		return User{}, ErrUnauthenticated
	}
	t, err := s.store.TokenByHash(ctx, HashSecret(secret))
	if errors.Is(err, storage.ErrNotFound) {
		return User{}, ErrUnauthenticated
	}
	if err != nil {
		return User{}, fmt.Errorf("check token: %w", err)
	}
	now := s.now()
	// Record use at most once a minute: a script's burst of calls is one write.
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
		if err := s.store.TouchToken(ctx, t.ID, now.UTC()); err != nil {
			s.log.Warn("token last-used update failed", "token", t.ID, "err", err)
		}
	}
	return s.userOf(ctx, t.UserID)
}

func (s *Service) userOf(ctx context.Context, id string) (User, error) {
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return User{}, ErrUnauthenticated
	}
	if err == nil && u.Disabled {
		return User{}, ErrDisabled
	}
	return u, err
}

// SetDisabled lets a site admin disable an account (its sign-ins, tokens and sessions
// stop at once; what it published stays) or enable it again.
func (s *Service) SetDisabled(ctx context.Context, actor User, handle string, disabled bool) (User, error) {
	if !actor.Admin {
		return User{}, fmt.Errorf("only site admins disable accounts: %w", storage.ErrForbidden)
	}
	u, err := s.store.UserByHandle(ctx, NormalizeHandle(handle))
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", handle, err)
	}
	if u.ID == actor.ID {
		return User{}, storage.Invalid("handle", "you cannot disable your own account")
	}
	if err := s.store.SetDisabled(ctx, u.ID, disabled); err != nil {
		return User{}, fmt.Errorf("disable %s: %w", u.Handle, err)
	}
	if disabled {
		if _, err := s.store.DeleteUserSessions(ctx, u.ID); err != nil {
			return User{}, fmt.Errorf("end the sessions of %s: %w", u.Handle, err)
		}
	}
	u.Disabled = disabled
	s.log.Info("account disabled or enabled", "handle", u.Handle, "disabled", disabled, "by", actor.Handle)
	return u, nil
}

// EndAllSessions signs u out everywhere: every browser session ends (tokens stay).
func (s *Service) EndAllSessions(ctx context.Context, u User) (int, error) {
	return s.store.DeleteUserSessions(ctx, u.ID)
}

// Tokens lists u's tokens, without secrets.
func (s *Service) Tokens(ctx context.Context, u User) ([]Token, error) {
	return s.store.ListTokens(ctx, u.ID)
}

// RevokeToken deletes one of u's tokens.
func (s *Service) RevokeToken(ctx context.Context, u User, id string) error {
	if err := s.store.RevokeToken(ctx, u.ID, id); err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	return nil
}

// StartSession logs u in; the returned secret goes in the session cookie.
func (s *Service) StartSession(ctx context.Context, u User) (Session, string, error) {
	secret, hash := newSecret("")
	csrf, _ := newSecret("")
	now := s.now().UTC()
	sess := Session{Hash: hash, UserID: u.ID, CSRF: csrf, CreatedAt: now, ExpiresAt: now.Add(s.sessionTTL)}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return Session{}, "", fmt.Errorf("start session: %w", err)
	}
	return sess, secret, nil
}

// SessionUser resolves a session cookie to its session and user, or ErrUnauthenticated.
func (s *Service) SessionUser(ctx context.Context, secret string) (User, Session, error) {
	if secret == "" || len(secret) > 100 {
		return User{}, Session{}, ErrUnauthenticated
	}
	sess, err := s.store.SessionByHash(ctx, HashSecret(secret), s.now())
	if errors.Is(err, storage.ErrNotFound) {
		return User{}, Session{}, ErrUnauthenticated
	}
	if err != nil {
		return User{}, Session{}, fmt.Errorf("check session: %w", err)
	}
	u, err := s.userOf(ctx, sess.UserID)
	return u, sess, err
}

// EndSession logs a browser out.
func (s *Service) EndSession(ctx context.Context, secret string) error {
	return s.store.DeleteSession(ctx, HashSecret(secret))
}

// CSRFMatches compares a request's CSRF token with its session's in constant time.
func CSRFMatches(sess Session, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(sess.CSRF), []byte(got)) == 1
}

// PurgeSessions deletes expired sessions; the maintenance cron calls it.
func (s *Service) PurgeSessions(ctx context.Context) (int, error) {
	return s.store.DeleteExpiredSessions(ctx, s.now())
}
