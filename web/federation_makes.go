package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
)

// LocalDesign is a visible design of this hub's own, which a make at another hub names.
func (f fedDesigns) LocalDesign(ctx context.Context, slug string) (catalog.Design, error) {
	d, v, err := f.Design(ctx, catalog.Actor{}, slug)
	if err != nil {
		return catalog.Design{}, err
	}
	if v == nil || d.Remote() {
		return catalog.Design{}, fmt.Errorf("design %s is not a visible design of this hub: %w", slug, storage.ErrNotFound)
	}
	return d, nil
}

// readyToMake fetches and analyses a remote design's meshes for the make page, as an
// order does (printables.readyToMake).
func (s *Server) readyToMake(ctx context.Context, d catalog.Design, v catalog.Version) (catalog.Version, error) {
	p := printables{catalog: s.catalog, budget: s.analysis}
	if s.fed != nil {
		p.fetch = s.fed
	}
	return p.readyToMake(ctx, d, v)
}

// madeQueue is how many done jobs may wait to be looked at for a make to tell another
// hub of; past it, one is dropped (logged) and the makes since it are looked at again.
const madeQueue = 1024

// What a look at the recent makes covers (see tellMakes): on start, the jobs done in
// the 10 minutes before the latest, at most a thousand of each lab.
const (
	makesLookBack   = 10 * time.Minute
	makesLookPerLab = 1000
)

// makes carries done jobs from the fabrication feed to tellMakes.
type makes struct {
	done  chan fabrication.Job
	again chan struct{} // a job was dropped: look at the makes since it again
	mu    sync.Mutex
	since time.Time // when the oldest job dropped since the last look was done
}

func newMakes() *makes {
	return &makes{done: make(chan fabrication.Job, madeQueue), again: make(chan struct{}, 1)}
}

// tapMakes has every job that is done wait in m, for tellMakes.
func tapMakes(feed *fabrication.Feed, m *makes, log *slog.Logger) {
	feed.Tap(func(c fabrication.Change) {
		if c.Job == nil || c.Job.State != fabrication.JobDone {
			return
		}
		select {
		case m.done <- *c.Job:
		default:
			log.Warn("federation: too many makes waiting; the makes since this one will be looked at again", "job", c.Job.ID)
			m.drop(*c.Job)
		}
	})
}

// drop notes that job j was not told of: the makes since it are to be looked at again.
func (m *makes) drop(j fabrication.Job) {
	m.mu.Lock()
	if m.since.IsZero() || j.UpdatedAt.Before(m.since) {
		m.since = j.UpdatedAt
	}
	m.mu.Unlock()
	select {
	case m.again <- struct{}{}:
	default:
	}
}

// dropped takes the time of the oldest job dropped since the last call.
func (m *makes) dropped() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	since := m.since
	m.since = time.Time{}
	return since
}

// tellMakes tells the origin of each remote design a lab here made (a job done) of
// the make, until ctx ends: the fabrication record of a design is on its own hub.
//
// The feed that tells it of jobs done is in memory: a job saved done in the moment
// before the hub stopped, or dropped when too many wait, is never heard of. So the
// makes are looked at again (retellMakes) when the hub starts, those of the 10 minutes
// before the latest job done, and after a drop, those since the job dropped; apart
// from the loop that tells of jobs as they are done, which goes on meanwhile. The
// origin keeps a make once, by its job's id: one told twice is one make there.
func (h *Hub) tellMakes(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		switch latest, err := h.Fab.Orders.LatestMade(ctx); {
		case err != nil:
			h.log.Warn("federation: the recent makes are not looked at again", "err", err)
		case !latest.IsZero():
			h.retellMakes(ctx, latest.Add(-makesLookBack))
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-h.made.again:
				// A drop whose time an earlier wake took leaves none: nothing to look at.
				if since := h.made.dropped(); !since.IsZero() {
					h.retellMakes(ctx, since)
				}
			}
		}
	})
	local := map[string]bool{} // designs known to be this hub's own: most jobs' designs
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-h.made.done:
			if len(local) >= 10_000 {
				clear(local)
			}
			h.tellMake(ctx, j, local)
		}
	}
}

// retellMakes tells the origins of the remote designs made here since since (see
// tellMakes).
func (h *Hub) retellMakes(ctx context.Context, since time.Time) {
	jobs, err := h.Fab.Orders.RecentlyDone(ctx, since, makesLookPerLab)
	if err != nil {
		h.log.Warn("federation: the recent makes are not looked at again", "err", err)
		return
	}
	local := map[string]bool{}
	for _, j := range jobs {
		if ctx.Err() != nil {
			return
		}
		h.tellMake(ctx, j, local)
	}
}

// tellMake sends the make of job j to its design's origin, if its design is remote.
// local keeps the designs found to be this hub's own (a design never changes hubs).
func (h *Hub) tellMake(ctx context.Context, j fabrication.Job, local map[string]bool) {
	if local[j.DesignID] {
		return
	}
	d, _, err := h.Catalog.Design(ctx, catalog.Actor{Admin: true}, j.DesignSlug)
	if err != nil || d.ID != j.DesignID || !d.Remote() {
		if err == nil && d.ID == j.DesignID {
			local[d.ID] = true
		}
		return // a design of this hub's own (its record is here), or gone
	}
	lab, err := h.Fab.Labs.LabByID(ctx, j.LabID)
	if err != nil {
		h.log.Warn("federation: a make is not told: its lab is not found", "job", j.ID, "err", err)
		return
	}
	ended := j.UpdatedAt
	if j.FinishedAt != nil {
		ended = *j.FinishedAt
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = h.Fed.SendMake(ctx, federation.Made{JobID: j.ID, Lab: lab.Slug, Design: *d.Origin, Version: j.Version, File: j.File, EndedAt: ended})
	if err != nil {
		h.log.Warn("federation: a make is not told to its design's hub", "job", j.ID, "design", d.Origin.Object, "err", err)
	}
}

// maxRemoteMakes is how many makes at other hubs a design's page and API list.
const maxRemoteMakes = 100

// designRecord is a design's fabrication record: how often each lab here made it, and
// its latest makes at other hubs' labs (none without fabrication or federation).
func (s *Server) designRecord(ctx context.Context, d catalog.Design) ([]fabrication.LabRecord, []federation.RemoteMake, error) {
	labs, remote := []fabrication.LabRecord{}, []federation.RemoteMake{}
	var err error
	if s.orders != nil {
		if labs, err = s.orders.DesignRecord(ctx, d.ID); err != nil {
			return nil, nil, err
		}
	}
	if s.fed != nil && !d.Remote() {
		if remote, err = s.fed.RemoteMakes(ctx, d.ID, maxRemoteMakes); err != nil {
			return nil, nil, err
		}
		if remote == nil {
			remote = []federation.RemoteMake{}
		}
	}
	return labs, remote, nil
}

// designMakes: GET /api/v1/designs/{slug}/makes -> {labs, remote}: the design's
// fabrication record, by lab here, and its makes at other hubs' labs, the latest first.
func (s *Server) designMakes(c *gin.Context) {
	d, _, err := s.catalog.Design(c.Request.Context(), actorOf(c), c.Param("slug"))
	if err != nil {
		s.fail(c, err)
		return
	}
	labs, remote, err := s.designRecord(c.Request.Context(), d)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"labs": labs, "remote": remote})
}
