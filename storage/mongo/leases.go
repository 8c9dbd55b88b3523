package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fabcommons/fabcommons/storage"
)

// Leases implements storage.Leases.
type Leases struct{ db *DB }

var _ storage.Leases = Leases{}

// Leases returns the named-lease store of db.
func (db *DB) Leases() Leases { return Leases{db} }

// AcquireLease is one conditional upsert: it matches the lease if this holder has it or
// it has expired; if another live holder has it, the upsert's insert collides with the
// existing _id, and that duplicate-key error means "not acquired".
func (l Leases) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	filter := bson.M{"_id": name, "$or": bson.A{bson.M{"holder": holder}, bson.M{"expires_at": bson.M{"$lte": now}}}}
	update := bson.M{"$set": bson.M{"holder": holder, "expires_at": now.Add(ttl)}}
	_, err := l.db.db.Collection("leases").UpdateOne(ctx, filter, update, options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return true, nil
}

func (l Leases) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := l.db.db.Collection("leases").DeleteOne(ctx, bson.M{"_id": name, "holder": holder})
	return err
}
