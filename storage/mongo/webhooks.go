package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/storage"
)

// Webhooks implements webhook.Store.
type Webhooks struct{ db *DB }

var _ webhook.Store = Webhooks{}

// Webhooks returns the webhook store of db.
func (db *DB) Webhooks() Webhooks { return Webhooks{db} }

func (w Webhooks) hooks() *mongo.Collection      { return w.db.db.Collection("webhooks") }
func (w Webhooks) deliveries() *mongo.Collection { return w.db.db.Collection("webhook_deliveries") }

type hookDoc struct {
	ID        string    `bson:"_id"`
	OwnerID   string    `bson:"owner_id"`
	LabID     string    `bson:"lab_id"`
	Lab       string    `bson:"lab"`
	URL       string    `bson:"url"`
	Events    []string  `bson:"events"`
	Secret    string    `bson:"secret"` // kept as it is: the hub signs with it
	CreatedAt time.Time `bson:"created_at"`
	Hub       bool      `bson:"hub,omitempty"`
}

func (d hookDoc) hook() webhook.Hook {
	return webhook.Hook{ID: d.ID, OwnerID: d.OwnerID, LabID: d.LabID, Lab: d.Lab, URL: d.URL, Events: d.Events, Secret: d.Secret, CreatedAt: d.CreatedAt.UTC(), Hub: d.Hub}
}

type deliveryDoc struct {
	ID            string    `bson:"_id"`
	HookID        string    `bson:"hook_id"`
	Event         string    `bson:"event"`
	Payload       string    `bson:"payload"`
	State         string    `bson:"state"`
	Attempts      int       `bson:"attempts"`
	NextAttemptAt time.Time `bson:"next_attempt_at"`
	LastStatus    int       `bson:"last_status"`
	LastError     string    `bson:"last_error"`
	CreatedAt     time.Time `bson:"created_at"`
	UpdatedAt     time.Time `bson:"updated_at"`
}

func (d deliveryDoc) delivery() webhook.Delivery {
	return webhook.Delivery{ID: d.ID, HookID: d.HookID, Event: d.Event, Payload: []byte(d.Payload), State: d.State,
		Attempts: d.Attempts, NextAttemptAt: d.NextAttemptAt.UTC(), LastStatus: d.LastStatus, LastError: d.LastError,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
}

func (w Webhooks) CreateHook(ctx context.Context, h webhook.Hook) (err error) {
	defer normalize(&err)
	_, err = w.hooks().InsertOne(ctx, hookDoc{ID: h.ID, OwnerID: h.OwnerID, LabID: h.LabID, Lab: h.Lab, URL: h.URL,
		Events: h.Events, Secret: h.Secret, CreatedAt: h.CreatedAt, Hub: h.Hub})
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	return nil
}

func (w Webhooks) Hook(ctx context.Context, id string) (_ webhook.Hook, err error) {
	defer normalize(&err)
	var d hookDoc
	if err := w.hooks().FindOne(ctx, bson.M{"_id": id}).Decode(&d); err != nil {
		return webhook.Hook{}, fmt.Errorf("webhook %s: %w", id, mapErr(err))
	}
	return d.hook(), nil
}

func (w Webhooks) findHooks(ctx context.Context, filter bson.M) ([]webhook.Hook, error) {
	cur, err := w.hooks().Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var docs []hookDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]webhook.Hook, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.hook())
	}
	return out, nil
}

func (w Webhooks) Hooks(ctx context.Context, ownerID string) (_ []webhook.Hook, err error) {
	defer normalize(&err)
	hs, err := w.findHooks(ctx, bson.M{"owner_id": ownerID})
	if err != nil {
		return nil, fmt.Errorf("webhooks of %s: %w", ownerID, err)
	}
	return hs, nil
}

func (w Webhooks) HooksFor(ctx context.Context, event, labID, ownerID string, hub bool) (_ []webhook.Hook, err error) {
	defer normalize(&err)
	var or bson.A
	if labID != "" {
		or = append(or, bson.M{"lab_id": labID})
	}
	if ownerID != "" {
		or = append(or, bson.M{"lab_id": "", "hub": bson.M{"$ne": true}, "owner_id": ownerID})
	}
	if hub {
		or = append(or, bson.M{"hub": true})
	}
	if len(or) == 0 {
		return nil, nil
	}
	hs, err := w.findHooks(ctx, bson.M{"events": event, "$or": or})
	if err != nil {
		return nil, fmt.Errorf("webhooks for %s: %w", event, err)
	}
	return hs, nil
}

// DeleteHook deletes the hook, then its deliveries. Without transactions (FerretDB has
// none) a crash between the two leaves deliveries of no hook; they are never sent, as
// each attempt reads its hook first.
func (w Webhooks) DeleteHook(ctx context.Context, id string) (err error) {
	defer normalize(&err)
	res, err := w.hooks().DeleteOne(ctx, bson.M{"_id": id})
	if err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete webhook %s: %w", id, storage.ErrNotFound)
	}
	if _, err := w.deliveries().DeleteMany(ctx, bson.M{"hook_id": id}); err != nil {
		return fmt.Errorf("delete the deliveries of webhook %s: %w", id, err)
	}
	return nil
}

// AddDelivery checks that the hook is there first; one deleted between the check and
// the insert leaves a delivery that is never sent (see DeleteHook).
func (w Webhooks) AddDelivery(ctx context.Context, d webhook.Delivery) (err error) {
	defer normalize(&err)
	if err := w.hooks().FindOne(ctx, bson.M{"_id": d.HookID}).Err(); err != nil {
		return fmt.Errorf("add a delivery to webhook %s: %w", d.HookID, mapErr(err))
	}
	_, err = w.deliveries().InsertOne(ctx, deliveryDoc{ID: d.ID, HookID: d.HookID, Event: d.Event, Payload: string(d.Payload),
		State: d.State, Attempts: d.Attempts, NextAttemptAt: d.NextAttemptAt, LastStatus: d.LastStatus, LastError: d.LastError,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt})
	if err != nil {
		return fmt.Errorf("add a delivery to webhook %s: %w", d.HookID, err)
	}
	return nil
}

func (w Webhooks) findDeliveries(ctx context.Context, filter bson.M, sort bson.D, limit int) ([]webhook.Delivery, error) {
	cur, err := w.deliveries().Find(ctx, filter, options.Find().SetSort(sort).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	var docs []deliveryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]webhook.Delivery, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.delivery())
	}
	return out, nil
}

func (w Webhooks) DueDeliveries(ctx context.Context, now time.Time, limit int) (_ []webhook.Delivery, err error) {
	defer normalize(&err)
	ds, err := w.findDeliveries(ctx, bson.M{"state": webhook.Pending, "next_attempt_at": bson.M{"$lte": now}},
		bson.D{{Key: "next_attempt_at", Value: 1}, {Key: "_id", Value: 1}}, limit)
	if err != nil {
		return nil, fmt.Errorf("due webhook deliveries: %w", err)
	}
	return ds, nil
}

func (w Webhooks) SaveAttempt(ctx context.Context, d webhook.Delivery) (err error) {
	defer normalize(&err)
	res, err := w.deliveries().UpdateOne(ctx, bson.M{"_id": d.ID}, bson.M{"$set": bson.M{
		"state": d.State, "attempts": d.Attempts, "next_attempt_at": d.NextAttemptAt,
		"last_status": d.LastStatus, "last_error": d.LastError, "updated_at": d.UpdatedAt}})
	if err != nil {
		return fmt.Errorf("save webhook delivery %s: %w", d.ID, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("save webhook delivery %s: %w", d.ID, storage.ErrNotFound)
	}
	return nil
}

func (w Webhooks) PruneDeliveries(ctx context.Context, before time.Time) (_ int64, err error) {
	defer normalize(&err)
	res, err := w.deliveries().DeleteMany(ctx, bson.M{"state": bson.M{"$ne": webhook.Pending}, "updated_at": bson.M{"$lt": before}})
	if err != nil {
		return 0, fmt.Errorf("prune webhook deliveries: %w", err)
	}
	return res.DeletedCount, nil
}

func (w Webhooks) Deliveries(ctx context.Context, hookID string, limit int) (_ []webhook.Delivery, err error) {
	defer normalize(&err)
	ds, err := w.findDeliveries(ctx, bson.M{"hook_id": hookID}, bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, limit)
	if err != nil {
		return nil, fmt.Errorf("deliveries of webhook %s: %w", hookID, err)
	}
	return ds, nil
}
