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

// Compare-and-set by revision records.
//
// A filtered ReplaceOne ({_id, rev: n}) is atomic on MongoDB, but not on FerretDB,
// the MongoDB-wire server the tests run against: measured, two of eight concurrent
// writers both matched. What both do get right is a unique key: of two inserts of the
// same _id exactly one succeeds. So a write of revision n+1 first inserts a record
// "<collection>:<id>:<n+1>" holding the new document — that insert is the commit —
// and then makes it the live document. A writer whose insert collides lost the race;
// before it reports the conflict it waits for the winner's revision to go live, and
// rolls it forward itself when the winner crashed between commit and replace.

const revlog = "revlog"

func revKey(coll, id string, rev int) string { return fmt.Sprintf("%s:%s:%d", coll, id, rev) }

// casReplace commits doc as revision prevRev+1 of coll/id, or returns
// storage.ErrConflict when another writer committed that revision first.
func (db *DB) casReplace(ctx context.Context, coll, id string, prevRev int, doc any) error {
	key := revKey(coll, id, prevRev+1)
	_, err := db.db.Collection(revlog).InsertOne(ctx, bson.M{"_id": key, "coll": coll, "doc_id": id, "rev": prevRev + 1, "doc": doc, "at": time.Now()})
	if mongo.IsDuplicateKeyError(err) {
		if err := db.awaitWinner(ctx, coll, id, prevRev+1); err != nil {
			return err
		}
		return fmt.Errorf("%s %s changed: %w", coll, id, storage.ErrConflict)
	}
	if err != nil {
		return err
	}
	return db.materialize(ctx, coll, id, prevRev+1, doc)
}

// materialize makes committed revision rev (document doc) of coll/id live, unless a
// newer one is live already. Every step is a lookup or a write by _id, the one filter
// FerretDB hands to its storage instead of scanning the collection (a replace filtered
// by {_id, rev} read every document of the collection).
//
// A check followed by a replace is not atomic, so a slow writer can put revision rev
// back over rev+1 (so could FerretDB's own filtered replace, which also checks and then
// writes). Each writer therefore looks, after its replace, for a committed rev+1 and
// makes that live too, and so on until there is none. Revisions are committed in
// order, each before it is written, so once the last writer is done the live document
// is the newest revision: whichever write landed last was followed by a look that
// found nothing newer, and anything committed after that look is written after it.
// A reader may meanwhile see the older revision; a write based on it conflicts at the
// commit, as any stale write does.
func (db *DB) materialize(ctx context.Context, coll, id string, rev int, doc any) error {
	c := db.db.Collection(coll)
	for {
		live, found, err := db.liveRev(ctx, coll, id)
		if err != nil {
			return err
		}
		if found && live > rev {
			return nil // a newer revision is live; its writer looks further
		}
		if !found || live < rev {
			_, err := c.ReplaceOne(ctx, bson.M{"_id": id}, doc, options.Replace().SetUpsert(true))
			if mongo.IsDuplicateKeyError(err) {
				continue // two first inserts met: look again
			}
			if err != nil {
				return err
			}
		}
		next, err := db.revision(ctx, coll, id, rev+1)
		if err != nil || next == nil {
			return err
		}
		rev, doc = rev+1, next
	}
}

// upsert writes doc as coll/id, inserting it if need be. Of two first inserts of the
// same id one fails on the unique key; both wrote the same entry, so that is no error.
// (Only for side entries whose every writer writes the same thing; documents with
// revisions go through casReplace.)
func (db *DB) upsert(ctx context.Context, coll, id string, doc any) error {
	_, err := db.db.Collection(coll).ReplaceOne(ctx, bson.M{"_id": id}, doc, options.Replace().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		return nil
	}
	return err
}

// liveRev returns the revision of coll/id's live document, and whether there is one.
func (db *DB) liveRev(ctx context.Context, coll, id string) (int, bool, error) {
	var live struct {
		Rev int `bson:"rev"`
	}
	err := db.db.Collection(coll).FindOne(ctx, bson.M{"_id": id}, options.FindOne().SetProjection(bson.M{"rev": 1})).Decode(&live)
	if err == mongo.ErrNoDocuments {
		return 0, false, nil
	}
	return live.Rev, err == nil, err
}

// winnerGrace is how long a writer that lost a race waits for the winner to make its
// revision live before doing it for the winner (which then has surely crashed).
const winnerGrace = 2 * time.Second

// awaitWinner waits until revision rev of coll/id, or a newer one, is live, and rolls
// it forward itself only when the winner has not done so within winnerGrace. Rolling
// forward at once was a race on FerretDB, which checks a replace's filter and writes it
// in two steps: a loser's roll-forward of revision n could land after n+1 was live
// (seen in CI: a finished job shown as active after the run).
func (db *DB) awaitWinner(ctx context.Context, coll, id string, rev int) error {
	deadline := time.Now().Add(winnerGrace)
	for {
		live, found, err := db.liveRev(ctx, coll, id)
		if err != nil {
			return err
		}
		if found && live >= rev {
			return nil
		}
		if time.Now().After(deadline) {
			return db.rollForward(ctx, coll, id, rev)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// rollForward makes sure revision rev of coll/id, or a newer one, is live.
func (db *DB) rollForward(ctx context.Context, coll, id string, rev int) error {
	live, found, err := db.liveRev(ctx, coll, id)
	if err != nil || (found && live >= rev) {
		return err
	}
	doc, err := db.revision(ctx, coll, id, rev)
	if err != nil || doc == nil {
		return err
	}
	return db.materialize(ctx, coll, id, rev, doc)
}

// claimOnce records that name happened, once: true for the one caller whose insert
// of the marker succeeded.
func (db *DB) claimOnce(ctx context.Context, name string) (bool, error) {
	_, err := db.db.Collection(revlog).InsertOne(ctx, bson.M{"_id": "once:" + name, "at": time.Now()})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	return err == nil, err
}

// PruneRevisions deletes revision records older than age once their revision (or a
// newer one) is live; the maintenance cron calls it. One-time markers are kept.
func (db *DB) PruneRevisions(ctx context.Context, age time.Duration) (_ int, err error) {
	defer normalize(&err)
	cur, err := db.db.Collection(revlog).Find(ctx, bson.M{"at": bson.M{"$lt": time.Now().Add(-age)}, "coll": bson.M{"$exists": true}})
	if err != nil {
		return 0, err
	}
	defer cur.Close(ctx)
	n := 0
	for cur.Next(ctx) {
		var e struct {
			ID    string `bson:"_id"`
			Coll  string `bson:"coll"`
			DocID string `bson:"doc_id"`
			Rev   int    `bson:"rev"`
		}
		if err := cur.Decode(&e); err != nil {
			return n, err
		}
		if err := db.rollForward(ctx, e.Coll, e.DocID, e.Rev); err != nil {
			return n, err
		}
		if _, err := db.db.Collection(revlog).DeleteOne(ctx, bson.M{"_id": e.ID}); err != nil {
			return n, err
		}
		n++
	}
	return n, cur.Err()
}

// revision returns the committed document of revision rev, or nil if there is none.
func (db *DB) revision(ctx context.Context, coll, id string, rev int) (bson.Raw, error) {
	var entry struct {
		Doc bson.Raw `bson:"doc"`
	}
	err := db.db.Collection(revlog).FindOne(ctx, bson.M{"_id": revKey(coll, id, rev)}).Decode(&entry)
	if err == mongo.ErrNoDocuments {
		return nil, nil
	}
	return entry.Doc, err
}
