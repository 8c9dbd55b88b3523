package fabrication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

// jobBook keeps jobs for Orders and Scheduler alike: every change to a job goes through
// change, and this hub's cached heads of the labs' queues live here (queuecache.go).
type jobBook struct {
	core
	store  jobsStore
	queues queueHeads
	ledger *Ledger
}

// jobsStore is what the job book reads and writes.
type jobsStore interface {
	Job(ctx context.Context, id string) (Job, error)
	SaveJob(ctx context.Context, j Job, prevRev int) error
	AddUsage(ctx context.Context, labID, requesterID string, seconds float64, at time.Time) error
	Queued(ctx context.Context, labID string, limit int) ([]Job, error)
	Usage(ctx context.Context, labID string) (map[string]Usage, error)
	LabByID(ctx context.Context, id string) (Lab, error)
	Labs(ctx context.Context) ([]Lab, error)
	LabJobs(ctx context.Context, labID string, states []string, limit int) ([]Job, error)
}

// JobUsageSaver is a store that writes a job and adds its machine time to the
// requester's fair-share usage in one write (SQLite: one trip through its one writer,
// where a job's end otherwise waited for two, one after the other). A store without it
// gets SaveJob, then AddUsage.
type JobUsageSaver interface {
	SaveJobAddUsage(ctx context.Context, j Job, prevRev int, seconds float64, at time.Time) error
}

func (b *jobBook) publishJob(j Job) {
	if j.State == JobQueued {
		b.noteQueued(j)
	}
	j.Events = nil // the log is fetched with the job; changes stay small
	b.feed.Publish(Change{Kind: "job", LabID: j.LabID, OrderID: j.OrderID, Job: &j})
}

// change reads job id, computes its next state with next (pure: it may refuse, but
// reads nothing) and saves it with a compare-and-set on its rev, from a fresh read
// when another writer got there first. The saved job is published and the effects
// carried out.
func (b *jobBook) change(ctx context.Context, id string, next func(j Job, now time.Time) (Job, Effects, error)) (Job, Effects, error) {
	for range 20 {
		j, err := b.store.Job(ctx, id)
		if err != nil {
			return Job{}, Effects{}, fmt.Errorf("job %s: %w", id, err)
		}
		now := b.clock()
		nj, fx, err := next(j, now)
		if err != nil {
			return j, Effects{}, err
		}
		nj.UpdatedAt = now
		saver, together := b.store.(JobUsageSaver)
		together = together && fx.UsedSeconds > 0
		if together {
			err = saver.SaveJobAddUsage(ctx, nj, j.Rev, fx.UsedSeconds, now)
		} else {
			err = b.store.SaveJob(ctx, nj, j.Rev)
		}
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			return Job{}, Effects{}, fmt.Errorf("save job %s: %w", id, err)
		}
		nj.Rev = j.Rev + 1
		b.publishJob(nj)
		done := fx
		if together {
			done.UsedSeconds = 0 // counted
		}
		b.carryOut(ctx, nj, done)
		return nj, fx, nil
	}
	return Job{}, Effects{}, fmt.Errorf("job %s changed too often while we tried: %w", id, storage.ErrConflict)
}

// carryOut does what a transition asked beyond the job: machine time is counted for
// fair share, and a freed machine or a queued job wakes the lab's waiting agents.
func (b *jobBook) carryOut(ctx context.Context, j Job, fx Effects) {
	if fx.UsedSeconds > 0 {
		if err := b.store.AddUsage(ctx, j.LabID, j.RequesterID, fx.UsedSeconds, b.clock()); err != nil {
			b.log.Warn("fair-share usage not recorded", "job", j.ID, "err", err)
		}
	}
	if fx.Ends {
		if err := b.settle(ctx, j, fx.Made, false); err != nil {
			// The hold stays open; SettleEnded closes it on its next round.
			b.log.Warn("ledger: job not settled", "job", j.ID, "err", err)
		}
	}
	if fx.Released || fx.WorkAvailable {
		b.feed.WorkAvailable(j.LabID, 1)
	}
}

// settle ends a job's machine time in the ledger: paid, recorded as given, or its hold
// released (made 0). A free lab holds nothing, so a job it did not make needs no entry
// (a hold left from before the lab stopped charging is released by SettleEnded).
func (b *jobBook) settle(ctx context.Context, j Job, made time.Duration, always bool) error {
	lab, err := b.labs.labByID(ctx, b.store, j.LabID)
	if err != nil {
		return err
	}
	// Paid as ordered: a lab that changes its policy changes it for new orders only.
	st := Settlement{Job: j.ID, Requester: UserAccount(j.Requester), Lab: LabAccount(lab.Slug),
		Made: minutesOf(made), Charge: j.Charged}
	switch {
	case always:
	case !st.Charge && st.Made == 0:
		return nil
	case !st.Charge:
		b.ledger.Record(st) // written soon, in a batch: making does not wait on the chain
		return nil
	}
	_, err = b.ledger.Close(ctx, st)
	return err
}

// rules are the transition rules for jobs of a lab.
func (b *jobBook) rules(lab Lab) Rules {
	return Rules{HarvestConfirm: lab.Policy.HarvestConfirm, MaxFailures: b.opts.MaxAttempts, LeaseTTL: b.opts.LeaseTTL}
}

// RecentlyDone lists the jobs done since since, at most perLab of each lab's latest:
// what a hub looks at again after a restart, for news of them it may not have sent
// (a job saved done in the moment before the hub stopped).
func (b *jobBook) RecentlyDone(ctx context.Context, since time.Time, perLab int) ([]Job, error) {
	return b.latest(ctx, []string{JobDone}, since, perLab)
}

// LatestMade is when the latest job made at a lab here (done, or awaiting its
// harvest) was saved so; zero when none was.
func (b *jobBook) LatestMade(ctx context.Context) (time.Time, error) {
	jobs, err := b.latest(ctx, []string{JobDone, JobAwaitingHarvest}, time.Time{}, 1)
	var at time.Time
	for _, j := range jobs {
		if j.UpdatedAt.After(at) {
			at = j.UpdatedAt
		}
	}
	return at, err
}

// latest lists, lab by lab, the jobs in states updated since since, at most perLab of
// each lab's latest.
func (b *jobBook) latest(ctx context.Context, states []string, since time.Time, perLab int) ([]Job, error) {
	labs, err := b.store.Labs(ctx)
	if err != nil {
		return nil, err
	}
	var out []Job
	for _, lab := range labs {
		jobs, err := b.store.LabJobs(ctx, lab.ID, states, perLab)
		if err != nil {
			return nil, err
		}
		for _, j := range jobs { // the latest updated first
			if j.UpdatedAt.Before(since) {
				break
			}
			out = append(out, j)
		}
	}
	return out, nil
}
