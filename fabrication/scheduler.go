package fabrication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agentapi"
	"github.com/fabcommons/fabcommons/storage"
)

// Scheduler gives queued jobs to agents and follows them: polls, claims, reports,
// leases and their expiry, and each lab's queue in order of service.
type Scheduler struct {
	*jobBook
	roles
	store   schedulerStore
	designs Designs
}

// schedulerStore is what the Scheduler reads and writes.
type schedulerStore interface {
	jobsStore
	LabBySlug(ctx context.Context, slug string) (Lab, error)
	LabByID(ctx context.Context, id string) (Lab, error)
	Members(ctx context.Context, labID string) ([]Member, error)
	Machine(ctx context.Context, id string) (Machine, error)
	Machines(ctx context.Context, labID string) ([]Machine, error)
	TouchMachine(ctx context.Context, id string, at time.Time, from, to string) error
	ClaimJob(ctx context.Context, j Job, prevRev int, e Event) error
	HeldJobs(ctx context.Context, machineID string) ([]Job, error)
	LabJobs(ctx context.Context, labID string, states []string, limit int) ([]Job, error)
	ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]Job, error)
}

// HeartbeatSeconds is how often agents should report: three times per lease.
func (s *Scheduler) HeartbeatSeconds() int { return max(1, int(s.opts.LeaseTTL.Seconds()/3)) }

// QueuedJob is a job in a lab's queue, with the reason when no machine can make it.
type QueuedJob struct {
	Job
	Blocked string `json:"blocked,omitempty"`
}

// LabView is everything anyone may see of a lab.
type LabView struct {
	Lab      Lab         `json:"lab"`
	Members  []Member    `json:"members"`
	Machines []Machine   `json:"machines"`
	Queue    []QueuedJob `json:"queue"`   // in order of service
	Active   []Job       `json:"active"`  // on machines now
	Pending  []Job       `json:"pending"` // waiting for approval
	History  []Job       `json:"history"` // recently ended
	Role     string      `json:"role"`    // the viewer's role
}

// View assembles a lab's public page.
func (s *Scheduler) View(ctx context.Context, actor Actor, slug string) (LabView, error) {
	lab, err := labBySlug(ctx, s.store, slug)
	if err != nil {
		return LabView{}, err
	}
	v := LabView{Lab: lab}
	if v.Members, err = s.store.Members(ctx, lab.ID); err != nil {
		return LabView{}, err
	}
	if v.Machines, err = s.store.Machines(ctx, lab.ID); err != nil {
		return LabView{}, err
	}
	queued, err := s.store.Queued(ctx, lab.ID, 500)
	if err != nil {
		return LabView{}, err
	}
	usage, err := s.store.Usage(ctx, lab.ID)
	if err != nil {
		return LabView{}, err
	}
	ServiceOrder(queued, usage, s.now())
	v.Queue = make([]QueuedJob, 0, len(queued))
	for _, j := range queued {
		v.Queue = append(v.Queue, QueuedJob{Job: j, Blocked: WhyUnfit(j, lab, usable(v.Machines))})
	}
	if v.Active, err = s.store.LabJobs(ctx, lab.ID, []string{JobAssigned, JobPrinting, JobAwaitingHarvest, JobUnknown}, 200); err != nil {
		return LabView{}, err
	}
	if v.Pending, err = s.store.LabJobs(ctx, lab.ID, []string{JobPendingApproval}, 200); err != nil {
		return LabView{}, err
	}
	if v.History, err = s.store.LabJobs(ctx, lab.ID, []string{JobDone, JobFailed, JobCanceled, JobRejected}, 50); err != nil {
		return LabView{}, err
	}
	if v.Role, err = s.role(ctx, actor, lab.ID); err != nil {
		return LabView{}, err
	}
	for i := range v.Members {
		v.Members[i].UserID = ""
	}
	return v, nil
}

func (s *Scheduler) agentActor(m Machine) string { return "machine:" + m.Name }

// Poll answers an agent's poll without waiting: it records that the machine is alive,
// reconciles the jobs the agent says it holds, and claims the first queued job that
// fits the machine in the lab's order of service. A nil Job means there is no work
// now; busy says the machine cannot take any (it holds a job, or is in maintenance or
// unapproved), so waiting for work is pointless.
func (s *Scheduler) Poll(ctx context.Context, m Machine, req agentapi.PollRequest) (resp agentapi.PollResponse, busy bool, err error) {
	return s.poll(ctx, m, req, true)
}

// PollAgain is Poll for a poll waiting at the hub whose first pass (a Poll) found the
// machine free and no work: the jobs the agent holds were reconciled then, and no job
// becomes the machine's since but through a claim, so they are not read again (at a
// thousand agents woken as work comes in, that read was a twentieth of the hub's CPU,
// and kept the one writer waiting on SQLite's allocator).
func (s *Scheduler) PollAgain(ctx context.Context, m Machine, req agentapi.PollRequest) (resp agentapi.PollResponse, busy bool, err error) {
	return s.poll(ctx, m, req, false)
}

func (s *Scheduler) poll(ctx context.Context, m Machine, req agentapi.PollRequest, reconcile bool) (resp agentapi.PollResponse, busy bool, err error) {
	resp = agentapi.PollResponse{HeartbeatS: s.HeartbeatSeconds()}
	if req.Protocol != agentapi.Protocol {
		return resp, true, fmt.Errorf("%w: the hub speaks protocol %d, the agent %d; upgrade the agent", ErrUnsupported, agentapi.Protocol, req.Protocol)
	}
	if err := req.Check(); err != nil {
		return resp, true, contractError(err)
	}
	now := s.clock()
	if m.LastSeen == nil || now.Sub(*m.LastSeen) > time.Duration(s.HeartbeatSeconds())*time.Second/2 || m.State == MachineOffline {
		if err := s.store.TouchMachine(ctx, m.ID, now, MachineOffline, MachineIdle); err != nil { // heard from: back online
			return resp, true, err
		}
		s.tokens.seen(m.ID, now)
		if m.State == MachineOffline {
			m.LastSeen, m.State = &now, MachineIdle
			s.publishMachine(m)
		}
	}
	if reconcile {
		var drop []string
		if busy, drop, err = s.reconcile(ctx, m, req.Jobs); err != nil {
			return resp, true, err
		}
		resp.Drop = drop
	}
	if busy || m.Maintenance || !m.Approved || req.State == agentapi.StateMaintenance || req.State == agentapi.StateBusy {
		return resp, true, nil
	}
	j, lease, err := s.claim(ctx, m)
	if err != nil || j == nil {
		return resp, false, err
	}
	lab, err := s.labs.labByID(ctx, s.store, m.LabID)
	if err != nil {
		return resp, false, err
	}
	resp.Job = &agentapi.Job{ID: j.ID, Attempt: j.Attempts, Design: j.DesignSlug, Version: j.Version, File: j.File, SHA256: j.SHA256, Size: j.Size,
		Material: j.Material, Colour: j.Colour, BBox: [3]float64{j.BBox.X, j.BBox.Y, j.BBox.Z}, MaxHours: lab.Policy.MaxJobHours}
	resp.Lease, resp.LeaseExpires = lease, *j.LeaseExpires
	resp.FileURL = agentapi.JobPath(agentapi.PathJobFile, j.ID)
	return resp, false, nil
}

// claimWindow is how many queued jobs, from the head of the queue, a claim considers.
// Decoding more costs every poll; a job deeper in the queue that only this machine
// fits waits until the head drains (the lab page says why it waits).
const claimWindow = 64

// claim takes the first fitting job in order of service with a compare-and-set from
// queued to assigned; losing a race to another hub just moves on to the next one.
func (s *Scheduler) claim(ctx context.Context, m Machine) (*Job, string, error) {
	for range 2 * claimWindow {
		j, ok, err := s.takeQueued(ctx, m)
		if err != nil || !ok {
			return nil, "", err
		}
		c, err := s.claimOne(ctx, m, j)
		s.claimEnded(j)
		if errors.Is(err, errNotClaimed) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return &c.job, c.lease, nil
	}
	return nil, "", nil
}

// errNotClaimed: the job was no longer queued, or another hub took it first.
var errNotClaimed = errors.New("not claimed")

type claimed struct {
	job   Job
	lease string
}

// claimOne claims j, as the queue head showed it, for m: errNotClaimed when it was
// no longer queued or changed.
func (s *Scheduler) claimOne(ctx context.Context, m Machine, j Job) (claimed, error) {
	// A compare-and-set on the rev the queue showed: losing a race costs one write
	// that matches nothing, and the stored log is kept and appended to (the queue's
	// copy of the job has no log).
	lease, hash := secret("fab_l_")
	now := s.clock()
	nj, _, err := Transition(j, Happening{Kind: OnClaim, Actor: "hub", Message: "assigned to " + m.Name,
		MachineID: m.ID, LeaseHash: hash, LeaseExpires: now.Add(s.opts.LeaseTTL)}, s.rules(Lab{}), now)
	if err != nil {
		return claimed{}, errNotClaimed // no longer queued
	}
	nj.UpdatedAt = now
	e := nj.Events[len(nj.Events)-1]
	err = s.store.ClaimJob(ctx, nj, j.Rev, e)
	if errors.Is(err, storage.ErrConflict) {
		return claimed{}, errNotClaimed // another hub took it, or it changed: try the next
	}
	if err != nil {
		return claimed{}, err
	}
	j = nj
	j.Rev++
	s.publishJob(j)
	m.State = MachineBusy
	s.publishMachine(m)
	return claimed{job: j, lease: lease}, nil
}

// reconcile compares what the agent says it holds with what the hub thinks the machine
// holds. It reports whether the machine is still occupied and which held jobs the
// agent must drop (not its, or canceled).
func (s *Scheduler) reconcile(ctx context.Context, m Machine, held []agentapi.HeldJob) (busy bool, drop []string, err error) {
	reported := map[string]bool{}
	for _, h := range held {
		reported[h.ID] = true
		j, err := s.store.Job(ctx, h.ID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && (j.MachineID != m.ID || j.LeaseHash == "" || j.LeaseHash != hashSecret(h.Lease))) {
			drop = append(drop, h.ID)
			continue
		}
		if err != nil {
			return false, nil, err
		}
		switch h.State {
		case agentapi.HeldFinished:
			_, err = s.Event(ctx, m, h.ID, agentapi.EventRequest{Lease: h.Lease, Kind: agentapi.EventFinished, Progress: 100, Message: h.Message})
		case agentapi.HeldFailed:
			_, err = s.Event(ctx, m, h.ID, agentapi.EventRequest{Lease: h.Lease, Kind: agentapi.EventFailed, Message: h.Message})
		case agentapi.HeldGone:
			why := "the agent never started it"
			if h.Message != "" && checkText("message", h.Message, 500, false) == nil {
				why = "handed back, never printed: " + h.Message
			}
			_, _, err = s.change(ctx, h.ID, func(j Job, now time.Time) (Job, Effects, error) {
				return Transition(j, Happening{Kind: OnGone, Actor: s.agentActor(m), Message: why}, s.rules(Lab{}), now)
			})
			drop = append(drop, h.ID)
		default: // starting or printing: a heartbeat
			var resp agentapi.EventResponse
			kind := agentapi.EventProgress
			resp, err = s.Event(ctx, m, h.ID, agentapi.EventRequest{Lease: h.Lease, Kind: kind, Progress: h.Progress, Message: h.Message})
			if resp.Cancel {
				drop = append(drop, h.ID)
			}
		}
		if err != nil && !errors.Is(err, ErrStaleLease) && !errors.Is(err, storage.ErrConflict) {
			return false, nil, err
		}
	}
	// Jobs the hub has on this machine that the agent did not mention.
	jobs, err := s.store.HeldJobs(ctx, m.ID)
	if err != nil {
		return false, nil, err
	}
	for _, j := range jobs {
		if reported[j.ID] {
			if j.Holding && !slices.Contains(drop, j.ID) {
				busy = true
			}
			continue
		}
		switch j.State {
		case JobAssigned, JobCanceled, JobPrinting:
			_, _, err = s.change(ctx, j.ID, func(j Job, now time.Time) (Job, Effects, error) {
				if j.MachineID != m.ID {
					return j, Effects{}, errNothingToDo
				}
				return Transition(j, Happening{Kind: OnForgotten, Actor: "hub"}, s.rules(Lab{}), now)
			})
			if errors.Is(err, errNothingToDo) || errors.Is(err, storage.ErrConflict) {
				err = nil // it moved on meanwhile
			}
			busy = busy || j.State == JobPrinting // unknown now: occupied until an operator resolves it
		default: // awaiting harvest or unknown: the machine is occupied until an operator resolves it
			busy = true
		}
		if err != nil {
			return false, nil, err
		}
	}
	return busy, drop, nil
}

// checkLease finds a job for the machine's agent: 403 for a job of another lab, 409
// (ErrStaleLease) for a job it does not hold with this lease.
func (s *Scheduler) checkLease(m Machine, j Job, lease string) error {
	if j.LabID != m.LabID {
		return fmt.Errorf("job %s belongs to another lab: %w", j.ID, storage.ErrForbidden)
	}
	if j.MachineID != m.ID || j.LeaseHash == "" || j.LeaseHash != hashSecret(lease) {
		return fmt.Errorf("job %s: %w", j.ID, ErrStaleLease)
	}
	return nil
}

// Event records an agent's report on a job it holds and extends the lease. The reply
// says cancel: true when the job was canceled (or over the lab's limits).
func (s *Scheduler) Event(ctx context.Context, m Machine, id string, req agentapi.EventRequest) (agentapi.EventResponse, error) {
	var resp agentapi.EventResponse
	if err := req.Check(); err != nil {
		return resp, contractError(err)
	}
	h := Happening{Actor: s.agentActor(m), Message: req.Message, Retryable: req.Retryable, Progress: req.Progress}
	switch req.Kind {
	case agentapi.EventStarted, agentapi.EventProgress:
		h.Kind = OnStarted
	case agentapi.EventFinished:
		h.Kind = OnFinished
	case agentapi.EventFailed:
		h.Kind = OnFailed
	}
	var estimate *Estimate
	if e := req.Estimate; e.Usable() { // past its bounds, minutes of it would overflow
		estimate = &Estimate{Seconds: e.Seconds, FilamentMM: e.FilamentMM}
	}
	var lab Lab
	if h.Kind == OnFinished || estimate != nil { // the lab's policy decides those
		var err error
		if lab, err = s.labs.labByID(ctx, s.store, m.LabID); err != nil {
			return resp, err
		}
	}
	// At a lab that requires credits the job's hold follows the slicer's estimate; a
	// larger hold the requester cannot cover stops the print before it starts.
	var hold int64
	var short *InsufficientCredit
	if estimate != nil && lab.Policy.Credits == CreditsRequired {
		cur, err := s.store.Job(ctx, id)
		if err != nil {
			return resp, fmt.Errorf("job %s: %w", id, err)
		}
		if err := s.checkLease(m, cur, req.Lease); err != nil {
			return resp, err
		}
		hold = max(minutesOf(time.Duration(estimate.Seconds*float64(time.Second))), 1)
		if err := s.ledger.AdjustHold(ctx, UserAccount(cur.Requester), id, hold); err != nil && !errors.As(err, &short) {
			return resp, err
		}
	}
	j, fx, err := s.change(ctx, id, func(j Job, now time.Time) (Job, Effects, error) {
		if err := s.checkLease(m, j, req.Lease); err != nil {
			return j, Effects{}, err
		}
		h := h
		if hold > 0 && short == nil {
			j.HoldMinutes = hold
		}
		if short != nil && (j.State == JobAssigned || j.State == JobPrinting) {
			h.Kind, h.Message = OnOverLimit, fmt.Sprintf("the slicer estimates %d machine-minutes and the requester cannot cover them: %v", hold, short)
		}
		if estimate != nil {
			j.Estimate = estimate
			if max := lab.Policy.MaxJobHours; max > 0 && estimate.Seconds > max*3600 && (j.State == JobAssigned || j.State == JobPrinting) {
				// The lab's limit on machine time, enforced here as well as in the agent.
				h.Kind, h.Message = OnOverLimit, fmt.Sprintf("the slicer estimates %.1f h and %s allows jobs of up to %g h", estimate.Seconds/3600, lab.Name, max)
			}
		}
		return Transition(j, h, s.rules(lab), now)
	})
	if err != nil {
		return resp, err
	}
	resp.Cancel = fx.Cancel
	if j.LeaseExpires != nil && j.Holding {
		resp.LeaseExpires = *j.LeaseExpires
	}
	if fx.Released {
		m.State = MachineIdle
		s.publishMachine(m)
	}
	return resp, nil
}

// FileFor checks that the machine holds job id with a live lease and returns the job,
// whose file the web layer then serves.
func (s *Scheduler) FileFor(ctx context.Context, m Machine, id, lease string) (Job, error) {
	j, err := s.store.Job(ctx, id)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", id, err)
	}
	if err := s.checkLease(m, j, lease); err != nil {
		return Job{}, err
	}
	if j.State != JobAssigned && j.State != JobPrinting {
		return Job{}, fmt.Errorf("job %s is %s: %w", id, j.State, ErrStaleLease)
	}
	if hidden, err := s.designs.Hidden(ctx, j.DesignID); err != nil {
		return Job{}, err
	} else if hidden {
		return Job{}, fmt.Errorf("the design of job %s was hidden by the maintainers; it is not made: %w", id, storage.ErrForbidden)
	}
	return j, nil
}

// ExpireLeases is the rescuer: for every lease that ran out, a job that never started
// goes back to the queue (its old lease now stale), a job that was printing becomes
// unknown — never queued again by itself, as that could print a second copy — and a
// canceled job lets go of its machine.
func (s *Scheduler) ExpireLeases(ctx context.Context) (int, error) {
	jobs, err := s.store.ExpiredLeases(ctx, s.now(), 500)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, stale := range jobs {
		_, _, err := s.change(ctx, stale.ID, func(j Job, now time.Time) (Job, Effects, error) {
			if j.LeaseExpires == nil || j.LeaseExpires.After(now) {
				return j, Effects{}, errNothingToDo // renewed since we looked
			}
			return Transition(j, Happening{Kind: OnLeaseExpiry, Actor: "hub"}, s.rules(Lab{}), now)
		})
		var illegal *IllegalError
		if errors.Is(err, errNothingToDo) || errors.As(err, &illegal) {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

var errNothingToDo = errors.New("nothing to do")

// contractError is an agent's message that breaks the contract (agentapi's Check), as
// the hub's invalid-request error naming the field.
func contractError(err error) error {
	var fe *agentapi.FieldError
	if errors.As(err, &fe) {
		return storage.Invalid(fe.Field, fe.Message)
	}
	return err
}
