package fabrication

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// queueHeads keeps, per lab, the head of the queue as this hub last read it, so that
// the polls of hundreds of agents share one read instead of each reading the same
// rows (under load that read was a sixth of the hub's CPU; on FerretDB every read is a
// scan). It is only a hint: a claim is still a compare-and-set on the job's revision,
// so a stale entry costs one write that matches nothing and is then dropped. Entries
// expire after queueHeadTTL, which bounds how long work queued through another hub
// replica stays unseen here; work queued through this hub is seen at once.
type queueHeads struct {
	mu    sync.Mutex
	labs  map[string]*queueHead
	reads singleflight.Group // one read of a lab's queue at a time, shared by all who wait
}

type queueHead struct {
	jobs     []Job     // in the store's queue order: priority, then age, then id
	complete bool      // the read returned the whole queue, not just its head
	readAt   time.Time // wall-clock age, whatever clock the service is given
}

// queueHeadTTL bounds a cached head's age.
const queueHeadTTL = 250 * time.Millisecond

// head returns a copy of the lab's queue head (at most claimWindow jobs), from the cache
// when it is fresh and not used up.
func (s *Service) queueHead(ctx context.Context, labID string) ([]Job, error) {
	q := &s.queues
	q.mu.Lock()
	h := q.labs[labID]
	if h != nil && len(h.jobs) > 0 && time.Since(h.readAt) < queueHeadTTL {
		jobs := slices.Clone(h.jobs)
		q.mu.Unlock()
		return jobs, nil
	}
	q.mu.Unlock()
	// When the head runs out, every polling machine finds it empty at once; they share
	// one read (on FerretDB each read is a scan of the jobs: fifty at once took seconds).
	// The read is not canceled with the first waiter's request.
	read, err, _ := q.reads.Do(labID, func() (any, error) {
		jobs, err := s.store.Queued(context.WithoutCancel(ctx), labID, claimWindow)
		if err != nil {
			return nil, err
		}
		q.mu.Lock()
		if q.labs == nil {
			q.labs = map[string]*queueHead{}
		}
		q.labs[labID] = &queueHead{jobs: jobs, complete: len(jobs) < claimWindow, readAt: time.Now()}
		q.mu.Unlock()
		return slices.Clone(jobs), nil
	})
	if err != nil {
		return nil, err
	}
	return slices.Clone(read.([]Job)), nil
}

// dropQueued removes a job from the lab's cached head: it was claimed, or it is no
// longer what the cache says.
func (s *Service) dropQueued(labID, jobID string) {
	q := &s.queues
	q.mu.Lock()
	defer q.mu.Unlock()
	if h := q.labs[labID]; h != nil {
		h.jobs = slices.DeleteFunc(h.jobs, func(j Job) bool { return j.ID == jobID })
	}
}

// noteQueued adds a job this hub just queued to the lab's cached head when it belongs
// there: when the head holds the whole queue, or when the job sorts before the head's
// last entry. A job that sorts after a partial head is left to the next read, so the
// cache never serves a newer job before an older one it has not seen.
func (s *Service) noteQueued(j Job) {
	q := &s.queues
	q.mu.Lock()
	defer q.mu.Unlock()
	h := q.labs[j.LabID]
	if h == nil {
		return
	}
	h.jobs = slices.DeleteFunc(h.jobs, func(c Job) bool { return c.ID == j.ID })
	if !h.complete && (len(h.jobs) == 0 || !queueLess(j, h.jobs[len(h.jobs)-1])) {
		return
	}
	i, _ := slices.BinarySearchFunc(h.jobs, j, func(a, b Job) int {
		if queueLess(a, b) {
			return -1
		}
		return 1
	})
	j.Events = nil // the head carries no logs, as Store.Queued returns none
	h.jobs = slices.Insert(h.jobs, i, j)
}

// queueLess is the store's queue order (Store.Queued): higher priority, then older,
// then the smaller id.
func queueLess(a, b Job) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if !a.EnqueuedAt.Equal(b.EnqueuedAt) {
		return a.EnqueuedAt.Before(b.EnqueuedAt)
	}
	return a.ID < b.ID
}
