package fabrication

import (
	"testing"
	"time"
)

func TestQueueHeadCache(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	job := func(id string, prio, minute int) Job {
		return Job{ID: id, LabID: "lab", State: JobQueued, Priority: prio, EnqueuedAt: t0.Add(time.Duration(minute) * time.Minute)}
	}
	ids := func(s *Service) string {
		out := ""
		for _, j := range s.queues.labs["lab"].jobs {
			out += j.ID
		}
		return out
	}
	cases := []struct {
		name     string
		head     []Job
		complete bool
		add      Job
		want     string
	}{
		{"a partial head takes an older job", []Job{job("a", 0, 1), job("c", 0, 3)}, false, job("b", 0, 2), "abc"},
		{"a partial head leaves a newer job to the next read", []Job{job("a", 0, 1), job("c", 0, 3)}, false, job("d", 0, 4), "ac"},
		{"a complete head takes any job, in order", []Job{job("a", 0, 1), job("c", 0, 3)}, true, job("d", 0, 4), "acd"},
		{"priority comes first", []Job{job("a", 0, 1), job("c", 0, 3)}, false, job("z", 5, 9), "zac"},
		{"a requeued job moves to its place", []Job{job("a", 0, 1), job("b", 0, 2), job("c", 0, 4)}, false, job("a", 0, 3), "bac"},
		{"a requeued job past a partial head leaves it", []Job{job("a", 0, 1), job("b", 0, 2), job("c", 0, 3)}, false, job("a", 0, 9), "bc"},
	}
	for _, c := range cases {
		s := &Service{}
		s.queues.labs = map[string]*queueHead{"lab": {jobs: c.head, complete: c.complete, readAt: time.Now()}}
		s.noteQueued(c.add)
		if got := ids(s); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	s := &Service{}
	s.queues.labs = map[string]*queueHead{"lab": {jobs: []Job{job("a", 0, 1), job("b", 0, 2)}, readAt: time.Now()}}
	s.dropQueued("lab", "a")
	if got := ids(s); got != "b" {
		t.Errorf("after a claim: got %q, want %q", got, "b")
	}
	s.noteQueued(Job{ID: "x", LabID: "other", State: JobQueued}) // no cached head: nothing to do
	if len(s.queues.labs) != 1 {
		t.Errorf("a lab without a cached head got one")
	}
}
