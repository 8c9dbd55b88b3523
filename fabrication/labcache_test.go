package fabrication

import (
	"context"
	"testing"
)

// countingLabs reads a lab whose policy is the current one, counting reads; during
// a read it can have the lab changed, as another request would.
type countingLabs struct {
	reads      int
	hours      float64
	duringRead func()
}

func (s *countingLabs) LabByID(_ context.Context, id string) (Lab, error) {
	s.reads++
	lab := Lab{ID: id, Policy: Policy{MaxJobHours: s.hours}}
	if s.duringRead != nil {
		s.duringRead()
		s.duringRead = nil
	}
	return lab, nil
}

// TestLabCache: a lab is read once while fresh; a change drops it; a read that began
// before a change is not kept.
func TestLabCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var c labCache
	store := &countingLabs{hours: 1}
	for range 3 {
		if lab, err := c.labByID(ctx, store, "l"); err != nil || lab.Policy.MaxJobHours != 1 {
			t.Fatalf("got %+v, %v", lab, err)
		}
	}
	if store.reads != 1 {
		t.Fatalf("three lookups read the store %d times, want 1", store.reads)
	}
	store.hours = 2
	c.forget("l")
	if lab, _ := c.labByID(ctx, store, "l"); lab.Policy.MaxJobHours != 2 || store.reads != 2 {
		t.Fatalf("after a change: got %g hours in %d reads, want 2 hours in 2", lab.Policy.MaxJobHours, store.reads)
	}
	// A change lands while a read is under way: that read's answer is not kept.
	c.forget("l")
	store.duringRead = func() { store.hours = 3; c.forget("l") }
	c.labByID(ctx, store, "l")
	if lab, _ := c.labByID(ctx, store, "l"); lab.Policy.MaxJobHours != 3 || store.reads != 4 {
		t.Fatalf("after a change during a read: got %g hours in %d reads, want 3 hours in 4", lab.Policy.MaxJobHours, store.reads)
	}
}
