package mongo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/fabcommons/fabcommons/storage"
)

// Quotas implements storage.Quotas.
type Quotas struct{ db *DB }

var _ storage.Quotas = Quotas{}

// Quotas returns the quota counters of db.
func (db *DB) Quotas() Quotas { return Quotas{db} }

type quotaDoc struct {
	ID    string    `bson:"_id"` // key@window start
	Key   string    `bson:"key"`
	Start time.Time `bson:"start"`
	Used  int64     `bson:"used"`
	Rev   int       `bson:"rev"`
}

// Use reads the counter by _id and commits the next revision with the amount added
// (see casReplace): of several hubs adding at once, each commit is checked against
// the limit on the value it read.
func (q Quotas) Use(ctx context.Context, key string, amount, limit int64, now time.Time, window time.Duration) (_ bool, _ int64, err error) {
	defer normalize(&err)
	start := now.Truncate(window)
	id := key + "@" + strconv.FormatInt(start.UnixNano(), 10)
	for range 50 {
		var d quotaDoc
		err := q.db.db.Collection("quotas").FindOne(ctx, bson.M{"_id": id}).Decode(&d)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			d = quotaDoc{ID: id, Key: key, Start: start}
		case err != nil:
			return false, 0, fmt.Errorf("quota %s: %w", key, err)
		}
		if d.Used+amount > limit {
			return false, d.Used, nil
		}
		next := d
		next.Used, next.Rev = d.Used+amount, d.Rev+1
		err = q.db.casReplace(ctx, "quotas", id, d.Rev, next)
		if errors.Is(err, storage.ErrConflict) {
			continue // another hub added first: read again
		}
		if err != nil {
			return false, 0, fmt.Errorf("quota %s: %w", key, err)
		}
		return true, next.Used, nil
	}
	return false, 0, fmt.Errorf("quota %s: too much contention: %w", key, storage.ErrUnavailable)
}
