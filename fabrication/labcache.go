package fabrication

import (
	"context"
	"sync"
	"time"
)

// labCache keeps labs by id for a moment, for the agents' hot path: a job's claim and
// its end each read the lab (its job-hours limit, harvest rule, credit policy and
// account), three reads a job that at a thousand agents kept SQLite's one writer
// waiting on the allocator the readers share. A lab changes only by SetPolicy, which
// drops its entry on this hub; another hub replica's change is seen here within
// labCacheTTL.
type labCache struct {
	mu     sync.Mutex
	byID   map[string]cachedLab
	forgot map[string]time.Time
}

type cachedLab struct {
	lab    Lab
	readAt time.Time // wall clock
}

const (
	labCacheTTL = time.Second
	labCacheMax = 10_000
)

type labReader interface {
	LabByID(ctx context.Context, id string) (Lab, error)
}

// labByID is store.LabByID through the cache.
func (c *labCache) labByID(ctx context.Context, store labReader, id string) (Lab, error) {
	c.mu.Lock()
	e, ok := c.byID[id]
	c.mu.Unlock()
	if ok && time.Since(e.readAt) < labCacheTTL {
		return e.lab, nil
	}
	readAt := time.Now()
	lab, err := store.LabByID(ctx, id)
	if err != nil {
		return Lab{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil || len(c.byID) >= labCacheMax {
		c.byID = map[string]cachedLab{}
	}
	if !readAt.Before(c.forgot[id]) { // a read begun before a change is not kept
		c.byID[id] = cachedLab{lab: lab, readAt: readAt}
	}
	return lab, nil
}

// forget drops lab id after a change of it was stored.
func (c *labCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgot == nil || len(c.forgot) >= labCacheMax {
		c.forgot = map[string]time.Time{}
	}
	c.forgot[id] = time.Now()
	delete(c.byID, id)
}
