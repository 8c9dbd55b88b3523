package sqlite

import (
	"encoding/json"
	"slices"
	"sync"

	"github.com/fabcommons/fabcommons/fabrication"
)

// decoder remembers decoded documents by their exact JSON. Every agent poll reads its
// machine and the head of its lab's queue: the same documents again and again, and
// decoding them was a third of the hub's CPU under load (scripts/load-agents.sh with
// pprof). The key is the stored text itself, so a hit can never be stale.
type decoder[T any] struct {
	mu sync.Mutex
	m  map[string]T
	// clone copies what a caller might change in place (slices), so callers never
	// share memory with the cache or with each other.
	clone func(T) T
}

// decoderSize bounds the memory: a few thousand documents of a few hundred bytes.
const decoderSize = 4096

func (d *decoder[T]) decode(data string) (T, error) {
	d.mu.Lock()
	v, ok := d.m[data]
	d.mu.Unlock()
	if ok {
		return d.clone(v), nil
	}
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		return v, err
	}
	d.mu.Lock()
	if d.m == nil || len(d.m) >= decoderSize {
		d.m = make(map[string]T, decoderSize)
	}
	d.m[data] = v
	d.mu.Unlock()
	return d.clone(v), nil
}

func newJobDecoder() decoder[fabrication.Job] {
	return decoder[fabrication.Job]{clone: func(j fabrication.Job) fabrication.Job {
		j.Tags = slices.Clone(j.Tags)
		return j
	}}
}

func newMachineDecoder() decoder[fabrication.Machine] {
	return decoder[fabrication.Machine]{clone: func(m fabrication.Machine) fabrication.Machine {
		m.Materials, m.Tags = slices.Clone(m.Materials), slices.Clone(m.Tags)
		return m
	}}
}
