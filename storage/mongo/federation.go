package mongo

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
)

// Federation implements federation.Store.
type Federation struct{ db *DB }

var _ federation.Store = Federation{}

// Federation returns the federation store of db.
func (db *DB) Federation() Federation { return Federation{db} }

func (f Federation) keys() *mongo.Collection      { return f.db.db.Collection("federation_keys") }
func (f Federation) follows() *mongo.Collection   { return f.db.db.Collection("federation_follows") }
func (f Federation) followers() *mongo.Collection { return f.db.db.Collection("federation_followers") }
func (f Federation) blocks() *mongo.Collection    { return f.db.db.Collection("federation_blocks") }
func (f Federation) makes() *mongo.Collection     { return f.db.db.Collection("federation_makes") }
func (f Federation) deliveries() *mongo.Collection {
	return f.db.db.Collection("federation_deliveries")
}

type keyDoc struct {
	Owner      string    `bson:"_id"`
	PublicPEM  string    `bson:"public_pem"`
	PrivatePEM string    `bson:"private_pem"`
	CreatedAt  time.Time `bson:"created_at"`
}

type followDoc struct {
	ID        string    `bson:"_id"`
	Target    string    `bson:"target"`
	Actor     string    `bson:"actor"`
	Inbox     string    `bson:"inbox"`
	Host      string    `bson:"host"`
	State     string    `bson:"state"`
	CreatedAt time.Time `bson:"created_at"`
	UpdatedAt time.Time `bson:"updated_at"`
}

func (d followDoc) follow() federation.Follow {
	return federation.Follow{ID: d.ID, Target: d.Target, Actor: d.Actor, Inbox: d.Inbox, Host: d.Host, State: d.State,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
}

// followerDoc is keyed by local and actor together, so that a repeated Follow replaces.
type followerDoc struct {
	ID         string    `bson:"_id"` // local + " " + actor
	Local      string    `bson:"local"`
	Actor      string    `bson:"actor"`
	Inbox      string    `bson:"inbox"`
	Host       string    `bson:"host"`
	ActivityID string    `bson:"activity_id"`
	CreatedAt  time.Time `bson:"created_at"`
}

func (d followerDoc) follower() federation.Follower {
	return federation.Follower{Local: d.Local, Actor: d.Actor, Inbox: d.Inbox, Host: d.Host, ActivityID: d.ActivityID, CreatedAt: d.CreatedAt.UTC()}
}

type blockDoc struct {
	Host      string    `bson:"_id"`
	CreatedAt time.Time `bson:"created_at"`
}

func (f Federation) Key(ctx context.Context, owner string) (_ federation.Key, err error) {
	defer normalize(&err)
	var d keyDoc
	if err := f.keys().FindOne(ctx, bson.M{"_id": owner}).Decode(&d); err != nil {
		return federation.Key{}, fmt.Errorf("the key of %s: %w", owner, mapErr(err))
	}
	return federation.Key{Owner: d.Owner, PublicPEM: d.PublicPEM, PrivatePEM: d.PrivatePEM, CreatedAt: d.CreatedAt.UTC()}, nil
}

func (f Federation) AddKey(ctx context.Context, k federation.Key) (err error) {
	defer normalize(&err)
	if _, err := f.keys().InsertOne(ctx, keyDoc{Owner: k.Owner, PublicPEM: k.PublicPEM, PrivatePEM: k.PrivatePEM, CreatedAt: k.CreatedAt}); err != nil {
		return fmt.Errorf("add the key of %s: %w", k.Owner, mapErr(err))
	}
	return nil
}

func (f Federation) AddFollow(ctx context.Context, x federation.Follow) (err error) {
	defer normalize(&err)
	if _, err := f.follows().InsertOne(ctx, followDoc{ID: x.ID, Target: x.Target, Actor: x.Actor, Inbox: x.Inbox, Host: x.Host,
		State: x.State, CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt}); err != nil {
		return fmt.Errorf("follow %s: %w", x.Actor, mapErr(err))
	}
	return nil
}

func (f Federation) Follow(ctx context.Context, id string) (_ federation.Follow, err error) {
	defer normalize(&err)
	var d followDoc
	if err := f.follows().FindOne(ctx, bson.M{"_id": id}).Decode(&d); err != nil {
		return federation.Follow{}, fmt.Errorf("follow %s: %w", id, mapErr(err))
	}
	return d.follow(), nil
}

func (f Federation) Follows(ctx context.Context) (_ []federation.Follow, err error) {
	defer normalize(&err)
	docs, err := findAll[followDoc](ctx, f.follows(), bson.M{}, options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("follows: %w", err)
	}
	out := make([]federation.Follow, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.follow())
	}
	return out, nil
}

func (f Federation) SetFollowState(ctx context.Context, id, state string, at time.Time) (err error) {
	defer normalize(&err)
	res, err := f.follows().UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"state": state, "updated_at": at}})
	if err != nil {
		return fmt.Errorf("set the state of follow %s: %w", id, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("set the state of follow %s: %w", id, storage.ErrNotFound)
	}
	return nil
}

func (f Federation) DeleteFollow(ctx context.Context, id string) (err error) {
	defer normalize(&err)
	res, err := f.follows().DeleteOne(ctx, bson.M{"_id": id})
	if err != nil {
		return fmt.Errorf("delete follow %s: %w", id, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete follow %s: %w", id, storage.ErrNotFound)
	}
	return nil
}

func (f Federation) AddFollower(ctx context.Context, x federation.Follower) (err error) {
	defer normalize(&err)
	id := x.Local + " " + x.Actor
	_, err = f.followers().UpdateOne(ctx, bson.M{"_id": id},
		bson.M{"$set": bson.M{"local": x.Local, "actor": x.Actor, "inbox": x.Inbox, "host": x.Host, "activity_id": x.ActivityID},
			"$setOnInsert": bson.M{"created_at": x.CreatedAt}},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("add follower %s of %s: %w", x.Actor, x.Local, err)
	}
	return nil
}

func (f Federation) RemoveFollower(ctx context.Context, local, actor string) (err error) {
	defer normalize(&err)
	filter := bson.M{"actor": actor}
	if local != "" {
		filter["local"] = local
	}
	if _, err := f.followers().DeleteMany(ctx, filter); err != nil {
		return fmt.Errorf("remove follower %s of %s: %w", actor, local, err)
	}
	return nil
}

func (f Federation) Followers(ctx context.Context, local string) (_ []federation.Follower, err error) {
	defer normalize(&err)
	docs, err := findAll[followerDoc](ctx, f.followers(), bson.M{"local": local}, options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "actor", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("followers of %s: %w", local, err)
	}
	out := make([]federation.Follower, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.follower())
	}
	return out, nil
}

func (f Federation) AddBlock(ctx context.Context, b federation.Block) (err error) {
	defer normalize(&err)
	_, err = f.blocks().UpdateOne(ctx, bson.M{"_id": b.Host}, bson.M{"$setOnInsert": bson.M{"created_at": b.CreatedAt}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("block %s: %w", b.Host, err)
	}
	return nil
}

func (f Federation) Blocks(ctx context.Context) (_ []federation.Block, err error) {
	defer normalize(&err)
	docs, err := findAll[blockDoc](ctx, f.blocks(), bson.M{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("blocks: %w", err)
	}
	out := make([]federation.Block, 0, len(docs))
	for _, d := range docs {
		out = append(out, federation.Block{Host: d.Host, CreatedAt: d.CreatedAt.UTC()})
	}
	return out, nil
}

func (f Federation) RemoveBlock(ctx context.Context, host string) (err error) {
	defer normalize(&err)
	res, err := f.blocks().DeleteOne(ctx, bson.M{"_id": host})
	if err != nil {
		return fmt.Errorf("unblock %s: %w", host, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("unblock %s: %w", host, storage.ErrNotFound)
	}
	return nil
}

func (f Federation) DropHost(ctx context.Context, host string) (err error) {
	defer normalize(&err)
	filter := bson.M{"host": host}
	// A host with no port covers every port of it; one with a port, itself.
	if !strings.Contains(strings.TrimPrefix(host, "["), ":") || strings.HasSuffix(host, "]") {
		filter = bson.M{"$or": bson.A{bson.M{"host": host}, bson.M{"host": bson.M{"$regex": "^" + regexp.QuoteMeta(host) + `:[0-9]+$`}}}}
	}
	for _, c := range []*mongo.Collection{f.follows(), f.followers(), f.makes()} {
		if _, err := c.DeleteMany(ctx, filter); err != nil {
			return fmt.Errorf("drop %s from %s: %w", host, c.Name(), err)
		}
	}
	return nil
}

type fedDeliveryDoc struct {
	ID        string    `bson:"_id"`
	From      string    `bson:"sender"`
	Inbox     string    `bson:"inbox"`
	Hub       string    `bson:"hub"`
	Host      string    `bson:"host"`
	Body      []byte    `bson:"body"`
	Attempts  int       `bson:"attempts"`
	Due       time.Time `bson:"due"`
	CreatedAt time.Time `bson:"created_at"`
}

func (f Federation) AddDelivery(ctx context.Context, d federation.Delivery) (err error) {
	defer normalize(&err)
	if _, err := f.deliveries().InsertOne(ctx, fedDeliveryDoc(d)); err != nil {
		return fmt.Errorf("queue a delivery to %s: %w", d.Inbox, mapErr(err))
	}
	return nil
}

func (f Federation) DueDeliveries(ctx context.Context, now time.Time, limit int) (_ []federation.Delivery, err error) {
	defer normalize(&err)
	// The due deliveries in order; of each destination, the first is taken when it is the
	// first of all that destination's (none before it waits for a retry).
	cur, err := f.deliveries().Find(ctx, bson.M{"due": bson.M{"$lte": now}}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	defer cur.Close(ctx)
	out := []federation.Delivery{}
	seen := map[[2]string]bool{}
	for len(out) < limit && cur.Next(ctx) {
		var d fedDeliveryDoc
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("due deliveries: %w", err)
		}
		dest := [2]string{d.Inbox, d.Hub}
		if seen[dest] {
			continue
		}
		seen[dest] = true
		var head fedDeliveryDoc
		err := f.deliveries().FindOne(ctx, bson.M{"inbox": d.Inbox, "hub": d.Hub}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: 1}})).Decode(&head)
		if err != nil {
			return nil, fmt.Errorf("due deliveries to %s: %w", d.Inbox+d.Hub, mapErr(err))
		}
		if head.ID != d.ID {
			continue // an earlier one waits for its retry
		}
		d.Due, d.CreatedAt = d.Due.UTC(), d.CreatedAt.UTC()
		out = append(out, federation.Delivery(d))
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	return out, nil
}

func (f Federation) CountDeliveries(ctx context.Context, host string) (_ int, err error) {
	defer normalize(&err)
	filter := bson.M{}
	if host != "" {
		filter["host"] = host
	}
	n, err := f.deliveries().CountDocuments(ctx, filter)
	if err != nil {
		return 0, fmt.Errorf("count deliveries: %w", err)
	}
	return int(n), nil
}

func (f Federation) RetryDelivery(ctx context.Context, id string, attempts int, due time.Time) (err error) {
	defer normalize(&err)
	res, err := f.deliveries().UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"attempts": attempts, "due": due}})
	if err != nil {
		return fmt.Errorf("retry delivery %s: %w", id, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("retry delivery %s: %w", id, storage.ErrNotFound)
	}
	return nil
}

func (f Federation) DeleteDelivery(ctx context.Context, id string) (err error) {
	defer normalize(&err)
	if _, err := f.deliveries().DeleteOne(ctx, bson.M{"_id": id}); err != nil {
		return fmt.Errorf("delete delivery %s: %w", id, err)
	}
	return nil
}

// makeDoc is a remote make, keyed by its id (the job's URL on its hub), so that a
// repeated delivery is a duplicate key.
type makeDoc struct {
	ID        string    `bson:"_id"`
	DesignID  string    `bson:"design_id"`
	Version   int       `bson:"version"`
	Host      string    `bson:"host"`
	Lab       string    `bson:"lab"`
	LabName   string    `bson:"lab_name"`
	File      string    `bson:"file"`
	EndedAt   time.Time `bson:"ended_at"`
	CreatedAt time.Time `bson:"created_at"`
}

func (d makeDoc) make() federation.RemoteMake {
	return federation.RemoteMake{ID: d.ID, DesignID: d.DesignID, Version: d.Version, Host: d.Host, Lab: d.Lab, LabName: d.LabName,
		File: d.File, EndedAt: d.EndedAt.UTC(), CreatedAt: d.CreatedAt.UTC()}
}

func (f Federation) AddRemoteMake(ctx context.Context, m federation.RemoteMake) (err error) {
	defer normalize(&err)
	_, err = f.makes().InsertOne(ctx, makeDoc{ID: m.ID, DesignID: m.DesignID, Version: m.Version, Host: m.Host, Lab: m.Lab,
		LabName: m.LabName, File: m.File, EndedAt: m.EndedAt, CreatedAt: m.CreatedAt})
	if err != nil {
		return fmt.Errorf("the make %s: %w", m.ID, mapErr(err))
	}
	return nil
}

func (f Federation) RemoteMakes(ctx context.Context, designID string, limit int) (_ []federation.RemoteMake, err error) {
	defer normalize(&err)
	docs, err := findAll[makeDoc](ctx, f.makes(), bson.M{"design_id": designID},
		options.Find().SetSort(bson.D{{Key: "ended_at", Value: -1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("the makes of %s: %w", designID, err)
	}
	out := make([]federation.RemoteMake, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.make())
	}
	return out, nil
}

func (f Federation) CountRemoteMakes(ctx context.Context, host string) (_ int, err error) {
	defer normalize(&err)
	n, err := f.makes().CountDocuments(ctx, bson.M{"host": host})
	return int(n), err
}

func (f Federation) RemoteMakeCounts(ctx context.Context) (_ map[string]int, err error) {
	defer normalize(&err)
	cur, err := f.makes().Find(ctx, bson.M{}, options.Find().SetProjection(bson.M{"design_id": 1}))
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	out := map[string]int{}
	for cur.Next(ctx) {
		var d struct {
			DesignID string `bson:"design_id"`
		}
		if err := cur.Decode(&d); err != nil {
			return nil, err
		}
		out[d.DesignID]++
	}
	return out, cur.Err()
}
