package mongo

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/externaltest"
)

func openTestDB(t *testing.T) *DB {
	t.Helper()
	uri := externaltest.NeedMongoDB(t)
	ctx := context.Background()
	db, err := OpenDatabase(ctx, uri, externaltest.UniqueName("mongo_"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Drop(context.Background()); db.Close() })
	return db
}

type thing struct {
	ID   string `bson:"_id"`
	Rev  int    `bson:"rev"`
	Note string `bson:"note"`
}

func liveThing(t *testing.T, db *DB) thing {
	t.Helper()
	var got thing
	if err := db.db.Collection("things").FindOne(context.Background(), bson.M{"_id": "a"}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

// A writer whose replace lands after a newer revision went live puts the newer one
// back before it returns; one that finds a newer revision live writes nothing.
func TestLateWriteIsRepaired(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	ctx := context.Background()
	one, two := thing{"a", 1, "first"}, thing{"a", 2, "second"}
	if err := db.casReplace(ctx, "things", "a", 0, one); err != nil {
		t.Fatal(err)
	}
	if err := db.casReplace(ctx, "things", "a", 1, two); err != nil {
		t.Fatal(err)
	}
	if err := db.casReplace(ctx, "things", "a", 1, thing{"a", 2, "other"}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a second writer of revision 2: got %v, want ErrConflict", err)
	}
	if err := db.materialize(ctx, "things", "a", 1, one); err != nil {
		t.Fatal(err)
	}
	if got := liveThing(t, db); got != two {
		t.Fatalf("after a late writer found revision 2 live: got %+v", got)
	}
	// The late write lands (between its writer's check and replace, revision 2 went
	// live); the writer then goes on to look for newer revisions.
	if _, err := db.db.Collection("things").ReplaceOne(ctx, bson.M{"_id": "a"}, one); err != nil {
		t.Fatal(err)
	}
	if err := db.materialize(ctx, "things", "a", 1, one); err != nil {
		t.Fatal(err)
	}
	if got := liveThing(t, db); got != two {
		t.Fatalf("after a late write: got %+v, want revision 2 back", got)
	}
}

// A winner that crashed between its commit and its write is rolled forward by the
// next writer, which still loses.
func TestCrashedWinnerRolledForward(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	ctx := context.Background()
	if err := db.casReplace(ctx, "things", "a", 0, thing{"a", 1, "first"}); err != nil {
		t.Fatal(err)
	}
	crashed := thing{"a", 2, "committed, never written"}
	if _, err := db.db.Collection(revlog).InsertOne(ctx, bson.M{"_id": revKey("things", "a", 2), "coll": "things", "doc_id": "a", "rev": 2, "doc": crashed, "at": time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := db.casReplace(ctx, "things", "a", 1, thing{"a", 2, "late"}); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("got %v, want ErrConflict", err)
	}
	if got := liveThing(t, db); got != crashed {
		t.Fatalf("got %+v, want the crashed winner's revision", got)
	}
}

// A machine saved before the token side collection existed is still found by its
// token, and is then found the fast way.
func TestMachineTokenFallback(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	ctx := context.Background()
	m := fabrication.Machine{ID: "m1", LabID: "lab", Name: "old", TokenHash: "h1", Tags: []string{}, Materials: []string{}}
	if _, err := db.db.Collection("machines").InsertOne(ctx, machineDoc{ID: m.ID, TokenHash: m.TokenHash, Machine: m}); err != nil {
		t.Fatal(err)
	}
	f := db.Fabrication()
	if got, err := f.MachineByTokenHash(ctx, "h1"); err != nil || got.ID != "m1" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if n, err := db.db.Collection("machine_tokens").CountDocuments(ctx, bson.M{"_id": "h1", "machine_id": "m1"}); err != nil || n != 1 {
		t.Fatalf("token entry after the first lookup: %d, %v", n, err)
	}
	if _, err := f.MachineByTokenHash(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown token: got %v", err)
	}
}

// Concurrent additions to one requester's usage all count.
func TestUsageUnderContention(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	ctx := context.Background()
	f := db.Fabrication()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for range 24 {
		wg.Go(func() {
			if err := f.AddUsage(ctx, "lab", "ada", 10, at); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	u, err := f.Usage(ctx, "lab")
	if err != nil {
		t.Fatal(err)
	}
	if got := u["ada"].At(at); math.Abs(got-240) > 1e-6 {
		t.Fatalf("usage after 24 additions of 10 s: got %v, want 240", got)
	}
	// Shards written at different times decay to the same figure as one record.
	if err := f.AddUsage(ctx, "lab", "ada", 60, at.Add(fabrication.UsageHalfLife)); err != nil {
		t.Fatal(err)
	}
	u, _ = f.Usage(ctx, "lab")
	if got := u["ada"].At(at.Add(fabrication.UsageHalfLife)); math.Abs(got-180) > 1e-6 {
		t.Fatalf("a half-life later: got %v, want 120 + 60", got)
	}
}
