package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
)

// TestSaveJobAddUsage: a job's end and its machine time are written together, and
// neither when the job changed since it was read.
func TestSaveJobAddUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "fab.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f := db.Fabrication()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if err := f.CreateLab(ctx, fabrication.Lab{ID: "lab", Slug: "lab", Name: "Lab", CreatedAt: t0},
		fabrication.Member{LabID: "lab", UserID: "u-ada", Handle: "ada", Role: fabrication.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	j := fabrication.Job{ID: "j1", OrderID: "o1", LabID: "lab", DesignID: "d1", RequesterID: "u-ada", State: fabrication.JobPrinting,
		EnqueuedAt: t0, UpdatedAt: t0}
	if err := f.CreateOrder(ctx, fabrication.Order{ID: "o1", LabID: "lab", RequesterID: "u-ada"}, []fabrication.Job{j}); err != nil {
		t.Fatal(err)
	}
	usage := func() float64 {
		u, err := f.Usage(ctx, "lab")
		if err != nil {
			t.Fatal(err)
		}
		return u["u-ada"].Seconds
	}
	done := j
	done.State = fabrication.JobDone
	if err := f.SaveJobAddUsage(ctx, done, 5, 90, t0); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("from a rev the job is not at: got %v, want a conflict", err)
	}
	if got, _ := f.Job(ctx, "j1"); got.State != fabrication.JobPrinting || usage() != 0 {
		t.Fatalf("after a conflict: job %s, usage %g s; want printing, 0 s", got.State, usage())
	}
	if err := f.SaveJobAddUsage(ctx, done, 0, 90, t0); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Job(ctx, "j1"); got.State != fabrication.JobDone || got.Rev != 1 || usage() != 90 {
		t.Fatalf("after the save: job %s at rev %d, usage %g s; want done at rev 1, 90 s", got.State, got.Rev, usage())
	}
}
