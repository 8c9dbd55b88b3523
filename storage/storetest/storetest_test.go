package storetest_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/externaltest"
	"github.com/fabcommons/fabcommons/storage/mongo"
	"github.com/fabcommons/fabcommons/storage/sqlite"
	"github.com/fabcommons/fabcommons/storage/storetest"
)

func openSQLite(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fab.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openMongo(t *testing.T, uri string) *mongo.DB {
	t.Helper()
	ctx := context.Background()
	db, err := mongo.OpenDatabase(ctx, uri, externaltest.UniqueName("storetest_"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Drop(ctx)
		db.Close()
	})
	return db
}

func TestStoreConformance(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		storetest.ExerciseAccounts(t, func(t *testing.T) account.Store { return openSQLite(t).Accounts() })
		storetest.ExerciseLeases(t, func(t *testing.T) storage.Leases { return openSQLite(t).Leases() })
		storetest.ExerciseQuotas(t, func(t *testing.T) storage.Quotas { return openSQLite(t).Quotas() })
		storetest.ExerciseWebhooks(t, func(t *testing.T) webhook.Store { return openSQLite(t).Webhooks() })
		storetest.ExerciseFederation(t, func(t *testing.T) federation.Store { return openSQLite(t).Federation() })
		storetest.ExerciseCatalog(t, func(t *testing.T) catalog.Store { return openSQLite(t).Catalog() })
		storetest.ExerciseFabrication(t, func(t *testing.T) fabrication.Store { return openSQLite(t).Fabrication() })
		storetest.ExercisePhotos(t, func(t *testing.T) (catalog.Store, fabrication.Store) {
			db := openSQLite(t)
			return db.Catalog(), db.Fabrication()
		})
		storetest.ExerciseLedger(t, func(t *testing.T) (fabrication.Store, func() fabrication.Store) {
			path := filepath.Join(t.TempDir(), "fab.db")
			open := func() fabrication.Store {
				db, err := sqlite.Open(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db.Fabrication()
			}
			return open(), open
		})
	})
	t.Run("mongodb", func(t *testing.T) {
		t.Parallel()
		uri := externaltest.NeedMongoDB(t)
		storetest.ExerciseAccounts(t, func(t *testing.T) account.Store { return openMongo(t, uri).Accounts() })
		storetest.ExerciseLeases(t, func(t *testing.T) storage.Leases { return openMongo(t, uri).Leases() })
		storetest.ExerciseQuotas(t, func(t *testing.T) storage.Quotas { return openMongo(t, uri).Quotas() })
		storetest.ExerciseWebhooks(t, func(t *testing.T) webhook.Store { return openMongo(t, uri).Webhooks() })
		storetest.ExerciseFederation(t, func(t *testing.T) federation.Store { return openMongo(t, uri).Federation() })
		storetest.ExerciseCatalog(t, func(t *testing.T) catalog.Store { return openMongo(t, uri).Catalog() })
		storetest.ExerciseFabrication(t, func(t *testing.T) fabrication.Store { return openMongo(t, uri).Fabrication() })
		storetest.ExercisePhotos(t, func(t *testing.T) (catalog.Store, fabrication.Store) {
			db := openMongo(t, uri)
			return db.Catalog(), db.Fabrication()
		})
		storetest.ExerciseLedger(t, func(t *testing.T) (fabrication.Store, func() fabrication.Store) {
			first := openMongo(t, uri)
			return first.Fabrication(), func() fabrication.Store {
				db, err := mongo.OpenDatabase(context.Background(), uri, first.Name())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db.Fabrication()
			}
		})
	})
}
