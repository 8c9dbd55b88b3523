package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage/archive"
)

var _ archive.Store = (*DB)(nil)

// Dump reads collection by collection. Without a snapshot (FerretDB has none) a record
// that arrives during the export may be read while the records it depends on were read
// before it came; such records are left out, so that the archive never refers to what
// it does not hold: versions of designs not read (or past the design's latest version
// as read), and jobs of orders not read. The next export has them.
func (db *DB) Dump(ctx context.Context, put func(any) error) (err error) {
	defer normalize(&err)
	latest := map[string]int{} // design id: latest version, as read
	orders, hooks := map[string]bool{}, map[string]bool{}
	f := db.Fabrication()
	steps := []func() error{
		func() error { return dumpAll(ctx, db, "users", byID, func(d userDoc) error { return put(d.user()) }) },
		func() error {
			return dumpAll(ctx, db, "tokens", byID, func(d tokenDoc) error { return put(d.token()) })
		},
		func() error {
			return dumpAll(ctx, db, "designs", byID, func(d designDoc) error {
				latest[d.ID] = d.LatestVersion
				return put(d.design())
			})
		},
		func() error {
			return dumpAll(ctx, db, "versions", bson.D{{Key: "design_id", Value: 1}, {Key: "number", Value: 1}}, func(d versionDoc) error {
				if n, ok := latest[d.DesignID]; !ok || d.Number > n {
					return nil
				}
				return put(d.version())
			})
		},
		func() error {
			return dumpAll(ctx, db, "design_flags", bson.D{{Key: "design_id", Value: 1}, {Key: "user_id", Value: 1}}, func(d flagDoc) error {
				return put(d.flag())
			})
		},
		func() error { return dumpAll(ctx, db, "labs", byID, func(d labDoc) error { return put(d.lab()) }) },
		func() error {
			return dumpAll(ctx, db, "lab_members", bson.D{{Key: "lab_id", Value: 1}, {Key: "user_id", Value: 1}}, func(d memberDoc) error {
				return put(d.member())
			})
		},
		func() error {
			return dumpAll(ctx, db, "join_tokens", byID, func(d joinTokenDoc) error { return put(d.token()) })
		},
		func() error {
			return dumpAll(ctx, db, "machines", byID, func(d machineDoc) error { return put(d.machine()) })
		},
		func() error {
			return dumpAll(ctx, db, "orders", byID, func(d orderDoc) error {
				orders[d.ID] = true
				return put(d.order())
			})
		},
		func() error {
			return dumpAll(ctx, db, "jobs", byID, func(d jobDoc) error {
				if !orders[d.OrderID] {
					return nil
				}
				return put(d.job())
			})
		},
		func() error { return dumpUsage(ctx, f, put) },
		func() error {
			return dumpAll(ctx, db, "ledger", byID, func(d ledgerDoc) error { return put(d.entry()) })
		},
		func() error {
			return dumpAll(ctx, db, "webhooks", byID, func(d hookDoc) error {
				hooks[d.ID] = true
				return put(d.hook())
			})
		},
		func() error {
			return dumpAll(ctx, db, "webhook_deliveries", byID, func(d deliveryDoc) error {
				if !hooks[d.HookID] {
					return nil
				}
				return put(d.delivery())
			})
		},
		func() error {
			return dumpAll(ctx, db, "federation_keys", byID, func(d keyDoc) error {
				return put(federation.Key{Owner: d.Owner, PublicPEM: d.PublicPEM, PrivatePEM: d.PrivatePEM, CreatedAt: d.CreatedAt.UTC()})
			})
		},
		func() error {
			return dumpAll(ctx, db, "federation_follows", byID, func(d followDoc) error { return put(d.follow()) })
		},
		func() error {
			return dumpAll(ctx, db, "federation_followers", bson.D{{Key: "local", Value: 1}, {Key: "actor", Value: 1}}, func(d followerDoc) error {
				return put(d.follower())
			})
		},
		func() error {
			return dumpAll(ctx, db, "federation_blocks", byID, func(d blockDoc) error {
				return put(federation.Block{Host: d.Host, CreatedAt: d.CreatedAt.UTC()})
			})
		},
		func() error {
			return dumpAll(ctx, db, "federation_makes", byID, func(d makeDoc) error { return put(d.make()) })
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

var byID = bson.D{{Key: "_id", Value: 1}}

// dumpAll streams a whole collection, in sort order, through fn.
func dumpAll[T any](ctx context.Context, db *DB, coll string, sort bson.D, fn func(T) error) error {
	cur, err := db.db.Collection(coll).Find(ctx, bson.M{}, options.Find().SetSort(sort))
	if err != nil {
		return fmt.Errorf("read %s: %w", coll, mapErr(err))
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d T
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("read %s: %w", coll, err)
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read %s: %w", coll, mapErr(err))
	}
	return nil
}

// dumpUsage folds each requester's usage shards into one figure, as Usage does.
func dumpUsage(ctx context.Context, f Fabrication, put func(any) error) error {
	labs := map[string]bool{}
	err := dumpAll(ctx, f.db, "usage", byID, func(d usageDoc) error {
		labs[d.LabID] = true
		return nil
	})
	if err != nil {
		return err
	}
	for _, lab := range slices.Sorted(maps.Keys(labs)) {
		us, err := f.Usage(ctx, lab)
		if err != nil {
			return err
		}
		for _, req := range slices.Sorted(maps.Keys(us)) {
			if err := put(us[req]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Load inserts the archive's records. MongoDB (as FerretDB runs it) has no multi-
// document transactions, so a failed import leaves what it loaded: the database is
// then to be dropped before trying again, and import says so.
func (db *DB) Load(ctx context.Context, next func() (any, error)) (err error) {
	defer normalize(&err)
	for _, coll := range []string{"users", "designs"} {
		n, err := db.db.Collection(coll).CountDocuments(ctx, bson.M{}, options.Count().SetLimit(1))
		if err != nil {
			return mapErr(err)
		}
		if n > 0 {
			return archive.ErrNotEmpty
		}
	}
	f := db.Fabrication()
	for {
		v, err := next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w (this database now holds part of the archive: drop it before importing again)", err)
		}
		if err := db.load(ctx, f, v); err != nil {
			return fmt.Errorf("load %T: %w (this database now holds part of the archive: drop it before importing again)", v, mapErr(err))
		}
	}
}

func (db *DB) load(ctx context.Context, f Fabrication, v any) error {
	insert := func(coll string, doc any) error {
		_, err := db.db.Collection(coll).InsertOne(ctx, doc)
		return err
	}
	switch v := v.(type) {
	case account.User:
		if v.Admin {
			if err := insert("meta", bson.M{"_id": "site_admin", "user_id": v.ID}); err != nil {
				return err
			}
		}
		return insert("users", userDoc(v))
	case account.Token:
		return insert("tokens", tokenDoc(v))
	case catalog.Design:
		return insert("designs", toDesignDoc(v))
	case catalog.Version:
		return insert("versions", versionDoc{ID: versionID(v.DesignID, v.Number), Version: v})
	case catalog.Flag:
		return insert("design_flags", toFlagDoc(v))
	case fabrication.Lab:
		return insert("labs", labDoc{ID: v.ID, Lab: v})
	case fabrication.Member:
		return insert("lab_members", toMemberDoc(v))
	case fabrication.JoinToken:
		return insert("join_tokens", joinTokenDoc{ID: v.ID, LabID: v.LabID, Hash: v.Hash, JoinToken: v})
	case fabrication.Machine:
		if err := f.noteToken(ctx, v); err != nil {
			return err
		}
		return insert("machines", machineDoc{ID: v.ID, TokenHash: v.TokenHash, Rev: v.Rev, Machine: v})
	case fabrication.Order:
		return insert("orders", orderDoc{ID: v.ID, RequesterID: v.RequesterID, Order: v})
	case fabrication.Job:
		if v.Holding && v.MachineID != "" { // whatever its state: noteHolding only notes assignments
			id := v.MachineID + "/" + v.ID
			if err := db.upsert(ctx, "holdings", id, holdingDoc{ID: id, MachineID: v.MachineID, JobID: v.ID}); err != nil {
				return err
			}
		}
		return insert("jobs", toJobDoc(v, v.Rev))
	case fabrication.Usage:
		id := strings.Join([]string{v.LabID, v.RequesterID, "0"}, ":") // shard 0 of AddUsage's
		return insert("usage", usageDoc{ID: id, LabID: v.LabID, RequesterID: v.RequesterID, Seconds: v.Seconds, UpdatedAt: v.UpdatedAt})
	case fabrication.LedgerEntry:
		return insert("ledger", ledgerDoc{ID: v.Seq, Closes: v.Closes, LedgerEntry: v})
	case webhook.Hook:
		return db.Webhooks().CreateHook(ctx, v)
	case webhook.Delivery:
		return db.Webhooks().AddDelivery(ctx, v)
	case federation.Key:
		return db.Federation().AddKey(ctx, v)
	case federation.Follow:
		return db.Federation().AddFollow(ctx, v)
	case federation.Follower:
		return db.Federation().AddFollower(ctx, v)
	case federation.Block:
		return db.Federation().AddBlock(ctx, v)
	case federation.RemoteMake:
		return db.Federation().AddRemoteMake(ctx, v)
	}
	return fmt.Errorf("no collection for a %T", v)
}
