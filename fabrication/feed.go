package fabrication

import (
	"sync"
)

// Change is one thing that happened, for live views and waiting agents.
type Change struct {
	Kind    string   `json:"kind"` // "job" or "machine"
	LabID   string   `json:"lab_id"`
	OrderID string   `json:"order_id,omitempty"`
	Job     *Job     `json:"job,omitempty"`
	Machine *Machine `json:"machine,omitempty"`
}

// Feed fans changes out to subscribers in this hub process and wakes agents waiting
// for work. Subscribers that fall behind lose changes rather than slow the hub (a
// browser reconnects and reloads; an agent re-checks the database on its own timer).
type Feed struct {
	mu      sync.Mutex
	subs    map[chan Change]func(Change) bool
	waiters map[string][]chan struct{} // lab id -> agents waiting for work
	taps    []func(Change)
}

// NewFeed returns an empty feed.
func NewFeed() *Feed {
	return &Feed{subs: map[chan Change]func(Change) bool{}, waiters: map[string][]chan struct{}{}}
}

// Subscribe returns a channel of the changes match accepts, and a cancel function.
func (f *Feed) Subscribe(match func(Change) bool) (<-chan Change, func()) {
	ch := make(chan Change, 64)
	f.mu.Lock()
	f.subs[ch] = match
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

// Tap has fn called with every change published, in the publisher's goroutine and
// before Publish returns, so that, unlike a subscriber, it misses none. fn must return
// at once (queue the change, never wait on it) and must not change what c points to.
func (f *Feed) Tap(fn func(Change)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.taps = append(f.taps, fn)
}

// Publish sends c to every subscriber that wants it, dropping it for full ones. Every
// subscriber gets the same c: none may change what it points to.
func (f *Feed) Publish(c Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, tap := range f.taps {
		tap(c)
	}
	for ch, match := range f.subs {
		if match(c) {
			select {
			case ch <- c:
			default:
			}
		}
	}
}

// WaitForWork returns a channel that is closed when work may be available in the lab,
// and a function to stop waiting.
func (f *Feed) WaitForWork(labID string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.waiters[labID] = append(f.waiters[labID], ch)
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		ws := f.waiters[labID]
		for i, w := range ws {
			if w == ch {
				f.waiters[labID] = append(ws[:i], ws[i+1:]...)
				return
			}
		}
	}
}

// WorkAvailable wakes up to n agents waiting in the lab (the oldest waiters first), so
// one new job does not stampede every idle agent into the database.
func (f *Feed) WorkAvailable(labID string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ws := f.waiters[labID]
	k := min(n, len(ws))
	for _, w := range ws[:k] {
		close(w)
	}
	f.waiters[labID] = ws[k:]
}
