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

func (s *Service) agentActor(m Machine) string { return "machine:" + m.Name }

// Poll answers an agent's poll without waiting: it records that the machine is alive,
// reconciles the jobs the agent says it holds, and claims the first queued job that
// fits the machine in the lab's order of service. A nil Job means there is no work
// now; busy says the machine cannot take any (it holds a job, or is in maintenance or
// unapproved), so waiting for work is pointless.
func (s *Service) Poll(ctx context.Context, m Machine, req agentapi.PollRequest) (resp agentapi.PollResponse, busy bool, err error) {
	resp = agentapi.PollResponse{HeartbeatS: s.HeartbeatSeconds()}
	if req.Protocol != agentapi.Protocol {
		return resp, true, fmt.Errorf("%w: the hub speaks protocol %d, the agent %d; upgrade the agent", ErrUnsupported, agentapi.Protocol, req.Protocol)
	}
	now := s.clock()
	if m.LastSeen == nil || now.Sub(*m.LastSeen) > time.Duration(s.HeartbeatSeconds())*time.Second/2 || m.State == MachineOffline {
		if err := s.store.TouchMachine(ctx, m.ID, now); err != nil {
			return resp, true, err
		}
		if m.State == MachineOffline {
			m.LastSeen, m.State = &now, MachineIdle
			s.publishMachine(m)
		}
	}
	busy, drop, err := s.reconcile(ctx, m, req.Jobs)
	if err != nil {
		return resp, true, err
	}
	resp.Drop = drop
	if busy || m.Maintenance || !m.Approved || req.State == agentapi.StateMaintenance || req.State == agentapi.StateBusy {
		return resp, true, nil
	}
	j, lease, err := s.claim(ctx, m)
	if err != nil || j == nil {
		return resp, false, err
	}
	lab, err := s.store.LabByID(ctx, m.LabID)
	if err != nil {
		return resp, false, err
	}
	resp.Job = &agentapi.Job{ID: j.ID, Attempt: j.Attempts, Design: j.DesignSlug, Version: j.Version, File: j.File, SHA256: j.SHA256, Size: j.Size,
		Material: j.Material, Colour: j.Colour, BBox: [3]float64{j.BBox.X, j.BBox.Y, j.BBox.Z}, MaxHours: lab.Policy.MaxJobHours}
	resp.Lease, resp.LeaseExpires = lease, *j.LeaseExpires
	resp.FileURL = agentapi.JobPath(agentapi.PathJobFile, j.ID)
	return resp, false, nil
}

// Machine finds a machine by id.
func (s *Service) Machine(ctx context.Context, id string) (Machine, error) {
	return s.store.Machine(ctx, id)
}

// Machines lists a lab's machines (everyone may see them).
func (s *Service) Machines(ctx context.Context, labID string) ([]Machine, error) {
	return s.store.Machines(ctx, labID)
}

// LabByID finds a lab by id.
func (s *Service) LabByID(ctx context.Context, id string) (Lab, error) {
	return s.store.LabByID(ctx, id)
}

// claimWindow is how many queued jobs, from the head of the queue, a claim considers.
// Decoding more costs every poll; a job deeper in the queue that only this machine
// fits waits until the head drains (the lab page says why it waits).
const claimWindow = 64

// claim takes the first fitting job in order of service with a compare-and-set from
// queued to assigned; losing a race to another hub just moves on to the next one.
func (s *Service) claim(ctx context.Context, m Machine) (*Job, string, error) {
	for range 2 * claimWindow {
		j, ok, err := s.takeQueued(ctx, m)
		if err != nil || !ok {
			return nil, "", err
		}
		// A compare-and-set on the rev the queue showed: losing a race costs one write
		// that matches nothing, and the stored log is kept and appended to.
		lease, hash := secret("fab_l_")
		now := s.clock()
		expires := now.Add(s.opts.LeaseTTL)
		prev := j.Rev
		j.State, j.MachineID, j.Holding, j.LeaseHash, j.LeaseExpires = JobAssigned, m.ID, true, hash, &expires
		j.Attempts++
		j.Progress, j.Message, j.UpdatedAt = 0, "", now
		e := Event{At: now, Kind: JobAssigned, From: JobQueued, To: JobAssigned, Actor: "hub", Message: "assigned to " + m.Name}
		err = s.store.ClaimJob(ctx, j, prev, e)
		if errors.Is(err, storage.ErrConflict) {
			continue // another hub took it, or it changed: try the next
		}
		if err != nil {
			return nil, "", err
		}
		j.Events = append(j.Events, e)
		j.Rev = prev + 1
		s.publishJob(j)
		m.State = MachineBusy
		s.publishMachine(m)
		return &j, lease, nil
	}
	return nil, "", nil
}

// reconcile compares what the agent says it holds with what the hub thinks the machine
// holds. It reports whether the machine is still occupied and which held jobs the
// agent must drop (not its, or canceled).
func (s *Service) reconcile(ctx context.Context, m Machine, held []agentapi.HeldJob) (busy bool, drop []string, err error) {
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
			// The printer never started it: handing it back cannot make a second copy.
			// The agent reports "started" before it hands the file to the printer, so a
			// printing job can also be gone if the agent died in between. An agent whose
			// printer was taken by another print hands a job back this way too.
			why := "the agent never started it"
			if h.Message != "" && checkText("message", h.Message, 500, false) == nil {
				why = "handed back, never printed: " + h.Message
			}
			_, err = s.update(ctx, h.ID, func(j *Job) error {
				if j.State != JobAssigned && j.State != JobPrinting && j.State != JobUnknown {
					return nil
				}
				s.release(j)
				j.EnqueuedAt = s.clock()
				s.moveTo(j, JobQueued, s.agentActor(m), why)
				return nil
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
		case JobAssigned:
			// Claimed but the agent does not have it (the reply was lost, or it restarted
			// before starting): nothing was printed, so it goes back to the queue.
			_, err = s.update(ctx, j.ID, func(j *Job) error {
				if j.State != JobAssigned || j.MachineID != m.ID {
					return nil
				}
				s.release(j)
				j.EnqueuedAt = s.clock()
				s.moveTo(j, JobQueued, "hub", "the agent did not report it; it had not started")
				return nil
			})
		case JobCanceled:
			_, err = s.update(ctx, j.ID, func(j *Job) error { s.release(j); return nil })
		case JobPrinting:
			// The agent forgot a print it started: only a person can say what is on the bed.
			_, err = s.update(ctx, j.ID, func(j *Job) error {
				if j.State != JobPrinting {
					return nil
				}
				s.moveTo(j, JobUnknown, "hub", "the agent no longer reports this print; check the machine and resolve it")
				return nil
			})
			busy = true
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
func (s *Service) checkLease(ctx context.Context, m Machine, j Job, lease string) error {
	if j.LabID != m.LabID {
		return fmt.Errorf("job %s belongs to another lab: %w", j.ID, storage.ErrForbidden)
	}
	if j.MachineID != m.ID || j.LeaseHash == "" || j.LeaseHash != hashSecret(lease) {
		return fmt.Errorf("job %s: %w", j.ID, ErrStaleLease)
	}
	return nil
}

// Event records an agent's report on a job it holds and extends the lease. The reply
// says cancel: true when the job was canceled.
func (s *Service) Event(ctx context.Context, m Machine, id string, req agentapi.EventRequest) (agentapi.EventResponse, error) {
	var resp agentapi.EventResponse
	if err := checkText("message", req.Message, 500, false); err != nil {
		return resp, err
	}
	if req.Progress < 0 || req.Progress > 100 {
		return resp, storage.Invalid("progress", "want 0 to 100")
	}
	var usedSeconds float64
	j, err := s.update(ctx, id, func(j *Job) error {
		resp, usedSeconds = agentapi.EventResponse{}, 0
		if err := s.checkLease(ctx, m, *j, req.Lease); err != nil {
			return err
		}
		now := s.clock()
		actor := s.agentActor(m)
		if req.Estimate != nil && req.Estimate.Seconds >= 0 && req.Estimate.FilamentMM >= 0 {
			j.Estimate = &Estimate{Seconds: req.Estimate.Seconds, FilamentMM: req.Estimate.FilamentMM}
			if j.State == JobAssigned || j.State == JobPrinting {
				lab, err := s.store.LabByID(ctx, j.LabID)
				if err != nil {
					return err
				}
				if max := lab.Policy.MaxJobHours; max > 0 && j.Estimate.Seconds > max*3600 {
					// The lab's limit on machine time, enforced here as well as in the agent.
					s.release(j)
					j.FinishedAt, resp.Cancel = &now, true
					j.Message = fmt.Sprintf("the slicer estimates %.1f h and %s allows jobs of up to %g h", j.Estimate.Seconds/3600, lab.Name, max)
					s.moveTo(j, JobFailed, actor, j.Message)
					return nil
				}
			}
		}
		if j.State == JobCanceled {
			resp.Cancel = true
			if req.Kind == agentapi.EventFinished || req.Kind == agentapi.EventFailed {
				s.release(j)
			}
			return nil
		}
		switch req.Kind {
		case agentapi.EventStarted, agentapi.EventProgress:
			switch j.State {
			case JobAssigned, JobUnknown:
				if j.StartedAt == nil {
					j.StartedAt = &now
				}
				s.moveTo(j, JobPrinting, actor, req.Message)
			case JobPrinting:
				if req.Message != "" && req.Message != j.Message {
					s.logEvent(j, Event{Kind: "progress", Actor: actor, Message: req.Message})
				}
			default:
				return wrongState(*j, "report progress on")
			}
			j.Progress, j.Message = req.Progress, req.Message
		case agentapi.EventFinished:
			if j.State != JobAssigned && j.State != JobPrinting && j.State != JobUnknown {
				return wrongState(*j, "finish")
			}
			lab, err := s.store.LabByID(ctx, j.LabID)
			if err != nil {
				return err
			}
			usedSeconds = sinceStart(j, now)
			j.Progress, j.FinishedAt, j.Message = 100, &now, req.Message
			if lab.Policy.HarvestConfirm {
				j.LeaseHash, j.LeaseExpires = "", nil // the machine stays occupied until harvested
				s.moveTo(j, JobAwaitingHarvest, actor, orDefault(req.Message, "finished; waiting to be taken off the bed"))
			} else {
				s.release(j)
				s.moveTo(j, JobDone, actor, orDefault(req.Message, "finished"))
			}
			return nil
		case agentapi.EventFailed:
			if j.State != JobAssigned && j.State != JobPrinting && j.State != JobUnknown {
				return wrongState(*j, "fail")
			}
			usedSeconds = sinceStart(j, now)
			s.release(j)
			j.Failures++
			// Failures, not claims, count against the limit: a job an agent handed back
			// unprinted (its printer was taken) used a claim but no print.
			if req.Retryable && j.Failures < s.opts.MaxAttempts {
				j.EnqueuedAt, j.Progress, j.StartedAt = now, 0, nil
				s.moveTo(j, JobQueued, actor, fmt.Sprintf("failed (%s); queued again after %d of %d failures", orDefault(req.Message, "no reason given"), j.Failures, s.opts.MaxAttempts))
			} else {
				j.FinishedAt = &now
				s.moveTo(j, JobFailed, actor, orDefault(req.Message, "failed"))
			}
			return nil
		default:
			return storage.Invalid("kind", "want started, progress, finished or failed")
		}
		expires := now.Add(s.opts.LeaseTTL)
		j.LeaseExpires = &expires
		resp.LeaseExpires = expires
		return nil
	})
	if err != nil {
		return resp, err
	}
	if usedSeconds > 0 {
		if err := s.store.AddUsage(ctx, j.LabID, j.RequesterID, usedSeconds, s.clock()); err != nil {
			s.log.Warn("fair-share usage not recorded", "job", j.ID, "err", err)
		}
	}
	if !j.Holding {
		m.State = MachineIdle
		s.publishMachine(m)
		s.feed.WorkAvailable(j.LabID, 1)
	}
	return resp, nil
}

func sinceStart(j *Job, now time.Time) float64 {
	if j.StartedAt == nil {
		return 0
	}
	return now.Sub(*j.StartedAt).Seconds()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// FileFor checks that the machine holds job id with a live lease and returns the job,
// whose file the web layer then serves.
func (s *Service) FileFor(ctx context.Context, m Machine, id, lease string) (Job, error) {
	j, err := s.store.Job(ctx, id)
	if err != nil {
		return Job{}, fmt.Errorf("job %s: %w", id, err)
	}
	if err := s.checkLease(ctx, m, j, lease); err != nil {
		return Job{}, err
	}
	if j.State != JobAssigned && j.State != JobPrinting {
		return Job{}, fmt.Errorf("job %s is %s: %w", id, j.State, ErrStaleLease)
	}
	return j, nil
}

// ExpireLeases is the rescuer: for every lease that ran out, a job that never started
// goes back to the queue (its old lease now stale), a job that was printing becomes
// unknown — never queued again by itself, as that could print a second copy — and a
// canceled job lets go of its machine.
func (s *Service) ExpireLeases(ctx context.Context) (int, error) {
	jobs, err := s.store.ExpiredLeases(ctx, s.now(), 500)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, stale := range jobs {
		j, err := s.update(ctx, stale.ID, func(j *Job) error {
			if j.LeaseExpires == nil || j.LeaseExpires.After(s.now()) {
				return errNothingToDo // renewed since we looked
			}
			switch j.State {
			case JobAssigned:
				s.release(j)
				j.EnqueuedAt = s.clock()
				s.moveTo(j, JobQueued, "hub", "the lease expired before the print started; back in the queue")
			case JobPrinting:
				j.LeaseExpires = nil // keep the lease hash: the agent may come back and say what happened
				s.moveTo(j, JobUnknown, "hub", "the lease expired while printing; waiting for the agent or an operator")
			case JobCanceled:
				s.release(j)
			default:
				return errNothingToDo
			}
			return nil
		})
		if errors.Is(err, errNothingToDo) {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
		if j.State == JobQueued {
			s.feed.WorkAvailable(j.LabID, 1)
		}
	}
	return n, nil
}

var errNothingToDo = errors.New("nothing to do")

// MarkOffline sets machines unheard of for three lease lengths offline.
func (s *Service) MarkOffline(ctx context.Context) (int, error) {
	ids, err := s.store.MarkOffline(ctx, s.now().Add(-3*s.opts.LeaseTTL))
	for _, id := range ids {
		if m, err := s.store.Machine(ctx, id); err == nil {
			s.publishMachine(m)
		}
	}
	return len(ids), err
}

// Harvest confirms that a finished part was taken off the bed; the machine is free.
func (s *Service) Harvest(ctx context.Context, actor Actor, id string) (Job, error) {
	j, err := s.update(ctx, id, func(j *Job) error {
		if err := s.operatorOf(ctx, actor, *j); err != nil {
			return err
		}
		if j.State != JobAwaitingHarvest {
			return wrongState(*j, "harvest")
		}
		s.release(j)
		s.moveTo(j, JobDone, actor.Handle, "taken off the bed")
		return nil
	})
	if err == nil {
		s.feed.WorkAvailable(j.LabID, 1)
	}
	return j, err
}
