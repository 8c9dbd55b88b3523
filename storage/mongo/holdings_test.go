package mongo

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/fabcommons/fabcommons/fabrication"
)

// A claim committed to the revision log whose writer died (the database went away)
// before making it live leaves the live job queued. The machine's next poll must not
// forget the claim: once it is rolled forward (by the next writer of the job), the
// machine's holdings still list the job, so the poll after gives it back at once
// instead of leaving it assigned to a machine whose agent never heard of it until the
// lease runs out.
func TestHoldingOfAClaimNotYetLive(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	f := db.Fabrication()
	ctx := context.Background()
	queued := fabrication.Job{ID: "j1", LabID: "lab", State: fabrication.JobQueued}
	if err := db.casReplace(ctx, "jobs", queued.ID, 0, toJobDoc(queued, 1)); err != nil {
		t.Fatal(err)
	}
	claimed := queued
	claimed.State, claimed.MachineID, claimed.Holding = fabrication.JobAssigned, "m1", true
	// SaveJob up to its commit: the holdings entry, then the revision record.
	if err := f.noteHolding(ctx, claimed); err != nil {
		t.Fatal(err)
	}
	if _, err := db.db.Collection(revlog).InsertOne(ctx, bson.M{"_id": revKey("jobs", claimed.ID, 2), "coll": "jobs", "doc_id": claimed.ID,
		"rev": 2, "doc": toJobDoc(claimed, 2), "at": time.Now()}); err != nil {
		t.Fatal(err)
	}

	if held, err := f.HeldJobs(ctx, "m1"); err != nil || len(held) != 0 {
		t.Fatalf("before the claim is live: got %v, %v; want no job held yet", held, err)
	}
	if err := db.rollForward(ctx, "jobs", claimed.ID, 2); err != nil {
		t.Fatal(err)
	}
	held, err := f.HeldJobs(ctx, "m1")
	if err != nil || len(held) != 1 || held[0].ID != claimed.ID {
		t.Fatalf("once the claim is live: got %v, %v; want job %s held by m1", held, err, claimed.ID)
	}
}
