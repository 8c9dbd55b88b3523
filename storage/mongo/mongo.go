// Package mongo is the scale-out document store on MongoDB (go.mongodb.org/mongo-driver/v2).
// It uses only single-document atomic operations, unique indexes and simple queries —
// the subset that FerretDB, the MongoDB-wire server the tests run against, supports —
// so the code path the tests exercise is the one production runs.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/fabcommons/fabcommons/storage"
)

// DB is a connected MongoDB database.
type DB struct {
	client *mongo.Client
	db     *mongo.Database
}

// DatabaseName is the database name in a mongodb:// URI's path, or "fabcommons".
func DatabaseName(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "fabcommons"
	}
	if name := strings.Trim(u.Path, "/"); name != "" {
		return name
	}
	return "fabcommons"
}

// Open connects to uri, pings it and ensures the indexes exist.
func Open(ctx context.Context, uri string) (*DB, error) {
	return OpenDatabase(ctx, uri, DatabaseName(uri))
}

// OpenDatabase is Open with the database named explicitly (tests use one each).
func OpenDatabase(ctx context.Context, uri, name string) (*DB, error) {
	// Domain types carry JSON tags only: store them under the same snake_case names.
	bsonOpts := &options.BSONOptions{UseJSONStructTags: true, NilSliceAsEmpty: true}
	// A call waits at most 5 s for a server to send it to (the driver's default is 30 s,
	// unless the URI sets serverSelectionTimeoutMS): while the database is away a request
	// fails with a 503 the client can retry, instead of holding its connection for half
	// a minute (a replica set electing a new primary may show as a few 503s).
	opts := options.Client().SetServerSelectionTimeout(5 * time.Second).ApplyURI(uri)
	client, err := mongo.Connect(opts.SetTimeout(30 * time.Second).SetBSONOptions(bsonOpts))
	if err != nil {
		return nil, fmt.Errorf("connect mongodb: %w", err)
	}
	db := &DB{client: client, db: client.Database(name)}
	if err := db.Ping(ctx); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("ping mongodb: %w", err)
	}
	if err := db.ensureIndexes(ctx); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("ensure mongodb indexes: %w", err)
	}
	if err := db.Accounts().repairSiteAdmin(ctx); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("repair site admin: %w", err)
	}
	return db, nil
}

// Name is the database's name.
func (db *DB) Name() string { return db.db.Name() }

// Close disconnects.
func (db *DB) Close() error { return db.client.Disconnect(context.Background()) }

// Ping checks that the server answers.
func (db *DB) Ping(ctx context.Context) (err error) {
	defer normalize(&err)
	return db.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
}

// Drop deletes the whole database; tests use it to clean up.
func (db *DB) Drop(ctx context.Context) error { return mapErr(db.db.Drop(ctx)) }

type index struct {
	collection string
	keys       bson.D
	unique     bool
}

var indexes = []index{
	{"users", bson.D{{Key: "handle", Value: 1}}, true},
	{"tokens", bson.D{{Key: "hash", Value: 1}}, true},
	{"tokens", bson.D{{Key: "user_id", Value: 1}}, false},
	{"sessions", bson.D{{Key: "expires_at", Value: 1}}, false},
	{"sessions", bson.D{{Key: "user_id", Value: 1}}, false},
	{"designs", bson.D{{Key: "slug", Value: 1}}, true},
	{"designs", bson.D{{Key: "hidden", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
	{"designs", bson.D{{Key: "parent_ids", Value: 1}}, false},
	{"designs", bson.D{{Key: "terms", Value: 1}}, false},
	// Remote designs by their object (not unique: FerretDB has no partial index, and
	// local designs have none; the local slug made from the object is unique instead).
	{"designs", bson.D{{Key: "origin.object", Value: 1}}, false},
	// A tag's or a person's designs, newest first, read in order (a text search's
	// prefix range over terms cannot give the order; its matches are sorted).
	{"designs", bson.D{{Key: "tags", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
	{"designs", bson.D{{Key: "owner", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
	{"versions", bson.D{{Key: "design_id", Value: 1}, {Key: "number", Value: -1}}, true},
	{"labs", bson.D{{Key: "slug", Value: 1}}, true},
	{"lab_members", bson.D{{Key: "lab_id", Value: 1}}, false},
	{"join_tokens", bson.D{{Key: "hash", Value: 1}}, true},
	{"machines", bson.D{{Key: "lab_id", Value: 1}}, false},
	{"enrollments", bson.D{{Key: "machine_id", Value: 1}}, false},
	{"machines", bson.D{{Key: "token_hash", Value: 1}}, false},
	{"jobs", bson.D{{Key: "lab_id", Value: 1}, {Key: "state", Value: 1}, {Key: "priority", Value: -1}, {Key: "enqueued_at", Value: 1}}, false},
	{"jobs", bson.D{{Key: "order_id", Value: 1}}, false},
	{"jobs", bson.D{{Key: "design_id", Value: 1}, {Key: "state", Value: 1}}, false},
	// The lab page's history (LabJobs: newest change first) and a design's record of
	// makes (DesignJobs: oldest first) read these in their sort order, so a real MongoDB
	// stops after a page instead of sorting a lab's whole history in memory.
	{"jobs", bson.D{{Key: "lab_id", Value: 1}, {Key: "updated_at", Value: -1}}, false},
	{"jobs", bson.D{{Key: "design_id", Value: 1}, {Key: "enqueued_at", Value: 1}, {Key: "_id", Value: 1}}, false},
	{"jobs", bson.D{{Key: "machine_id", Value: 1}, {Key: "holding", Value: 1}}, false},
	{"jobs", bson.D{{Key: "lease_expires_at", Value: 1}}, false},
	{"ledger", bson.D{{Key: "closes", Value: 1}}, true},
	{"ledger", bson.D{{Key: "from", Value: 1}, {Key: "_id", Value: 1}}, false},
	{"ledger", bson.D{{Key: "to", Value: 1}, {Key: "_id", Value: 1}}, false},
	{"webhooks", bson.D{{Key: "owner_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
	{"webhooks", bson.D{{Key: "lab_id", Value: 1}}, false},
	{"webhook_deliveries", bson.D{{Key: "state", Value: 1}, {Key: "next_attempt_at", Value: 1}}, false},
	{"webhook_deliveries", bson.D{{Key: "hook_id", Value: 1}, {Key: "created_at", Value: -1}}, false},
	{"federation_follows", bson.D{{Key: "actor", Value: 1}}, true},
	{"federation_follows", bson.D{{Key: "host", Value: 1}}, false},
	{"federation_followers", bson.D{{Key: "local", Value: 1}, {Key: "actor", Value: 1}}, true},
	{"federation_followers", bson.D{{Key: "host", Value: 1}}, false},
	{"federation_deliveries", bson.D{{Key: "due", Value: 1}}, false},
	{"federation_deliveries", bson.D{{Key: "inbox", Value: 1}, {Key: "hub", Value: 1}, {Key: "_id", Value: 1}}, false},
	{"federation_deliveries", bson.D{{Key: "host", Value: 1}}, false},
	{"federation_makes", bson.D{{Key: "design_id", Value: 1}, {Key: "ended_at", Value: -1}}, false},
	{"federation_makes", bson.D{{Key: "host", Value: 1}}, false},
}

// indexBuildWait is how long ensureIndexes lets one index build take. A new index on a
// large collection (the first start after an upgrade that adds one) takes far longer
// than the 30 s any other call may: 100,000 jobs on the MongoDB-wire test server took
// over a minute, and the hub failed to start instead.
const indexBuildWait = 30 * time.Minute

func (db *DB) ensureIndexes(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, indexBuildWait)
	defer cancel()
	for _, ix := range indexes {
		model := mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetUnique(ix.unique)}
		if _, err := db.db.Collection(ix.collection).Indexes().CreateOne(ctx, model); err != nil {
			return fmt.Errorf("%s %v: %w", ix.collection, ix.keys, err)
		}
	}
	return nil
}

// in matches a field against any of vals; no values match nothing (a nil slice would
// be sent as null, which MongoDB refuses in $in).
func in(vals []string) bson.M {
	if vals == nil {
		vals = []string{}
	}
	return bson.M{"$in": vals}
}

// mapErr turns driver errors into storage sentinels: a missing document is
// ErrNotFound, a duplicate key ErrConflict, and a server that cannot be reached or did
// not answer in time (down, restarting, a connection cut mid-call) ErrUnavailable, which
// the hub answers with 503. The driver's error stays in the chain for the log.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrConflict):
		return err // mapped already, deeper down
	case errors.Is(err, mongo.ErrNoDocuments):
		return storage.ErrNotFound
	case mongo.IsDuplicateKeyError(err):
		return fmt.Errorf("%w: %w", storage.ErrConflict, err)
	case unreachable(err):
		return fmt.Errorf("mongodb: %w: %w", storage.ErrUnavailable, err)
	}
	return err
}

// unreachable reports whether err says the server could not be reached or did not
// answer in time: no server selectable, a network error (a connection refused or cut
// mid-call, or the pool cleared after another call's was), or a timeout (the client's
// own, or a deadline of the caller's).
func unreachable(err error) bool {
	var selection topology.ServerSelectionError
	var cleared driver.RetryablePoolError
	return errors.As(err, &selection) || errors.As(err, &cleared) ||
		mongo.IsNetworkError(err) || mongo.IsTimeout(err) || errors.Is(err, io.ErrUnexpectedEOF)
}

// normalize applies mapErr to *errp. Every exported method of the stores defers it, so
// no driver error leaves this package by a path someone forgot to wrap
// (TestEveryCallSaysUnavailable calls them all with the server stopped).
func normalize(errp *error) { *errp = mapErr(*errp) }
