package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/storage"
)

// Accounts implements account.Store.
type Accounts struct{ db *DB }

var _ account.Store = Accounts{}

// Accounts returns the account store of db.
func (db *DB) Accounts() Accounts { return Accounts{db} }

func (a Accounts) users() *mongo.Collection    { return a.db.db.Collection("users") }
func (a Accounts) tokens() *mongo.Collection   { return a.db.db.Collection("tokens") }
func (a Accounts) sessions() *mongo.Collection { return a.db.db.Collection("sessions") }
func (a Accounts) meta() *mongo.Collection     { return a.db.db.Collection("meta") }

type userDoc struct {
	ID           string    `bson:"_id"`
	Handle       string    `bson:"handle"`
	Email        string    `bson:"email"`
	PasswordHash string    `bson:"password_hash"`
	Admin        bool      `bson:"admin"`
	CreatedAt    time.Time `bson:"created_at"`
	Disabled     bool      `bson:"disabled"`
}

func (d userDoc) user() account.User { return account.User(d) }

// CreateUser inserts the user, then claims the site-admin marker with an upsert that
// only one user can win. Without transactions the two writes are separate, so Open
// repairs the one state a crash between them can leave (marker set, flag not yet).
func (a Accounts) CreateUser(ctx context.Context, u account.User) (_ account.User, err error) {
	defer normalize(&err)
	u.Admin = false
	if _, err := a.users().InsertOne(ctx, userDoc(u)); err != nil {
		return account.User{}, fmt.Errorf("create user %s: %w", u.Handle, mapErr(err))
	}
	res, err := a.meta().UpdateOne(ctx, bson.M{"_id": "site_admin"},
		bson.M{"$setOnInsert": bson.M{"user_id": u.ID}}, options.UpdateOne().SetUpsert(true))
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return account.User{}, fmt.Errorf("create user %s: claim admin: %w", u.Handle, err)
	}
	if err == nil && res.UpsertedCount == 1 {
		if _, err := a.users().UpdateByID(ctx, u.ID, bson.M{"$set": bson.M{"admin": true}}); err != nil {
			return account.User{}, fmt.Errorf("create user %s: make admin: %w", u.Handle, err)
		}
		u.Admin = true
	}
	return u, nil
}

func (a Accounts) repairSiteAdmin(ctx context.Context) error {
	var marker struct {
		UserID string `bson:"user_id"`
	}
	err := a.meta().FindOne(ctx, bson.M{"_id": "site_admin"}).Decode(&marker)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = a.users().UpdateByID(ctx, marker.UserID, bson.M{"$set": bson.M{"admin": true}})
	return err
}

func (a Accounts) findUser(ctx context.Context, filter bson.M, what string) (account.User, error) {
	var d userDoc
	if err := a.users().FindOne(ctx, filter).Decode(&d); err != nil {
		return account.User{}, fmt.Errorf("user %s: %w", what, mapErr(err))
	}
	return d.user(), nil
}

func (a Accounts) UserByID(ctx context.Context, id string) (_ account.User, err error) {
	defer normalize(&err)
	return a.findUser(ctx, bson.M{"_id": id}, id)
}

func (a Accounts) UserByHandle(ctx context.Context, handle string) (_ account.User, err error) {
	defer normalize(&err)
	return a.findUser(ctx, bson.M{"handle": handle}, handle)
}

type tokenDoc struct {
	ID         string     `bson:"_id"`
	UserID     string     `bson:"user_id"`
	Name       string     `bson:"name"`
	Prefix     string     `bson:"prefix"`
	Hash       string     `bson:"hash"`
	CreatedAt  time.Time  `bson:"created_at"`
	LastUsedAt *time.Time `bson:"last_used_at"`
}

func (d tokenDoc) token() account.Token {
	t := account.Token(d)
	t.CreatedAt = t.CreatedAt.UTC()
	if t.LastUsedAt != nil {
		used := t.LastUsedAt.UTC()
		t.LastUsedAt = &used
	}
	return t
}

func (a Accounts) CreateToken(ctx context.Context, t account.Token) (err error) {
	defer normalize(&err)
	if _, err := a.tokens().InsertOne(ctx, tokenDoc(t)); err != nil {
		return fmt.Errorf("create token: %w", mapErr(err))
	}
	return nil
}

func (a Accounts) TokenByHash(ctx context.Context, hash string) (_ account.Token, err error) {
	defer normalize(&err)
	var d tokenDoc
	if err := a.tokens().FindOne(ctx, bson.M{"hash": hash}).Decode(&d); err != nil {
		return account.Token{}, fmt.Errorf("token: %w", mapErr(err))
	}
	return d.token(), nil
}

func (a Accounts) ListTokens(ctx context.Context, userID string) (_ []account.Token, err error) {
	defer normalize(&err)
	cur, err := a.tokens().Find(ctx, bson.M{"user_id": userID},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	var docs []tokenDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	tokens := make([]account.Token, 0, len(docs))
	for _, d := range docs {
		tokens = append(tokens, d.token())
	}
	return tokens, nil
}

func (a Accounts) TouchToken(ctx context.Context, id string, at time.Time) (err error) {
	defer normalize(&err)
	_, err = a.tokens().UpdateByID(ctx, id, bson.M{"$set": bson.M{"last_used_at": at}})
	return err
}

func (a Accounts) RevokeToken(ctx context.Context, userID, id string) (err error) {
	defer normalize(&err)
	res, err := a.tokens().DeleteOne(ctx, bson.M{"_id": id, "user_id": userID})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return storage.ErrNotFound
	}
	return nil
}

type sessionDoc struct {
	Hash      string    `bson:"_id"`
	UserID    string    `bson:"user_id"`
	CSRF      string    `bson:"csrf"`
	CreatedAt time.Time `bson:"created_at"`
	ExpiresAt time.Time `bson:"expires_at"`
}

func (a Accounts) CreateSession(ctx context.Context, s account.Session) (err error) {
	defer normalize(&err)
	if _, err := a.sessions().InsertOne(ctx, sessionDoc(s)); err != nil {
		return fmt.Errorf("create session: %w", mapErr(err))
	}
	return nil
}

func (a Accounts) SessionByHash(ctx context.Context, hash string, now time.Time) (_ account.Session, err error) {
	defer normalize(&err)
	var d sessionDoc
	err = a.sessions().FindOne(ctx, bson.M{"_id": hash, "expires_at": bson.M{"$gt": now}}).Decode(&d)
	if err != nil {
		return account.Session{}, fmt.Errorf("session: %w", mapErr(err))
	}
	s := account.Session(d)
	s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC()
	return s, nil
}

func (a Accounts) DeleteSession(ctx context.Context, hash string) (err error) {
	defer normalize(&err)
	_, err = a.sessions().DeleteOne(ctx, bson.M{"_id": hash})
	return err
}

func (a Accounts) DeleteExpiredSessions(ctx context.Context, now time.Time) (_ int, err error) {
	defer normalize(&err)
	res, err := a.sessions().DeleteMany(ctx, bson.M{"expires_at": bson.M{"$lte": now}})
	if err != nil {
		return 0, err
	}
	return int(res.DeletedCount), nil
}

func (a Accounts) DeleteUserSessions(ctx context.Context, userID string) (_ int, err error) {
	defer normalize(&err)
	res, err := a.sessions().DeleteMany(ctx, bson.M{"user_id": userID})
	if err != nil {
		return 0, err
	}
	return int(res.DeletedCount), nil
}

func (a Accounts) SetDisabled(ctx context.Context, userID string, disabled bool) (err error) {
	defer normalize(&err)
	res, err := a.users().UpdateOne(ctx, bson.M{"_id": userID}, bson.M{"$set": bson.M{"disabled": disabled}})
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("user %s: %w", userID, storage.ErrNotFound)
	}
	return nil
}
