package web

import (
	"context"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/fabcommons/fabcommons/catalog/picture"
)

// imageMemo keeps the images the hub makes (card thumbnails drawn, design pictures
// re-encoded) by key, and lets at most len(slots) be made at once, since making one
// can take a second and hundreds of MB; requests for one key while it is being made
// wait for it rather than make it again. When a new image would take it past
// maxEntries images or maxBytes bytes (0: no bound of that kind) it starts afresh.
type imageMemo struct {
	maxEntries, maxBytes int
	slots                chan struct{}
	making               singleflight.Group

	mu    sync.Mutex
	byKey map[string]picture.Picture
	bytes int
}

// get returns the image kept under key, or makes it with make, holding a slot while
// it does; who asks for it meanwhile waits for that one. It gives up when ctx ends
// while waiting.
func (m *imageMemo) get(ctx context.Context, key string, make func() (picture.Picture, error)) (picture.Picture, error) {
	m.mu.Lock()
	p, ok := m.byKey[key]
	m.mu.Unlock()
	if ok {
		return p, nil
	}
	ch := m.making.DoChan(key, func() (any, error) {
		select {
		case m.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-m.slots }()
		p, err := make()
		if err != nil {
			return nil, err
		}
		m.keep(key, p)
		return p, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return picture.Picture{}, res.Err
		}
		return res.Val.(picture.Picture), nil
	case <-ctx.Done():
		return picture.Picture{}, ctx.Err()
	}
}

// keep keeps p under key, starting afresh when p would take the memo past its bounds.
func (m *imageMemo) keep(key string, p picture.Picture) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byKey == nil || m.maxEntries > 0 && len(m.byKey) >= m.maxEntries || m.maxBytes > 0 && m.bytes+len(p.Data) > m.maxBytes {
		m.byKey, m.bytes = map[string]picture.Picture{}, 0
	}
	m.byKey[key] = p
	m.bytes += len(p.Data)
}
