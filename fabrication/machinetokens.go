package fabrication

import (
	"sync"
	"time"
)

// machineTokens keeps, for a moment, the machine each agent token names. Every agent
// call is authenticated by its token, and a job's cycle is at least three calls (poll,
// started, finished) plus the poll's re-checks while it waits: at a thousand agents,
// reading the machine from the store for each was over a tenth of the hub's CPU under
// scripts/load-agents.sh. Entries are keyed by the token's hash and live at most
// machineTokenTTL, so a token rotated or a machine retired through another hub replica
// stops working here within that time; on this hub, every write of a machine drops
// its entry at once (forget), and a read that began before the write is not kept.
type machineTokens struct {
	mu     sync.Mutex
	byHash map[string]cachedMachine
	byID   map[string]string    // machine id -> the hash its entry is under
	forgot map[string]time.Time // machine id -> when it was last written
}

type cachedMachine struct {
	m      Machine
	readAt time.Time // wall clock, whatever clock the service is given
}

const (
	machineTokenTTL = 2 * time.Second
	// machineTokensMax bounds the memory: past it the cache starts over.
	machineTokensMax = 50_000
)

func (c *machineTokens) get(hash string) (Machine, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byHash[hash]
	if !ok || time.Since(e.readAt) >= machineTokenTTL {
		return Machine{}, false
	}
	return e.m, true
}

// put keeps m, whose read began at readAt, unless the machine was written since.
func (c *machineTokens) put(hash string, m Machine, readAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byHash == nil || len(c.byHash) >= machineTokensMax || len(c.forgot) >= machineTokensMax {
		c.byHash, c.byID = map[string]cachedMachine{}, map[string]string{}
		if len(c.forgot) >= machineTokensMax { // older than any read in flight
			for id, at := range c.forgot {
				if time.Since(at) > time.Minute {
					delete(c.forgot, id)
				}
			}
		}
	}
	if readAt.Before(c.forgot[m.ID]) {
		return
	}
	if old, ok := c.byID[m.ID]; ok && old != hash {
		delete(c.byHash, old)
	}
	c.byHash[hash], c.byID[m.ID] = cachedMachine{m: m, readAt: readAt}, hash
}

// forget drops machine id after a write of it (its token, state, approval or
// settings) was stored.
func (c *machineTokens) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgot == nil {
		c.forgot = map[string]time.Time{}
	}
	c.forgot[id] = time.Now()
	if h, ok := c.byID[id]; ok {
		delete(c.byHash, h)
		delete(c.byID, id)
	}
}

// seen notes that machine id was heard from at at, as the store was just told: an
// offline machine is idle again.
func (c *machineTokens) seen(id string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.byID[id]
	if !ok {
		return
	}
	e := c.byHash[h]
	e.m.LastSeen = &at
	if e.m.State == MachineOffline {
		e.m.State = MachineIdle
	}
	c.byHash[h] = e
}
