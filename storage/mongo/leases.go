package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/fabcommons/fabcommons/storage"
)

// Leases implements storage.Leases.
type Leases struct{ db *DB }

var _ storage.Leases = Leases{}

// Leases returns the named-lease store of db.
func (db *DB) Leases() Leases { return Leases{db} }

type leaseDoc struct {
	Name      string    `bson:"_id"`
	Holder    string    `bson:"holder"`
	ExpiresAt time.Time `bson:"expires_at"`
	Rev       int       `bson:"rev"`
}

// AcquireLease reads the lease and, when it is free, expired or already this holder's,
// commits the next revision with this holder (see casReplace): of several hubs trying
// at once, one commits.
func (l Leases) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (_ bool, err error) {
	defer normalize(&err)
	var d leaseDoc
	err = l.db.db.Collection("leases").FindOne(ctx, bson.M{"_id": name}).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		d = leaseDoc{Name: name}
	case err != nil:
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	case d.Holder != holder && d.ExpiresAt.After(now):
		return false, nil
	}
	next := leaseDoc{Name: name, Holder: holder, ExpiresAt: now.Add(ttl), Rev: d.Rev + 1}
	err = l.db.casReplace(ctx, "leases", name, d.Rev, next)
	if errors.Is(err, storage.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return true, nil
}

// ReleaseLease ends the lease now if holder has it (as a new revision, so it cannot
// undo a takeover that committed in between).
func (l Leases) ReleaseLease(ctx context.Context, name, holder string) (err error) {
	defer normalize(&err)
	var d leaseDoc
	err = l.db.db.Collection("leases").FindOne(ctx, bson.M{"_id": name}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) || (err == nil && d.Holder != holder) {
		return nil
	}
	if err != nil {
		return err
	}
	err = l.db.casReplace(ctx, "leases", name, d.Rev, leaseDoc{Name: name, Rev: d.Rev + 1})
	if errors.Is(err, storage.ErrConflict) {
		return nil
	}
	return err
}
