package web

import (
	"context"
	"sync"

	"github.com/fabcommons/fabcommons/catalog/picture"
)

// imageMemo keeps the images the hub makes (card thumbnails drawn, design pictures
// re-encoded) by key, and lets at most len(slots) be made at once, since making one
// can take a second and hundreds of MB. When a new image would take it past
// maxEntries images or maxBytes bytes (0: no bound of that kind) it starts afresh.
type imageMemo struct {
	maxEntries, maxBytes int
	slots                chan struct{}

	mu    sync.Mutex
	byKey map[string]picture.Picture
	bytes int
}

// get returns the image kept under key, or makes it with make, holding a slot while
// it does. It gives up when ctx ends while waiting for a slot.
func (m *imageMemo) get(ctx context.Context, key string, make func() (picture.Picture, error)) (picture.Picture, error) {
	m.mu.Lock()
	p, ok := m.byKey[key]
	m.mu.Unlock()
	if ok {
		return p, nil
	}
	select {
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		return picture.Picture{}, ctx.Err()
	}
	p, err := make()
	<-m.slots
	if err != nil {
		return picture.Picture{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byKey == nil || m.maxEntries > 0 && len(m.byKey) >= m.maxEntries || m.maxBytes > 0 && m.bytes+len(p.Data) > m.maxBytes {
		m.byKey, m.bytes = map[string]picture.Picture{}, 0
	}
	m.byKey[key] = p
	m.bytes += len(p.Data)
	return p, nil
}
