package fabrication

import (
	"context"
	mrand "math/rand/v2"
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
	// taken are the jobs this hub handed to claims: zero while the claim is under
	// way, then when it ended. A read of the queue that began before a claim ended
	// may still show its job as queued; such jobs are left out of the head, or the
	// next polls would each spend a write (and a trip through the one SQLite writer)
	// on a compare-and-set that cannot succeed. Under load-agents at 2,000 jobs/s those
	// lost claims were more than half the writes of jobs. They are kept per lab (lab
	// id, then job id): a lab's reads are one at a time, so a read may forget its
	// lab's claims that ended before it began; another lab's read under way may not.
	taken map[string]map[string]time.Time
	// reading are the labs whose queue is being read, and noted the jobs this hub
	// queued (noteQueued) meanwhile: the read may not show them, and its head
	// replaces the one they were added to, so they are added to its head too.
	reading map[string]bool
	noted   map[string][]Job
}

type queueHead struct {
	jobs     []Job            // in the store's queue order: priority, then age, then id
	usage    map[string]Usage // the lab's fair-share figures, read with the jobs
	complete bool             // the read returned the whole queue, not just its head
	readAt   time.Time        // wall-clock age, whatever clock the service is given
}

// queueHeadTTL bounds a cached head's age.
const queueHeadTTL = 250 * time.Millisecond

// takeQueued removes from the lab's cached queue head, and returns, the job machine m
// should get next: the first in the lab's order of service that fits m, picked at
// random among jobs the order cannot tell apart. Polls this hub serves at the same
// time so get different jobs instead of all trying the same compare-and-set, which all
// but one lose (with 1,000 agents, losing claims were most of the hub's claim work);
// the random pick among ties keeps several hubs from racing for the same job. ok is
// false when no job in the head fits m.
func (s *jobBook) takeQueued(ctx context.Context, m Machine) (j Job, ok bool, err error) {
	h, err := s.freshHead(ctx, m.LabID)
	if err != nil {
		return Job{}, false, err
	}
	now := s.now()
	q := &s.queues
	q.mu.Lock()
	defer q.mu.Unlock()
	best, ties := -1, 0
	for i := range h.jobs {
		if fit, _ := Fits(h.jobs[i], m); !fit {
			continue
		}
		c := -1
		if best >= 0 {
			c = serviceCompare(h.jobs[i], h.jobs[best], h.usage, now)
		}
		switch {
		case c < 0:
			best, ties = i, 1
		case c == 0:
			ties++
			if mrand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	if best < 0 {
		return Job{}, false, nil
	}
	j = h.jobs[best]
	h.jobs = slices.Delete(h.jobs, best, best+1)
	if q.taken == nil {
		q.taken = map[string]map[string]time.Time{}
	}
	if q.taken[j.LabID] == nil {
		q.taken[j.LabID] = map[string]time.Time{}
	}
	q.taken[j.LabID][j.ID] = time.Time{}
	return j, true, nil
}

// claimEnded says the claim of job j that takeQueued handed out has ended, however it
// ended: a read of the queue that begins later shows the job as it is.
func (s *jobBook) claimEnded(j Job) {
	q := &s.queues
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.taken[j.LabID][j.ID]; ok {
		q.taken[j.LabID][j.ID] = time.Now()
	}
}

// freshHead returns the lab's cached head when it is fresh and still of use (it has
// jobs, or it held the whole queue, which may be empty), and reads a new one otherwise.
func (s *jobBook) freshHead(ctx context.Context, labID string) (*queueHead, error) {
	q := &s.queues
	q.mu.Lock()
	h := q.labs[labID]
	fresh := h != nil && time.Since(h.readAt) < queueHeadTTL && (len(h.jobs) > 0 || h.complete)
	q.mu.Unlock()
	if fresh {
		return h, nil
	}
	// When the head runs out, every polling machine finds it empty at once; they share
	// one read (on FerretDB each read is a scan of the jobs: fifty at once took seconds).
	// The read is not canceled with the first waiter's request.
	read, err, _ := q.reads.Do(labID, func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		q.mu.Lock()
		if q.reading == nil {
			q.reading, q.noted = map[string]bool{}, map[string][]Job{}
		}
		q.reading[labID] = true
		began := time.Now()
		q.mu.Unlock()
		defer func() {
			q.mu.Lock()
			delete(q.reading, labID)
			delete(q.noted, labID)
			q.mu.Unlock()
		}()
		jobs, err := s.store.Queued(ctx, labID, claimWindow)
		if err != nil {
			return nil, err
		}
		usage, err := s.store.Usage(ctx, labID)
		if err != nil {
			return nil, err
		}
		h := &queueHead{usage: usage, complete: len(jobs) < claimWindow, readAt: time.Now()}
		q.mu.Lock()
		defer q.mu.Unlock()
		taken := q.taken[labID]
		isTaken := func(j Job) bool {
			ended, ok := taken[j.ID]
			return ok && (ended.IsZero() || ended.After(began))
		}
		h.jobs = slices.DeleteFunc(jobs, isTaken)
		for _, j := range q.noted[labID] { // queued while the read was under way
			if !isTaken(j) {
				h.insert(j)
			}
		}
		for id, ended := range taken { // no read of the lab that begins from now on needs these
			if !ended.IsZero() && ended.Before(began) {
				delete(taken, id)
			}
		}
		if q.labs == nil {
			q.labs = map[string]*queueHead{}
		}
		q.labs[labID] = h
		return h, nil
	})
	if err != nil {
		return nil, err
	}
	return read.(*queueHead), nil
}

// noteQueued adds a job this hub just queued to the lab's cached head when it belongs
// there: when the head holds the whole queue, or when the job sorts before the head's
// last entry. A job that sorts after a partial head is left to the next read, so the
// cache never serves a newer job before an older one it has not seen.
func (s *jobBook) noteQueued(j Job) {
	j.Events = nil // the head carries no logs, as Store.Queued returns none
	q := &s.queues
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.reading[j.LabID] && len(q.noted[j.LabID]) < maxNoted {
		q.noted[j.LabID] = append(q.noted[j.LabID], j)
	}
	if h := q.labs[j.LabID]; h != nil {
		h.insert(j)
	}
}

// maxNoted bounds the jobs noted for one lab during one read: four times what a head
// holds. Past it, a job waits for the next read (at most queueHeadTTL).
const maxNoted = 4 * claimWindow

// insert adds j to the head where it belongs (see noteQueued).
func (h *queueHead) insert(j Job) {
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
