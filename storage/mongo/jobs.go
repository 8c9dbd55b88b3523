package mongo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
)

type orderDoc struct {
	ID                string `bson:"_id"`
	RequesterID       string `bson:"requester_id"`
	fabrication.Order `bson:",inline"`
}

type jobDoc struct {
	ID              string `bson:"_id"`
	RequesterID     string `bson:"requester_id"`
	Holding         bool   `bson:"holding"`
	LeaseHash       string `bson:"lease_hash"`
	Rev             int    `bson:"rev"`
	fabrication.Job `bson:",inline"`
}

func toJobDoc(j fabrication.Job, rev int) jobDoc {
	if j.Events == nil {
		j.Events = []fabrication.Event{}
	}
	return jobDoc{ID: j.ID, RequesterID: j.RequesterID, Holding: j.Holding, LeaseHash: j.LeaseHash, Rev: rev, Job: j}
}

func (d jobDoc) job() fabrication.Job {
	j := d.Job
	j.RequesterID, j.Holding, j.LeaseHash, j.Rev = d.RequesterID, d.Holding, d.LeaseHash, d.Rev
	for _, t := range []**time.Time{&j.LeaseExpires, &j.StartedAt, &j.FinishedAt} {
		if *t != nil {
			u := (**t).UTC()
			*t = &u
		}
	}
	j.EnqueuedAt, j.CreatedAt, j.UpdatedAt = j.EnqueuedAt.UTC(), j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	if j.Events == nil {
		j.Events = []fabrication.Event{}
	}
	for i := range j.Events {
		j.Events[i].At = j.Events[i].At.UTC()
	}
	for i := range j.Photos {
		j.Photos[i].At = j.Photos[i].At.UTC()
	}
	return j
}

// CreateOrder inserts the jobs, then the order: a crash between leaves jobs whose
// order page is missing but which are made all the same, rather than an empty order.
func (f Fabrication) CreateOrder(ctx context.Context, o fabrication.Order, jobs []fabrication.Job) (err error) {
	defer normalize(&err)
	docs := make([]any, len(jobs))
	for i, j := range jobs {
		docs[i] = toJobDoc(j, 0)
	}
	if len(docs) > 0 {
		if _, err := f.c("jobs").InsertMany(ctx, docs); err != nil {
			return mapErr(err)
		}
	}
	_, err = f.c("orders").InsertOne(ctx, orderDoc{ID: o.ID, RequesterID: o.RequesterID, Order: o})
	return mapErr(err)
}

func (f Fabrication) Order(ctx context.Context, id string) (_ fabrication.Order, err error) {
	defer normalize(&err)
	var d orderDoc
	if err := f.c("orders").FindOne(ctx, bson.M{"_id": id}).Decode(&d); err != nil {
		return fabrication.Order{}, mapErr(err)
	}
	return d.order(), nil
}

func (d orderDoc) order() fabrication.Order {
	o := d.Order
	o.RequesterID, o.CreatedAt = d.RequesterID, o.CreatedAt.UTC()
	return o
}

func (f Fabrication) Job(ctx context.Context, id string) (_ fabrication.Job, err error) {
	defer normalize(&err)
	var d jobDoc
	if err := f.c("jobs").FindOne(ctx, bson.M{"_id": id}).Decode(&d); err != nil {
		return fabrication.Job{}, mapErr(err)
	}
	return d.job(), nil
}

// SaveJob commits revision prevRev+1 of the job: exactly one of two racing writers wins
// (see casReplace).
func (f Fabrication) SaveJob(ctx context.Context, j fabrication.Job, prevRev int) (err error) {
	defer normalize(&err)
	if err := f.noteHolding(ctx, j); err != nil {
		return err
	}
	return f.db.casReplace(ctx, "jobs", j.ID, prevRev, toJobDoc(j, prevRev+1))
}

// Holdings: which jobs may occupy which machine. Every poll asks which jobs its machine
// holds; FerretDB answers a query on the jobs collection by reading all of it, so the
// Mongo store keeps a small side collection with one entry per (machine, job) that was
// ever held and is not yet known to be let go. A job comes to hold a machine only by
// being assigned to it, and the entry is written before that revision is committed,
// so the entries are a superset of the truth: HeldJobs reads each job by _id, keeps
// those that really hold the machine, and deletes the entries of jobs that are over or
// went elsewhere.

type holdingDoc struct {
	ID        string `bson:"_id"` // machine/job
	MachineID string `bson:"machine_id"`
	JobID     string `bson:"job_id"`
}

func (f Fabrication) noteHolding(ctx context.Context, j fabrication.Job) error {
	if !j.Holding || j.MachineID == "" || j.State != fabrication.JobAssigned {
		return nil // later revisions of a holding job keep the entry its assignment wrote
	}
	id := j.MachineID + "/" + j.ID
	return f.db.upsert(ctx, "holdings", id, holdingDoc{ID: id, MachineID: j.MachineID, JobID: j.ID})
}

// ClaimJob reads the stored log (a lookup by _id, fast even on FerretDB), appends e and
// commits the next revision.
func (f Fabrication) ClaimJob(ctx context.Context, j fabrication.Job, prevRev int, e fabrication.Event) (err error) {
	defer normalize(&err)
	stored, err := f.Job(ctx, j.ID)
	if err != nil {
		return err
	}
	if stored.Rev != prevRev {
		return fmt.Errorf("job %s changed: %w", j.ID, storage.ErrConflict)
	}
	j.Events = fabrication.AppendEvent(stored.Events, e)
	return f.SaveJob(ctx, j, prevRev)
}

func (f Fabrication) jobs(ctx context.Context, filter bson.M, opts *options.FindOptionsBuilder) ([]fabrication.Job, error) {
	docs, err := findAll[jobDoc](ctx, f.c("jobs"), filter, opts)
	out := make([]fabrication.Job, len(docs))
	for i, d := range docs {
		out[i] = d.job()
	}
	return out, err
}

var noEvents = bson.M{"events": 0}

func (f Fabrication) JobsOfOrder(ctx context.Context, orderID string) (_ []fabrication.Job, err error) {
	defer normalize(&err)
	return f.jobs(ctx, bson.M{"order_id": orderID}, options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "file", Value: 1}, {Key: "copy", Value: 1}}))
}

func (f Fabrication) Queued(ctx context.Context, labID string, limit int) (_ []fabrication.Job, err error) {
	defer normalize(&err)
	return f.jobs(ctx, bson.M{"lab_id": labID, "state": fabrication.JobQueued}, options.Find().SetProjection(noEvents).
		SetSort(bson.D{{Key: "priority", Value: -1}, {Key: "enqueued_at", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit)))
}

func (f Fabrication) DesignJobs(ctx context.Context, designID string, states []string, limit int) (_ []fabrication.Job, err error) {
	defer normalize(&err)
	return f.jobs(ctx, bson.M{"design_id": designID, "state": in(states)}, options.Find().SetProjection(noEvents).
		SetSort(bson.D{{Key: "enqueued_at", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit)))
}

func (f Fabrication) LabJobs(ctx context.Context, labID string, states []string, limit int) (_ []fabrication.Job, err error) {
	defer normalize(&err)
	return f.jobs(ctx, bson.M{"lab_id": labID, "state": in(states)}, options.Find().SetProjection(noEvents).
		SetSort(bson.D{{Key: "updated_at", Value: -1}}).SetLimit(int64(limit)))
}

// HeldJobs reads the machine's holdings and each of their jobs by _id (see
// holdingDoc). An entry whose job no longer holds this machine is deleted, unless a
// newer revision of the job is committed and not yet live (see casReplace); were the
// machine to take that same job again at that very moment, its entry could go with it,
// and the job would then be missed here until the machine's agent reports it or its
// lease runs out: both end in the same place as this check.
func (f Fabrication) HeldJobs(ctx context.Context, machineID string) (_ []fabrication.Job, err error) {
	defer normalize(&err)
	entries, err := findAll[holdingDoc](ctx, f.c("holdings"), bson.M{"machine_id": machineID}, nil)
	if err != nil {
		return nil, err
	}
	var out []fabrication.Job
	for _, e := range entries {
		j, err := f.Job(ctx, e.JobID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		if err == nil && j.Holding && j.MachineID == machineID {
			j.Events = nil // as the other queries: no logs
			out = append(out, j)
			continue
		}
		if err == nil {
			// A newer revision committed but not yet live (its writer died between the
			// two, the database going away) may be the claim that wrote this entry:
			// keep the entry until that revision is live and says otherwise.
			next, err := f.db.revision(ctx, "jobs", j.ID, j.Rev+1)
			if err != nil {
				return nil, err
			}
			if next != nil {
				continue
			}
		}
		if _, err := f.c("holdings").DeleteOne(ctx, bson.M{"_id": e.ID}); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b fabrication.Job) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f Fabrication) ExpiredLeases(ctx context.Context, now time.Time, limit int) (_ []fabrication.Job, err error) {
	defer normalize(&err)
	return f.jobs(ctx, bson.M{"lease_expires_at": bson.M{"$lt": now},
		"state": bson.M{"$in": bson.A{fabrication.JobAssigned, fabrication.JobPrinting, fabrication.JobCanceled}}},
		options.Find().SetProjection(noEvents).SetLimit(int64(limit)))
}

type usageDoc struct {
	ID          string    `bson:"_id"`
	LabID       string    `bson:"lab_id"`
	RequesterID string    `bson:"requester_id"`
	Seconds     float64   `bson:"seconds"`
	UpdatedAt   time.Time `bson:"updated_at"`
	Rev         int       `bson:"rev"`
}

// Usage sums each requester's usage shards (see AddUsage), decayed to the newest.
func (f Fabrication) Usage(ctx context.Context, labID string) (_ map[string]fabrication.Usage, err error) {
	defer normalize(&err)
	docs, err := findAll[usageDoc](ctx, f.c("usage"), bson.M{"lab_id": labID}, nil)
	out := map[string]fabrication.Usage{}
	for _, d := range docs {
		u := fabrication.Usage{LabID: d.LabID, RequesterID: d.RequesterID, Seconds: d.Seconds, UpdatedAt: d.UpdatedAt.UTC()}
		if prev, ok := out[d.RequesterID]; ok {
			at := u.UpdatedAt
			if prev.UpdatedAt.After(at) {
				at = prev.UpdatedAt
			}
			u.Seconds, u.UpdatedAt = prev.At(at)+u.At(at), at
		}
		out[d.RequesterID] = u
	}
	return out, err
}

// AddUsage adds to a shard picked at random, and tries another when a concurrent
// writer got to the same one first.
func (f Fabrication) AddUsage(ctx context.Context, labID, requesterID string, seconds float64, at time.Time) (err error) {
	defer normalize(&err)
	for range 20 {
		id := fmt.Sprintf("%s:%s:%d", labID, requesterID, rand.IntN(usageShards))
		d := usageDoc{ID: id, LabID: labID, RequesterID: requesterID, UpdatedAt: at}
		err := f.c("usage").FindOne(ctx, bson.M{"_id": id}).Decode(&d)
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return err
		}
		u := fabrication.Usage{Seconds: d.Seconds, UpdatedAt: d.UpdatedAt}
		next := d
		next.Seconds, next.Rev = u.At(at)+seconds, d.Rev+1
		if at.After(d.UpdatedAt) {
			next.UpdatedAt = at
		}
		err = f.db.casReplace(ctx, "usage", id, d.Rev, next)
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		return err
	}
	return fmt.Errorf("usage %s in lab %s: too much contention: %w", requesterID, labID, storage.ErrConflict)
}

func (f Fabrication) DesignJobCounts(ctx context.Context) (_ map[string][2]int, err error) {
	defer normalize(&err)
	return f.countEnded(ctx, bson.M{}, "design_id")
}

func (f Fabrication) DesignLabCounts(ctx context.Context, designID string) (_ map[string][2]int, err error) {
	defer normalize(&err)
	return f.countEnded(ctx, bson.M{"design_id": designID}, "lab_id")
}

// countEnded counts done and failed jobs matching filter, per value of the field by.
func (f Fabrication) countEnded(ctx context.Context, filter bson.M, by string) (map[string][2]int, error) {
	filter["state"] = bson.M{"$in": bson.A{fabrication.JobDone, fabrication.JobFailed}}
	cur, err := f.c("jobs").Find(ctx, filter, options.Find().SetProjection(bson.M{by: 1, "state": 1}))
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	out := map[string][2]int{}
	for cur.Next(ctx) {
		var d bson.M
		if err := cur.Decode(&d); err != nil {
			return nil, err
		}
		key, _ := d[by].(string)
		c := out[key]
		if d["state"] == fabrication.JobDone {
			c[0]++
		} else {
			c[1]++
		}
		out[key] = c
	}
	return out, cur.Err()
}
