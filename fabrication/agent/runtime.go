package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// Agent runs one machine.
type Agent struct {
	Client   *Client
	Driver   Driver
	Journal  *Journal
	StateDir string
	// Slicer, when set, turns mesh files into G-code before they reach the printer.
	Slicer Slicer
	// Camera, when set, takes a still of each finished print for the hub (see photograph).
	Camera Camera
	Log    *slog.Logger
	// Progress, when set, hears download progress (fabagent draws a bar on a terminal).
	Progress func(done, total int64)

	// ReadyEvery is how often a printer that cannot take work is looked at again
	// (default 5 s).
	ReadyEvery time.Duration

	heartbeat  time.Duration
	lastReport time.Time
	notReady   string // the last reason the printer could not take work, logged once
	// settlingSince: when the printer first said the held print's record is not written
	// yet (see settle).
	settlingSince time.Time
}

// Run works until ctx ends. Ending it (SIGTERM) stops the agent taking new work; a
// print in progress is reported and left to the printer, and the journal lets the
// next start pick it up again.
func (a *Agent) Run(ctx context.Context) error {
	a.heartbeat = 10 * time.Second
	for ctx.Err() == nil {
		var err error
		if a.Journal.Held != nil {
			err = a.tend(ctx)
		} else {
			err = a.pull(ctx)
		}
		switch {
		case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrProtocol):
			return err
		case errors.Is(err, ErrPrinterAuth):
			// Every print would fail the same way: stop, saying why in one line (fabagent
			// prints it). A job still being fetched is handed back; one the printer may
			// have (starting, printing) stays in the journal for the next start to settle
			// with the printer's own records.
			if h := a.Journal.Held; h != nil && h.Phase == PhaseFetching {
				hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				a.handBack(hctx, h, "the printer refused the agent's API key")
				cancel()
			}
			return err
		case err != nil && ctx.Err() == nil:
			a.Log.Warn("agent step failed; trying again", "err", err)
			sleep(ctx, 2*time.Second)
		}
	}
	a.farewell()
	return nil
}

// farewell tells the hub, on the way out, what happens to the job in hand: a job not yet
// on the printer is handed back at once (no waiting for its lease to run out); a print
// in progress stays with the printer and the next start picks it up.
func (a *Agent) farewell() {
	h := a.Journal.Held
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if h.Phase == PhaseFetching {
		a.handBack(ctx, h, "the agent stopped before printing")
		return
	}
	st, err := a.Driver.Status(ctx, h.Print())
	if err != nil || st.State != PrinterPrinting {
		a.Log.Info("stopping; the next start reports the job's outcome", "job", h.Job.ID)
		return
	}
	a.Log.Info("stopping; the printer keeps its job and the next start picks it up", "job", h.Job.ID)
	a.report(ctx, h, agentapi.EventRequest{Kind: agentapi.EventProgress, Progress: st.Progress, Message: "agent stopping; the printer carries on"})
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// pull long-polls for a job and records it in the journal before anything else. A
// printer that cannot take work (busy with a print of its own, paused, off) is polled
// for as "busy", so the hub gives this machine nothing until it is free again.
func (a *Agent) pull(ctx context.Context) error {
	state, wait := agentapi.StateIdle, 30
	if err := a.Driver.Ready(ctx); err != nil {
		if errors.Is(err, ErrPrinterAuth) {
			return err
		}
		if err.Error() != a.notReady {
			a.Log.Warn("the printer cannot take work; waiting", "why", err)
			a.notReady = err.Error()
		}
		state, wait = agentapi.StateBusy, 0
	} else if a.notReady != "" {
		a.Log.Info("the printer is ready for work again")
		a.notReady = ""
	}
	resp, err := a.Client.Poll(ctx, agentapi.PollRequest{State: state, Jobs: []agentapi.HeldJob{}, WaitSeconds: wait})
	if err == nil && resp != nil && resp.HeartbeatS > 0 {
		a.heartbeat = time.Duration(resp.HeartbeatS) * time.Second
	}
	if state == agentapi.StateBusy {
		sleep(ctx, a.readyEvery())
	}
	if err != nil || resp == nil || resp.Job == nil {
		return err
	}
	if !agentapi.ValidJobID(resp.Job.ID) {
		// It would become part of paths on this machine and on the printer. Nothing is
		// recorded: the lease runs out and the hub queues the job again.
		return fmt.Errorf("the hub sent a job id that is not a plain name (%q); ignoring it", resp.Job.ID)
	}
	h := &Held{Job: *resp.Job, Lease: resp.Lease, Phase: PhaseFetching, File: filepath.Join(a.StateDir, "jobs", resp.Job.ID+safeExt(resp.Job.File))}
	a.Log.Info("job claimed", "job", h.Job.ID, "attempt", h.Job.Attempt, "design", h.Job.Design, "file", h.Job.File)
	if err := a.Journal.Set(h); err != nil {
		return err
	}
	return a.fetchAndStart(ctx, h, resp.FileURL)
}

func (a *Agent) readyEvery() time.Duration {
	if a.ReadyEvery > 0 {
		return a.ReadyEvery
	}
	return 5 * time.Second
}

// handBack returns a job that never reached the printer to the hub's queue (a poll
// that reports it gone): no print was made, so it is not a failed attempt. The agent
// says it is busy in the same poll, so no new job comes back. The journal says so
// first: if the hub's answer is lost, the next round hands it back again instead of
// starting a job the hub may already have given to another machine.
func (a *Agent) handBack(ctx context.Context, h *Held, why string) error {
	a.Log.Info("handing the job back; it was not printed", "job", h.Job.ID, "why", why)
	if h.Phase != PhaseHandingBack {
		h.Phase, h.HandBackWhy = PhaseHandingBack, why
		if err := a.Journal.Set(h); err != nil {
			return err
		}
	}
	_, err := a.Client.Poll(ctx, agentapi.PollRequest{State: agentapi.StateBusy,
		Jobs: []agentapi.HeldJob{{ID: h.Job.ID, Lease: h.Lease, State: agentapi.HeldGone, Message: h.HandBackWhy}}})
	if err != nil {
		return err
	}
	return a.drop(h)
}
