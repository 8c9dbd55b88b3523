package fabrication

import (
	"fmt"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

// What can happen to a job: the events of its lifecycle. Transition says what each does
// in each state; every pair it does not list is refused.
const (
	OnApprove     = "approve"      // an operator lets a pending job into the queue
	OnReject      = "reject"       // an operator turns a job down (Message: why)
	OnCancel      = "cancel"       // the requester or an operator calls it off
	OnResolve     = "resolve"      // an operator says what happened (Outcome)
	OnHarvest     = "harvest"      // an operator took the part off the bed
	OnClaim       = "claim"        // a machine's agent takes it (Machine, Lease*)
	OnStarted     = "started"      // the agent reports the print started, or progress
	OnFinished    = "finished"     // the agent reports the print done
	OnFailed      = "failed"       // the agent reports a failure (Retryable)
	OnOverLimit   = "over_limit"   // the slicer's estimate is over the lab's limit
	OnGone        = "gone"         // the agent says the printer never had it (handed back)
	OnLeaseExpiry = "lease_expiry" // the lease ran out
	OnForgotten   = "forgotten"    // the machine's agent polls without mentioning it
)

// Happening is one event in a job's life, with what it carries.
type Happening struct {
	Kind      string
	Actor     string // a handle, "machine:<name>" or "hub"
	Message   string
	Retryable bool    // OnFailed
	Progress  float64 // OnStarted
	Outcome   string  // OnResolve: ResolveRequeue, ResolveDone or ResolveFailed
	// OnClaim: the machine and the lease it gets.
	MachineID    string
	LeaseHash    string
	LeaseExpires time.Time
}

// Rules are what a transition needs from outside the job: the lab's policy and the
// hub's limits.
type Rules struct {
	HarvestConfirm bool          // a finished part waits to be taken off the bed
	MaxFailures    int           // a retryable failure is queued again below this many
	LeaseTTL       time.Duration // how long a report extends the lease
}

// Effects are what a transition asks of the world beyond the job.
type Effects struct {
	Released      bool    // the job let go of its machine: the machine is free
	WorkAvailable bool    // the job entered the queue
	Cancel        bool    // the agent must stop the print
	UsedSeconds   float64 // machine time the job used, counted as it ends
	// Ends: the job's machine time ends in the ledger, once: Made is what the machine
	// made (zero: nothing was made, the hold is released without cost).
	Ends bool
	Made time.Duration
}

// IllegalError refuses an event the job's state does not allow. It is of kind
// storage.ErrConflict: the job is not in a state for it (any more).
type IllegalError struct{ State, Event string }

func (e *IllegalError) Error() string {
	return fmt.Sprintf("cannot %s a job that is %s", strings.ReplaceAll(e.Event, "_", " "), strings.ReplaceAll(e.State, "_", " "))
}
func (e *IllegalError) Is(target error) bool { return target == storage.ErrConflict }

// Transition is the job lifecycle as one pure function: the job after h happened at
// now, and what that asks of the world. It reads nothing and writes nothing; callers
// check who may act, then persist the job and carry out the effects.
func Transition(j Job, h Happening, r Rules, now time.Time) (Job, Effects, error) {
	j.Events = append([]Event(nil), j.Events...) // the caller's job keeps its log
	var fx Effects
	illegal := func() (Job, Effects, error) { return j, Effects{}, &IllegalError{State: j.State, Event: h.Kind} }
	requeue := func(msg string) {
		release(&j, &fx)
		j.EnqueuedAt, j.Progress, j.StartedAt = now, 0, nil
		fx.WorkAvailable = true
		moveTo(&j, JobQueued, h.Actor, msg, now)
	}
	finish := func(to, msg string) {
		release(&j, &fx)
		j.FinishedAt = &now
		moveTo(&j, to, h.Actor, msg, now)
	}
	machineTime := func() {
		if j.StartedAt != nil {
			fx.UsedSeconds = now.Sub(*j.StartedAt).Seconds()
		}
	}
	// ends marks the job's time as over; made says whether the machine made it, and
	// then the time is the hub's own record: from the start to now, or, for a job the
	// hub lost track of (unknown), to when it did.
	ends := func(made bool) {
		fx.Ends = true
		if made && j.StartedAt != nil {
			end := now
			if j.State == JobUnknown {
				end = j.UpdatedAt
			}
			fx.Made = max(end.Sub(*j.StartedAt), 0)
		}
	}
	switch h.Kind {
	case OnApprove:
		if j.State != JobPendingApproval {
			return illegal()
		}
		j.EnqueuedAt, fx.WorkAvailable = now, true
		moveTo(&j, JobQueued, h.Actor, "approved", now)
	case OnReject:
		if j.State != JobPendingApproval && j.State != JobQueued {
			return illegal()
		}
		j.FinishedAt = &now
		ends(false)
		moveTo(&j, JobRejected, h.Actor, h.Message, now)
	case OnCancel:
		if j.Terminal() || j.State == JobAwaitingHarvest {
			return illegal()
		}
		j.FinishedAt = &now
		ends(true) // what was printed before the cancel is paid for
		moveTo(&j, JobCanceled, h.Actor, "canceled", now)
		if j.LeaseHash == "" { // not on a machine: nothing to wait for
			release(&j, &fx)
		}
	case OnResolve:
		if j.State != JobUnknown && j.State != JobFailed && j.State != JobAwaitingHarvest {
			return illegal()
		}
		switch h.Outcome {
		case ResolveRequeue:
			j.FinishedAt = nil
			requeue("requeued by an operator")
		case ResolveDone:
			if j.State == JobUnknown { // a failed or finished job's time has ended already
				ends(true)
			}
			finish(JobDone, "marked done by an operator")
		case ResolveFailed:
			if j.State == JobUnknown {
				ends(false)
			}
			finish(JobFailed, "marked failed by an operator")
		default:
			return j, Effects{}, storage.Invalid("outcome", "want requeue, done or failed")
		}
	case OnHarvest:
		if j.State != JobAwaitingHarvest {
			return illegal()
		}
		release(&j, &fx)
		fx.WorkAvailable = true
		moveTo(&j, JobDone, h.Actor, "taken off the bed", now)
	case OnClaim:
		if j.State != JobQueued {
			return illegal()
		}
		expires := h.LeaseExpires
		j.MachineID, j.Holding, j.LeaseHash, j.LeaseExpires = h.MachineID, true, h.LeaseHash, &expires
		j.Attempts++
		j.Progress, j.Message = 0, ""
		moveTo(&j, JobAssigned, h.Actor, h.Message, now)
	case OnStarted:
		switch j.State {
		case JobCanceled:
			fx.Cancel = true
			return j, fx, nil
		case JobAssigned, JobUnknown:
			if j.StartedAt == nil {
				j.StartedAt = &now
			}
			moveTo(&j, JobPrinting, h.Actor, h.Message, now)
		case JobPrinting:
			if h.Message != "" && h.Message != j.Message {
				logEvent(&j, Event{Kind: "progress", Actor: h.Actor, Message: h.Message}, now)
			}
		default:
			return illegal()
		}
		j.Progress, j.Message = h.Progress, h.Message
		extend(&j, r, now)
	case OnFinished, OnFailed, OnOverLimit:
		if j.State == JobCanceled {
			fx.Cancel = true
			release(&j, &fx)
			return j, fx, nil
		}
		if j.State != JobAssigned && j.State != JobPrinting && j.State != JobUnknown {
			return illegal()
		}
		machineTime()
		switch {
		case h.Kind == OnFinished:
			ends(true)
		case h.Kind == OnOverLimit, !h.Retryable || j.Failures+1 >= r.MaxFailures:
			ends(false)
		}
		switch {
		case h.Kind == OnFinished && r.HarvestConfirm:
			j.Progress, j.FinishedAt, j.Message = 100, &now, h.Message
			j.LeaseHash, j.LeaseExpires = "", nil // the machine stays occupied until harvested
			moveTo(&j, JobAwaitingHarvest, h.Actor, orDefault(h.Message, "finished; waiting to be taken off the bed"), now)
		case h.Kind == OnFinished:
			j.Progress, j.Message = 100, h.Message
			finish(JobDone, orDefault(h.Message, "finished"))
		case h.Kind == OnOverLimit:
			fx.Cancel, j.Message = true, h.Message
			finish(JobFailed, h.Message)
		default:
			j.Failures++
			// Failures, not claims, count against the limit: a job an agent handed back
			// unprinted (its printer was taken) used a claim but no print.
			if h.Retryable && j.Failures < r.MaxFailures {
				requeue(fmt.Sprintf("failed (%s); queued again after %d of %d failures", orDefault(h.Message, "no reason given"), j.Failures, r.MaxFailures))
			} else {
				finish(JobFailed, orDefault(h.Message, "failed"))
			}
		}
	case OnGone:
		// The printer never had it: handing it back cannot make a second copy. (The
		// agent reports "started" before the printer has the file, so a printing job
		// can be gone too.) In any other state there is nothing to hand back.
		if j.State != JobAssigned && j.State != JobPrinting && j.State != JobUnknown {
			return j, fx, nil
		}
		requeue(h.Message)
	case OnLeaseExpiry:
		switch j.State {
		case JobAssigned:
			requeue("the lease expired before the print started; back in the queue")
		case JobPrinting:
			// Never queued again by itself, as that could print a second copy; the lease
			// hash stays so the agent can come back and say what happened.
			j.LeaseExpires = nil
			moveTo(&j, JobUnknown, h.Actor, "the lease expired while printing; waiting for the agent or an operator", now)
		case JobCanceled:
			release(&j, &fx)
		default:
			return illegal()
		}
	case OnForgotten:
		switch j.State {
		case JobAssigned:
			// The claim's answer was lost, or the agent restarted before starting:
			// nothing was printed.
			requeue("the agent did not report it; it had not started")
		case JobCanceled:
			release(&j, &fx)
		case JobPrinting:
			// Only a person can say what is on the bed.
			moveTo(&j, JobUnknown, h.Actor, "the agent no longer reports this print; check the machine and resolve it", now)
		default:
			return illegal()
		}
	default:
		return j, Effects{}, fmt.Errorf("unknown job event %q: %w", h.Kind, storage.ErrInvalid)
	}
	return j, fx, nil
}

// extend renews the job's lease from now.
func extend(j *Job, r Rules, now time.Time) {
	expires := now.Add(r.LeaseTTL)
	j.LeaseExpires = &expires
}

// release frees the job's machine and voids its lease.
func release(j *Job, fx *Effects) {
	if j.Holding {
		fx.Released = true
	}
	j.Holding, j.LeaseHash, j.LeaseExpires = false, "", nil
}

// logEvent appends to the job's public log.
func logEvent(j *Job, e Event, now time.Time) {
	e.At = now
	j.Events = AppendEvent(j.Events, e)
}

// MaxEvents bounds a job's log.
const MaxEvents = 100

// AppendEvent appends e to a job's log, keeping its first entry (how the job came to
// be) and the newest: at most MaxEvents. A store that appends to a stored log itself
// (ClaimJob) keeps the same rule: it drops the entry after the first.
func AppendEvent(log []Event, e Event) []Event {
	log = append(log, e)
	if len(log) > MaxEvents {
		log = append(log[:1], log[len(log)-MaxEvents+1:]...)
	}
	return log
}

// moveTo changes the job's state and logs the transition.
func moveTo(j *Job, to, actor, msg string, now time.Time) {
	logEvent(j, Event{Kind: to, From: j.State, To: to, Actor: actor, Message: msg}, now)
	j.State = to
}
