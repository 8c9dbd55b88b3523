package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
)

// Fabrication implements fabrication.Store with single-document atomic operations:
// every change to a job, machine or usage record commits through the revision log
// (cas.go), which lets exactly one of two writers of the same revision win.
type Fabrication struct{ db *DB }

var _ fabrication.Store = Fabrication{}

// Fabrication returns the fabrication store of db.
func (db *DB) Fabrication() Fabrication { return Fabrication{db} }

func (f Fabrication) c(name string) *mongo.Collection { return f.db.db.Collection(name) }

// ---- labs -----------------------------------------------------------------------

type labDoc struct {
	ID              string `bson:"_id"`
	fabrication.Lab `bson:",inline"`
}

type memberDoc struct {
	ID     string `bson:"_id"`
	LabID  string `bson:"lab_id"`
	UserID string `bson:"user_id"`
	Handle string `bson:"handle"`
	Role   string `bson:"role"`
}

func toMemberDoc(m fabrication.Member) memberDoc {
	return memberDoc{ID: m.LabID + ":" + m.UserID, LabID: m.LabID, UserID: m.UserID, Handle: m.Handle, Role: m.Role}
}

func (d memberDoc) member() fabrication.Member {
	return fabrication.Member{LabID: d.LabID, UserID: d.UserID, Handle: d.Handle, Role: d.Role}
}

func (f Fabrication) SetPolicy(ctx context.Context, labID string, p fabrication.Policy) (err error) {
	defer normalize(&err)
	res, err := f.c("labs").UpdateOne(ctx, bson.M{"_id": labID}, bson.M{"$set": bson.M{"policy": p}})
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("lab %s: %w", labID, storage.ErrNotFound)
	}
	return nil
}

// CreateLab inserts the owner's membership first: a crash between the two leaves a
// membership of no lab, which nothing shows, rather than a lab nobody owns.
func (f Fabrication) CreateLab(ctx context.Context, lab fabrication.Lab, owner fabrication.Member) (err error) {
	defer normalize(&err)
	if _, err := f.c("lab_members").ReplaceOne(ctx, bson.M{"_id": owner.LabID + ":" + owner.UserID}, toMemberDoc(owner), options.Replace().SetUpsert(true)); err != nil {
		return err
	}
	if _, err := f.c("labs").InsertOne(ctx, labDoc{ID: lab.ID, Lab: lab}); err != nil {
		return fmt.Errorf("create lab %s: %w", lab.Slug, mapErr(err))
	}
	return nil
}

func (f Fabrication) lab(ctx context.Context, filter bson.M) (fabrication.Lab, error) {
	var d labDoc
	if err := f.c("labs").FindOne(ctx, filter).Decode(&d); err != nil {
		return fabrication.Lab{}, fmt.Errorf("lab: %w", mapErr(err))
	}
	return d.lab(), nil
}

func (d labDoc) lab() fabrication.Lab {
	l := d.Lab
	l.CreatedAt = l.CreatedAt.UTC()
	return l
}

func (f Fabrication) LabBySlug(ctx context.Context, slug string) (_ fabrication.Lab, err error) {
	defer normalize(&err)
	return f.lab(ctx, bson.M{"slug": slug})
}

func (f Fabrication) LabByID(ctx context.Context, id string) (_ fabrication.Lab, err error) {
	defer normalize(&err)
	return f.lab(ctx, bson.M{"_id": id})
}

func (f Fabrication) Labs(ctx context.Context) (_ []fabrication.Lab, err error) {
	defer normalize(&err)
	docs, err := findAll[labDoc](ctx, f.c("labs"), bson.M{}, options.Find().SetSort(bson.D{{Key: "slug", Value: 1}}))
	out := make([]fabrication.Lab, len(docs))
	for i, d := range docs {
		out[i] = d.Lab
		out[i].CreatedAt = out[i].CreatedAt.UTC()
	}
	return out, err
}

func findAll[T any](ctx context.Context, c *mongo.Collection, filter any, opts *options.FindOptionsBuilder) ([]T, error) {
	cur, err := c.Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	out := []T{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (f Fabrication) PutMember(ctx context.Context, m fabrication.Member) (err error) {
	defer normalize(&err)
	_, err = f.c("lab_members").ReplaceOne(ctx, bson.M{"_id": m.LabID + ":" + m.UserID}, toMemberDoc(m), options.Replace().SetUpsert(true))
	return err
}

func (f Fabrication) DeleteMember(ctx context.Context, labID, userID string) (err error) {
	defer normalize(&err)
	res, err := f.c("lab_members").DeleteOne(ctx, bson.M{"_id": labID + ":" + userID})
	if err != nil {
		return err
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("member %s of lab %s: %w", userID, labID, storage.ErrNotFound)
	}
	return nil
}

func (f Fabrication) Member(ctx context.Context, labID, userID string) (_ fabrication.Member, err error) {
	defer normalize(&err)
	var d memberDoc
	if err := f.c("lab_members").FindOne(ctx, bson.M{"_id": labID + ":" + userID}).Decode(&d); err != nil {
		return fabrication.Member{}, mapErr(err)
	}
	return d.member(), nil
}

func (f Fabrication) Members(ctx context.Context, labID string) (_ []fabrication.Member, err error) {
	defer normalize(&err)
	docs, err := findAll[memberDoc](ctx, f.c("lab_members"), bson.M{"lab_id": labID}, options.Find().SetSort(bson.D{{Key: "handle", Value: 1}}))
	out := make([]fabrication.Member, len(docs))
	for i, d := range docs {
		out[i] = d.member()
	}
	return out, err
}

type joinTokenDoc struct {
	ID                    string `bson:"_id"`
	LabID                 string `bson:"lab_id"`
	Hash                  string `bson:"hash"`
	fabrication.JoinToken `bson:",inline"`
}

func (d joinTokenDoc) token() fabrication.JoinToken {
	t := d.JoinToken
	t.LabID, t.Hash, t.CreatedAt = d.LabID, d.Hash, t.CreatedAt.UTC()
	return t
}

func (f Fabrication) CreateJoinToken(ctx context.Context, t fabrication.JoinToken) (err error) {
	defer normalize(&err)
	_, err = f.c("join_tokens").InsertOne(ctx, joinTokenDoc{ID: t.ID, LabID: t.LabID, Hash: t.Hash, JoinToken: t})
	return mapErr(err)
}

func (f Fabrication) JoinTokenByHash(ctx context.Context, hash string) (_ fabrication.JoinToken, err error) {
	defer normalize(&err)
	var d joinTokenDoc
	if err := f.c("join_tokens").FindOne(ctx, bson.M{"hash": hash}).Decode(&d); err != nil {
		return fabrication.JoinToken{}, mapErr(err)
	}
	return d.token(), nil
}

func (f Fabrication) JoinTokens(ctx context.Context, labID string) (_ []fabrication.JoinToken, err error) {
	defer normalize(&err)
	docs, err := findAll[joinTokenDoc](ctx, f.c("join_tokens"), bson.M{"lab_id": labID}, options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}}))
	out := make([]fabrication.JoinToken, len(docs))
	for i, d := range docs {
		out[i] = d.token()
	}
	return out, err
}

func (f Fabrication) RevokeJoinToken(ctx context.Context, labID, id string) (err error) {
	defer normalize(&err)
	res, err := f.c("join_tokens").UpdateOne(ctx, bson.M{"_id": id, "lab_id": labID}, bson.M{"$set": bson.M{"revoked": true}})
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// ---- machines -------------------------------------------------------------------

type machineDoc struct {
	ID                  string `bson:"_id"`
	TokenHash           string `bson:"token_hash"`
	Rev                 int    `bson:"rev"`
	fabrication.Machine `bson:",inline"`
}

func (d machineDoc) machine() fabrication.Machine {
	m := d.Machine
	m.TokenHash, m.Rev, m.CreatedAt = d.TokenHash, d.Rev, m.CreatedAt.UTC()
	if m.LastSeen != nil {
		t := m.LastSeen.UTC()
		m.LastSeen = &t
	}
	return m
}

func (f Fabrication) CreateMachine(ctx context.Context, m fabrication.Machine) (err error) {
	defer normalize(&err)
	if err := f.noteToken(ctx, m); err != nil {
		return err
	}
	_, err = f.c("machines").InsertOne(ctx, machineDoc{ID: m.ID, TokenHash: m.TokenHash, Machine: m})
	return mapErr(err)
}

// Machine tokens: every agent request finds its machine by token hash. FerretDB
// answers any query but one by _id by reading the whole collection, so the token
// hashes are kept as the _id of a side collection as well, written before the machine
// that uses the token; MachineByTokenHash checks the machine still has it.

func (f Fabrication) noteToken(ctx context.Context, m fabrication.Machine) error {
	if m.TokenHash == "" {
		return nil
	}
	return f.db.upsert(ctx, "machine_tokens", m.TokenHash, bson.M{"_id": m.TokenHash, "machine_id": m.ID})
}

func (f Fabrication) machine(ctx context.Context, filter bson.M) (fabrication.Machine, error) {
	var d machineDoc
	if err := f.c("machines").FindOne(ctx, filter).Decode(&d); err != nil {
		return fabrication.Machine{}, mapErr(err)
	}
	return d.machine(), nil
}

func (f Fabrication) Machine(ctx context.Context, id string) (_ fabrication.Machine, err error) {
	defer normalize(&err)
	return f.machine(ctx, bson.M{"_id": id})
}

func (f Fabrication) MachineByTokenHash(ctx context.Context, hash string) (_ fabrication.Machine, err error) {
	defer normalize(&err)
	if hash == "" {
		return fabrication.Machine{}, storage.ErrNotFound
	}
	var t struct {
		MachineID string `bson:"machine_id"`
	}
	err = f.c("machine_tokens").FindOne(ctx, bson.M{"_id": hash}).Decode(&t)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// A machine saved before the side collection existed: find it the slow way once.
		m, err := f.machine(ctx, bson.M{"token_hash": hash})
		if err == nil {
			err = f.noteToken(ctx, m)
		}
		return m, err
	}
	if err != nil {
		return fabrication.Machine{}, err
	}
	m, err := f.Machine(ctx, t.MachineID)
	if err != nil || m.TokenHash != hash {
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			f.c("machine_tokens").DeleteOne(ctx, bson.M{"_id": hash}) // revoked or replaced
			err = storage.ErrNotFound
		}
		return fabrication.Machine{}, err
	}
	return m, nil
}

func (f Fabrication) Machines(ctx context.Context, labID string) (_ []fabrication.Machine, err error) {
	defer normalize(&err)
	docs, err := findAll[machineDoc](ctx, f.c("machines"), bson.M{"lab_id": labID}, options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
	out := make([]fabrication.Machine, len(docs))
	for i, d := range docs {
		out[i] = d.machine()
	}
	return out, err
}

func (f Fabrication) SaveMachine(ctx context.Context, m fabrication.Machine, prevRev int) (err error) {
	defer normalize(&err)
	if err := f.noteToken(ctx, m); err != nil {
		return err
	}
	return f.db.casReplace(ctx, "machines", m.ID, prevRev, machineDoc{ID: m.ID, TokenHash: m.TokenHash, Rev: prevRev + 1, Machine: m})
}

func (f Fabrication) TouchMachine(ctx context.Context, id string, at time.Time, from, to string) (err error) {
	defer normalize(&err)
	if _, err := f.c("machines").UpdateOne(ctx, bson.M{"_id": id, "state": from},
		bson.M{"$set": bson.M{"state": to}}); err != nil {
		return err
	}
	res, err := f.c("machines").UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"last_seen": at}})
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return storage.ErrNotFound
	}
	return nil
}

func (f Fabrication) MarkUnheard(ctx context.Context, before time.Time, from []string, to string) (_ []string, err error) {
	defer normalize(&err)
	filter := bson.M{"state": in(from),
		"$or": bson.A{bson.M{"last_seen": nil}, bson.M{"last_seen": bson.M{"$lt": before}}}}
	docs, err := findAll[machineDoc](ctx, f.c("machines"), filter, options.Find().SetProjection(bson.M{"_id": 1}))
	if err != nil || len(docs) == 0 {
		return nil, err
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	filter["_id"] = in(ids)
	if _, err := f.c("machines").UpdateMany(ctx, filter, bson.M{"$set": bson.M{"state": to}}); err != nil {
		return nil, err
	}
	return ids, nil
}

func (f Fabrication) CreateEnrollment(ctx context.Context, e fabrication.Enrollment) (err error) {
	defer normalize(&err)
	_, err = f.c("enrollments").InsertOne(ctx, bson.M{"_id": e.CodeHash, "machine_id": e.MachineID, "expires_at": e.ExpiresAt, "used": false})
	return mapErr(err)
}

func (f Fabrication) DeleteEnrollments(ctx context.Context, machineIDs []string) (err error) {
	defer normalize(&err)
	if len(machineIDs) == 0 {
		return nil
	}
	_, err = f.c("enrollments").DeleteMany(ctx, bson.M{"machine_id": in(machineIDs)})
	return mapErr(err)
}

// ConsumeEnrollment finds a live code, then spends it with a one-time marker: of two
// agents racing with one code, one inserts the marker.

func (f Fabrication) ConsumeEnrollment(ctx context.Context, codeHash string, now time.Time) (_ string, err error) {
	defer normalize(&err)
	var d struct {
		MachineID string `bson:"machine_id"`
	}
	err = f.c("enrollments").FindOne(ctx, bson.M{"_id": codeHash, "used": false, "expires_at": bson.M{"$gt": now}}).Decode(&d)
	if err != nil {
		return "", mapErr(err)
	}
	won, err := f.db.claimOnce(ctx, "enrollment:"+codeHash)
	if err != nil {
		return "", err
	}
	if !won {
		return "", storage.ErrNotFound
	}
	f.c("enrollments").UpdateOne(ctx, bson.M{"_id": codeHash}, bson.M{"$set": bson.M{"used": true}})
	return d.MachineID, nil
}

// ---- orders and jobs --------------------------------------------------------------

// usageShards is how many records one requester's usage in a lab is spread over. Each
// addition decays and adds as a new revision of one record (FerretDB has no update
// pipelines to do it in one statement, and its $inc is not atomic), so one record per
// requester made every finishing machine of a busy lab queue behind the others.
const usageShards = 16
