package sqlite

import (
	"encoding/json"
	"slices"
	"sync"

	"github.com/fabcommons/fabcommons/fabrication"
)

// jobDecoder remembers decoded job documents by their exact JSON. Every agent poll reads
// the head of its lab's queue, the same few dozen documents again and again, and
// decoding them was a third of the hub's CPU under load (scripts/load-agents.sh with
// pprof). The key is the stored text itself, so a hit can never be stale.
type jobDecoder struct {
	mu sync.Mutex
	m  map[string]fabrication.Job
}

// jobDecoderSize bounds the memory: about 4,096 documents of a few hundred bytes.
const jobDecoderSize = 4096

func (d *jobDecoder) decode(data string) (fabrication.Job, error) {
	d.mu.Lock()
	j, ok := d.m[data]
	d.mu.Unlock()
	if ok {
		j.Tags = slices.Clone(j.Tags) // callers may change what they get
		return j, nil
	}
	if err := json.Unmarshal([]byte(data), &j); err != nil {
		return j, err
	}
	d.mu.Lock()
	if d.m == nil || len(d.m) >= jobDecoderSize {
		d.m = make(map[string]fabrication.Job, jobDecoderSize)
	}
	d.m[data] = j
	d.mu.Unlock()
	j.Tags = slices.Clone(j.Tags)
	return j, nil
}
