package fabrication

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

var allStates = []string{JobPendingApproval, JobQueued, JobAssigned, JobPrinting, JobAwaitingHarvest,
	JobDone, JobFailed, JobCanceled, JobRejected, JobUnknown}

// jobIn is a job in state: one that holds a machine with a lease where the state has one.
func jobIn(state string) Job {
	start := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	j := Job{ID: "j1", State: state, Events: []Event{{Kind: JobQueued, Message: "ordered"}}}
	switch state {
	case JobAssigned, JobPrinting, JobUnknown, JobCanceled:
		j.MachineID, j.Holding, j.LeaseHash = "m1", true, "hash"
		exp := start.Add(time.Minute)
		j.LeaseExpires = &exp
	case JobAwaitingHarvest:
		j.MachineID, j.Holding = "m1", true
	}
	if state == JobPrinting || state == JobUnknown {
		j.StartedAt = &start
	}
	return j
}

// TestTransitionTable tries every event in every state. Each row lists the states an
// event is allowed in and where it leads ("=" : allowed, the state stays); every other
// pair must be refused with an IllegalError (of kind storage.ErrConflict), except for
// OnGone, which is a no-op where there is nothing to hand back.
func TestTransitionTable(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	rules := Rules{MaxFailures: 3, LeaseTTL: time.Minute}
	table := []struct {
		h       Happening
		allowed map[string]string
	}{
		{Happening{Kind: OnApprove}, map[string]string{JobPendingApproval: JobQueued}},
		{Happening{Kind: OnReject, Message: "no"}, map[string]string{JobPendingApproval: JobRejected, JobQueued: JobRejected}},
		{Happening{Kind: OnCancel}, map[string]string{JobPendingApproval: JobCanceled, JobQueued: JobCanceled, JobAssigned: JobCanceled, JobPrinting: JobCanceled, JobUnknown: JobCanceled}},
		{Happening{Kind: OnResolve, Outcome: ResolveRequeue}, map[string]string{JobUnknown: JobQueued, JobFailed: JobQueued, JobAwaitingHarvest: JobQueued}},
		{Happening{Kind: OnResolve, Outcome: ResolveDone}, map[string]string{JobUnknown: JobDone, JobFailed: JobDone, JobAwaitingHarvest: JobDone}},
		{Happening{Kind: OnResolve, Outcome: ResolveFailed}, map[string]string{JobUnknown: JobFailed, JobFailed: JobFailed, JobAwaitingHarvest: JobFailed}},
		{Happening{Kind: OnHarvest}, map[string]string{JobAwaitingHarvest: JobDone}},
		{Happening{Kind: OnClaim, MachineID: "m2", LeaseHash: "h2", LeaseExpires: now.Add(time.Minute)}, map[string]string{JobQueued: JobAssigned}},
		{Happening{Kind: OnStarted, Progress: 10}, map[string]string{JobAssigned: JobPrinting, JobUnknown: JobPrinting, JobPrinting: "=", JobCanceled: "="}},
		{Happening{Kind: OnFinished}, map[string]string{JobAssigned: JobDone, JobPrinting: JobDone, JobUnknown: JobDone, JobCanceled: "="}},
		{Happening{Kind: OnFailed, Retryable: true}, map[string]string{JobAssigned: JobQueued, JobPrinting: JobQueued, JobUnknown: JobQueued, JobCanceled: "="}},
		{Happening{Kind: OnFailed}, map[string]string{JobAssigned: JobFailed, JobPrinting: JobFailed, JobUnknown: JobFailed, JobCanceled: "="}},
		{Happening{Kind: OnOverLimit, Message: "too long"}, map[string]string{JobAssigned: JobFailed, JobPrinting: JobFailed, JobUnknown: JobFailed, JobCanceled: "="}},
		{Happening{Kind: OnGone}, map[string]string{JobAssigned: JobQueued, JobPrinting: JobQueued, JobUnknown: JobQueued}},
		{Happening{Kind: OnLeaseExpiry}, map[string]string{JobAssigned: JobQueued, JobPrinting: JobUnknown, JobCanceled: "="}},
		{Happening{Kind: OnForgotten}, map[string]string{JobAssigned: JobQueued, JobPrinting: JobUnknown, JobCanceled: "="}},
	}
	for _, row := range table {
		for _, state := range allStates {
			name := fmt.Sprintf("%s %s/%s", row.h.Kind, row.h.Outcome, state)
			in := jobIn(state)
			got, _, err := Transition(in, row.h, rules, now)
			want, ok := row.allowed[state]
			switch {
			case !ok && row.h.Kind == OnGone:
				if err != nil || got.State != state {
					t.Errorf("%s: got %s, %v, want a no-op", name, got.State, err)
				}
			case !ok:
				var illegal *IllegalError
				if !errors.As(err, &illegal) || !errors.Is(err, storage.ErrConflict) || illegal.State != state || illegal.Event != row.h.Kind {
					t.Errorf("%s: got %s, %v, want refused with IllegalError", name, got.State, err)
				}
			case err != nil:
				t.Errorf("%s: got %v, want %s", name, err, want)
			case want == "=" && got.State != state, want != "=" && got.State != want:
				t.Errorf("%s: got %s, want %s", name, got.State, want)
			}
			if len(in.Events) != 1 {
				t.Fatalf("%s: the caller's job was changed (its log has %d entries)", name, len(in.Events))
			}
		}
	}
}

func TestTransitionEffects(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	rules := Rules{MaxFailures: 3, LeaseTTL: time.Minute}
	cases := []struct {
		name  string
		state string
		h     Happening
		rules Rules
		check func(j Job, fx Effects) string
	}{
		{"a claim takes the machine with a lease and counts an attempt", JobQueued, Happening{Kind: OnClaim, MachineID: "m2", LeaseHash: "h2", LeaseExpires: now.Add(time.Minute)}, rules,
			func(j Job, fx Effects) string {
				if !j.Holding || j.MachineID != "m2" || j.LeaseHash != "h2" || j.Attempts != 1 || fx != (Effects{}) {
					return fmt.Sprintf("%+v %+v", j, fx)
				}
				return ""
			}},
		{"a report extends the lease", JobPrinting, Happening{Kind: OnStarted, Progress: 40, Message: "layer 4"}, rules,
			func(j Job, fx Effects) string {
				if j.LeaseExpires == nil || !j.LeaseExpires.Equal(now.Add(time.Minute)) || j.Progress != 40 || j.Events[len(j.Events)-1].Message != "layer 4" {
					return fmt.Sprintf("%+v", j)
				}
				return ""
			}},
		{"finishing frees the machine and counts machine time", JobPrinting, Happening{Kind: OnFinished}, rules,
			func(j Job, fx Effects) string {
				if j.Holding || !fx.Released || fx.UsedSeconds != 3600 || j.FinishedAt == nil || j.Progress != 100 {
					return fmt.Sprintf("%+v %+v", j, fx)
				}
				return ""
			}},
		{"with harvest confirmation the machine stays taken", JobPrinting, Happening{Kind: OnFinished}, Rules{HarvestConfirm: true, MaxFailures: 3},
			func(j Job, fx Effects) string {
				if j.State != JobAwaitingHarvest || !j.Holding || j.LeaseHash != "" || fx.Released {
					return fmt.Sprintf("%+v %+v", j, fx)
				}
				return ""
			}},
		{"a retryable failure queues the job again and counts a failure", JobPrinting, Happening{Kind: OnFailed, Retryable: true, Message: "clog"}, rules,
			func(j Job, fx Effects) string {
				if j.Failures != 1 || !fx.Released || !fx.WorkAvailable || j.StartedAt != nil || j.LeaseHash != "" {
					return fmt.Sprintf("%+v %+v", j, fx)
				}
				return ""
			}},
		{"a cancel reaches the agent on its next report", JobCanceled, Happening{Kind: OnStarted}, rules,
			func(j Job, fx Effects) string {
				if !fx.Cancel || !j.Holding {
					return fmt.Sprintf("%+v %+v", j, fx)
				}
				return ""
			}},
		{"over the lab's limit: failed, and the agent told to stop", JobAssigned, Happening{Kind: OnOverLimit, Message: "too long"}, rules,
			func(j Job, fx Effects) string {
				if !fx.Cancel || !fx.Released || j.Message != "too long" {
					return fmt.Sprintf("%+v %+v", j, fx)
				}
				return ""
			}},
		{"a printing job whose lease ran out keeps its lease hash", JobPrinting, Happening{Kind: OnLeaseExpiry}, rules,
			func(j Job, fx Effects) string {
				if j.LeaseHash != "hash" || j.LeaseExpires != nil || !j.Holding || fx.Released {
					return fmt.Sprintf("%+v %+v", j, fx)
				}
				return ""
			}},
		{"canceling a job on no machine frees nothing", JobQueued, Happening{Kind: OnCancel}, rules,
			func(j Job, fx Effects) string {
				if fx.Released || j.Holding || j.FinishedAt == nil {
					return fmt.Sprintf("%+v %+v", j, fx)
				}
				return ""
			}},
	}
	for _, c := range cases {
		j, fx, err := Transition(jobIn(c.state), c.h, c.rules, now)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if bad := c.check(j, fx); bad != "" {
			t.Errorf("%s: got %s", c.name, bad)
		}
	}
}

func TestFailuresAreLimited(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	j := jobIn(JobQueued)
	for i := 1; i <= 3; i++ {
		var err error
		j, _, err = Transition(j, Happening{Kind: OnClaim, MachineID: "m1", LeaseHash: "h", LeaseExpires: now}, Rules{MaxFailures: 3}, now)
		if err != nil {
			t.Fatal(err)
		}
		j, _, err = Transition(j, Happening{Kind: OnFailed, Retryable: true}, Rules{MaxFailures: 3}, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: JobFailed, false: JobQueued}[i == 3]; j.State != want {
			t.Fatalf("after failure %d: got %s, want %s", i, j.State, want)
		}
	}
	if j.Attempts != 3 || j.Failures != 3 {
		t.Fatalf("got %d attempts and %d failures, want 3 and 3", j.Attempts, j.Failures)
	}
}

func TestLogKeepsFirstAndNewest(t *testing.T) {
	t.Parallel()
	var log []Event
	for i := range MaxEvents + 30 {
		log = AppendEvent(log, Event{Message: fmt.Sprint(i)})
	}
	if len(log) != MaxEvents || log[0].Message != "0" || log[1].Message != "31" || log[len(log)-1].Message != fmt.Sprint(MaxEvents+29) {
		t.Fatalf("got %d entries: first %s, second %s, last %s", len(log), log[0].Message, log[1].Message, log[len(log)-1].Message)
	}
}

// TestTransitionEndsTimeOnce: a job's machine time ends (for the ledger) exactly when
// it leaves the states that can still print for a terminal state or awaiting harvest,
// and what was made is the hub's own record of the print: from its start to the event,
// or to when the hub lost track of it.
func TestTransitionEndsTimeOnce(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	lost := time.Date(2026, 6, 1, 8, 20, 0, 0, time.UTC)
	ended := func(state string) bool { return jobIn(state).Terminal() || state == JobAwaitingHarvest }
	events := []Happening{{Kind: OnApprove}, {Kind: OnReject}, {Kind: OnCancel}, {Kind: OnResolve, Outcome: ResolveRequeue},
		{Kind: OnResolve, Outcome: ResolveDone}, {Kind: OnResolve, Outcome: ResolveFailed}, {Kind: OnHarvest},
		{Kind: OnStarted}, {Kind: OnFinished}, {Kind: OnFailed, Retryable: true}, {Kind: OnFailed}, {Kind: OnOverLimit},
		{Kind: OnGone}, {Kind: OnLeaseExpiry}, {Kind: OnForgotten}}
	for _, harvest := range []bool{false, true} {
		for _, h := range events {
			for _, state := range allStates {
				j := jobIn(state)
				j.UpdatedAt = lost
				nj, fx, err := Transition(j, h, Rules{MaxFailures: 3, LeaseTTL: time.Minute, HarvestConfirm: harvest}, now)
				if err != nil {
					continue
				}
				want := !ended(state) && ended(nj.State)
				if fx.Ends != want {
					t.Errorf("%s in %s -> %s: Ends %v, want %v", h.Kind, state, nj.State, fx.Ends, want)
				}
				var made time.Duration
				if want && j.StartedAt != nil && (nj.State == JobDone || nj.State == JobAwaitingHarvest || nj.State == JobCanceled) {
					made = now.Sub(*j.StartedAt)
					if state == JobUnknown {
						made = lost.Sub(*j.StartedAt)
					}
				}
				if fx.Made != made {
					t.Errorf("%s in %s -> %s: Made %s, want %s", h.Kind, state, nj.State, fx.Made, made)
				}
			}
		}
	}
}
