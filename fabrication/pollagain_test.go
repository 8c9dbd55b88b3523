package fabrication

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// heldCounter is a scheduler store with an empty queue that counts the reads of the
// jobs machines hold; what else it would be asked panics (the nil interface).
type heldCounter struct {
	schedulerStore
	held int
}

func (s *heldCounter) HeldJobs(context.Context, string) ([]Job, error) { s.held++; return nil, nil }
func (s *heldCounter) Queued(context.Context, string, int) ([]Job, error) {
	return nil, nil
}
func (s *heldCounter) Usage(context.Context, string) (map[string]Usage, error) { return nil, nil }

// TestPollAgainSkipsReconcile: a poll's first pass reads the jobs the machine holds;
// its later passes, while it waits, do not.
func TestPollAgainSkipsReconcile(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	store := &heldCounter{}
	c := core{now: func() time.Time { return now }, log: slog.New(slog.NewTextHandler(io.Discard, nil)), feed: NewFeed(),
		opts: Options{LeaseTTL: time.Minute}, tokens: &machineTokens{}}
	s := &Scheduler{jobBook: &jobBook{core: c, store: store}, store: store}
	m := Machine{ID: "m", LabID: "lab", Approved: true, State: MachineIdle, LastSeen: &now}
	req := agentapi.PollRequest{Protocol: agentapi.Protocol, State: agentapi.StateIdle, Jobs: []agentapi.HeldJob{}}
	if resp, busy, err := s.Poll(context.Background(), m, req); err != nil || busy || resp.Job != nil {
		t.Fatalf("first pass: got %+v busy %v, %v; want no job, not busy", resp, busy, err)
	}
	if store.held != 1 {
		t.Fatalf("first pass: %d reads of held jobs, want 1", store.held)
	}
	for range 3 {
		if _, busy, err := s.PollAgain(context.Background(), m, agentapi.PollRequest{Protocol: agentapi.Protocol}); err != nil || busy {
			t.Fatalf("a later pass: busy %v, %v", busy, err)
		}
	}
	if store.held != 1 {
		t.Fatalf("after three later passes: %d reads of held jobs, want still 1", store.held)
	}
}
