package account

import (
	"slices"
	"sync"
	"time"
)

// Throttle counts failures per key in a fixed window and refuses a key that reached
// its limit until the window ends. It is per hub process: a rate limit, not a record.
type Throttle struct {
	mu      sync.Mutex
	limit   int
	window  time.Duration
	maxKeys int
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	failures int
	resetAt  time.Time
}

// NewThrottle allows limit failures per key per window, tracking at most maxKeys keys.
func NewThrottle(limit int, window time.Duration, maxKeys int) *Throttle {
	return &Throttle{limit: limit, window: window, maxKeys: maxKeys, entries: map[string]*throttleEntry{}}
}

// Wait returns how long key must wait before its next attempt; zero means go ahead.
func (t *Throttle) Wait(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[key]
	if !ok || !now.Before(e.resetAt) {
		return 0
	}
	if e.failures >= t.limit {
		return e.resetAt.Sub(now)
	}
	return 0
}

// Fail records a failure for key.
func (t *Throttle) Fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entry(key, now).failures++
}

// entry is key's live window, a new one when it has none; t.mu is held.
func (t *Throttle) entry(key string, now time.Time) *throttleEntry {
	e, ok := t.entries[key]
	if !ok || !now.Before(e.resetAt) {
		if len(t.entries) >= t.maxKeys {
			t.prune(now)
		}
		e = &throttleEntry{resetAt: now.Add(t.window)}
		t.entries[key] = e
	}
	return e
}

// Take counts an attempt for key before it is made, in one step with the check: an
// attempt over the limit waits (the wait is returned, nothing is counted), so attempts
// sent at once cannot all pass a check made before any of them was counted.
func (t *Throttle) Take(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entry(key, now)
	if e.failures >= t.limit {
		return e.resetAt.Sub(now)
	}
	e.failures++
	return 0
}

// Reset forgets key's failures, after a success.
func (t *Throttle) Reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, key)
}

// prune drops ended windows; if every window is live it drops the tenth that ends
// soonest, so memory stays bounded under a flood of distinct keys without forgetting
// every count at once.
func (t *Throttle) prune(now time.Time) {
	for k, e := range t.entries {
		if !now.Before(e.resetAt) {
			delete(t.entries, k)
		}
	}
	if len(t.entries) < t.maxKeys {
		return
	}
	keys := make([]string, 0, len(t.entries))
	for k := range t.entries {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return t.entries[a].resetAt.Compare(t.entries[b].resetAt) })
	for _, k := range keys[:max(1, len(keys)/10)] {
		delete(t.entries, k)
	}
}
