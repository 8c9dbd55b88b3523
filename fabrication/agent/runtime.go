package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// Agent runs one machine.
type Agent struct {
	Client       *Client
	Driver       Driver
	Journal      *Journal
	StateDir     string
	Capabilities agentapi.Capabilities
	// Slicer, when set, turns mesh files into G-code before they reach the printer.
	Slicer Slicer
	Log    *slog.Logger
	// Progress, when set, hears download progress (fabagent draws a bar on a terminal).
	Progress func(done, total int64)

	heartbeat  time.Duration
	lastReport time.Time
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
		case errors.Is(err, ErrUnauthorized):
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
		a.Log.Info("stopping; handing the job back before it reached the printer", "job", h.Job.ID)
		if _, err := a.report(ctx, h, agentapi.EventRequest{Kind: agentapi.EventFailed, Message: "the agent stopped before printing", Retryable: true}); err == nil || errors.Is(err, ErrStale) {
			a.drop(h)
		}
		return
	}
	st, err := a.Driver.Status(ctx, h.Job.ID)
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

// pull long-polls for a job and records it in the journal before anything else.
func (a *Agent) pull(ctx context.Context) error {
	resp, err := a.Client.Poll(ctx, agentapi.PollRequest{Capabilities: a.Capabilities, State: "idle", Jobs: []agentapi.HeldJob{}, WaitSeconds: 30})
	if err != nil || resp == nil || resp.Job == nil {
		return err
	}
	if resp.HeartbeatS > 0 {
		a.heartbeat = time.Duration(resp.HeartbeatS) * time.Second
	}
	h := &Held{Job: *resp.Job, Lease: resp.Lease, Phase: PhaseFetching, File: filepath.Join(a.StateDir, "jobs", resp.Job.ID+safeExt(resp.Job.File))}
	a.Log.Info("job claimed", "job", h.Job.ID, "design", h.Job.Design, "file", h.Job.File)
	if err := a.Journal.Set(h); err != nil {
		return err
	}
	return a.fetchAndStart(ctx, h, resp.FileURL)
}

// fetchAndStart downloads and checks the file, tells the hub the job starts, then
// hands it to the printer. That order means a crash can leave the hub thinking a job
// started that the printer never got (the next start reports it gone and the hub
// queues it again), but never a print the hub does not know about.
func (a *Agent) fetchAndStart(ctx context.Context, h *Held, fileURL string) error {
	if h.Phase == PhaseFetching {
		if err := os.MkdirAll(filepath.Dir(h.File), 0o700); err != nil {
			return err
		}
		if fileURL == "" {
			fileURL = "/api/v1/agent/jobs/" + h.Job.ID + "/file"
		}
		if err := a.Client.Download(ctx, fileURL, h.Lease, h.Job.SHA256, h.File, a.Progress); err != nil {
			if errors.Is(err, ErrStale) || errors.Is(err, ErrRefused) {
				a.report(ctx, h, agentapi.EventRequest{Kind: agentapi.EventFailed, Message: "the file could not be fetched: " + err.Error(), Retryable: true})
				return a.drop(h)
			}
			return err
		}
		if a.Slicer != nil && isMesh(h.File) {
			if err := a.slice(ctx, h); err != nil {
				if ctx.Err() != nil {
					return ctx.Err() // stopping: the farewell hands the job back
				}
				a.report(ctx, h, agentapi.EventRequest{Kind: agentapi.EventFailed, Message: "slicing: " + err.Error(), Retryable: !errors.Is(err, errTooLong), Estimate: h.Estimate})
				return a.drop(h)
			}
		}
		resp, err := a.Client.Event(ctx, h.Job.ID, agentapi.EventRequest{Lease: h.Lease, Kind: agentapi.EventStarted, Message: "starting", Estimate: h.Estimate})
		if errors.Is(err, ErrStale) {
			return a.drop(h)
		}
		if err != nil {
			return err
		}
		if resp.Cancel { // canceled meanwhile, or over the lab's limits: never reaches the printer
			a.Log.Info("the hub called the job off before it started", "job", h.Job.ID)
			a.report(ctx, h, agentapi.EventRequest{Kind: agentapi.EventFailed, Message: "called off before printing"}) // lets go of the machine
			return a.drop(h)
		}
		h.Phase = PhaseStarting
		if err := a.Journal.Set(h); err != nil {
			return err
		}
	}
	if h.Phase == PhaseStarting {
		st, err := a.Driver.Status(ctx, h.Job.ID)
		if err != nil {
			return fmt.Errorf("printer status: %w", err) // try again; the journal keeps the phase
		}
		if st.State == PrinterGone {
			// Handing over a file is not cut short by SIGTERM: a half-sent upload could
			// leave a print the agent no longer knows about.
			startCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
			err := a.Driver.Start(startCtx, h.Job.ID, h.PrintFile())
			cancel()
			if err != nil {
				if st, serr := a.Driver.Status(context.WithoutCancel(ctx), h.Job.ID); serr != nil || st.State != PrinterGone {
					return fmt.Errorf("the printer's answer to the start was lost (%v); its status decides next", err)
				}
				a.report(ctx, h, agentapi.EventRequest{Kind: agentapi.EventFailed, Message: "the printer refused the job: " + err.Error(), Retryable: true})
				return a.drop(h)
			}
		}
		h.Phase = PhasePrinting
		return a.Journal.Set(h)
	}
	return nil
}

// tend looks after the held job: asks the printer how it is going and tells the hub,
// at the heartbeat the hub asked for.
func (a *Agent) tend(ctx context.Context) error {
	h := a.Journal.Held
	if h.Phase != PhasePrinting {
		// A restart before the printer had it: find out whether it did.
		st, err := a.Driver.Status(ctx, h.Job.ID)
		if err != nil || st.State == PrinterGone {
			return a.fetchAndStart(ctx, h, "")
		}
		h.Phase = PhasePrinting
	}
	st, err := a.Driver.Status(ctx, h.Job.ID)
	if err != nil {
		return fmt.Errorf("printer status: %w", err)
	}
	var req agentapi.EventRequest
	switch st.State {
	case PrinterFinished:
		req = agentapi.EventRequest{Kind: agentapi.EventFinished, Progress: 100, Message: st.Message}
	case PrinterFailed:
		req = agentapi.EventRequest{Kind: agentapi.EventFailed, Progress: st.Progress, Message: st.Message, Retryable: st.Message != "canceled"}
	case PrinterGone:
		req = agentapi.EventRequest{Kind: agentapi.EventFailed, Message: "the printer has no record of this job", Retryable: true}
	default:
		req = agentapi.EventRequest{Kind: agentapi.EventProgress, Progress: st.Progress, Message: st.Message}
	}
	if req.Kind == agentapi.EventProgress && time.Since(a.lastReport) < a.heartbeat {
		sleep(ctx, 2*time.Second) // look at the printer often, tell the hub at its heartbeat
		return nil
	}
	resp, err := a.report(ctx, h, req)
	a.lastReport = time.Now()
	switch {
	case errors.Is(err, ErrStale):
		a.Log.Warn("the hub took the job back; dropping it", "job", h.Job.ID)
		return a.drop(h)
	case err != nil:
		return err
	case resp.Cancel && req.Kind == agentapi.EventProgress:
		a.Log.Info("job canceled on the hub; stopping the print", "job", h.Job.ID)
		if err := a.Driver.Cancel(ctx, h.Job.ID); err != nil {
			return err
		}
		return nil // the next round reports it failed (canceled) and lets go
	case req.Kind != agentapi.EventProgress:
		a.Log.Info("job ended", "job", h.Job.ID, "outcome", req.Kind)
		return a.drop(h)
	}
	sleep(ctx, 2*time.Second)
	return nil
}

func (a *Agent) report(ctx context.Context, h *Held, req agentapi.EventRequest) (agentapi.EventResponse, error) {
	req.Lease = h.Lease
	return a.Client.Event(ctx, h.Job.ID, req)
}

func (a *Agent) drop(h *Held) error {
	os.Remove(h.File)
	if h.Sliced != "" {
		os.Remove(h.Sliced)
	}
	return a.Journal.Set(nil)
}

// errTooLong: the slicer says the print is longer than the lab allows; no machine of the
// lab will do better, so it is not worth a retry.
var errTooLong = errors.New("too long for this lab")

func (a *Agent) slice(ctx context.Context, h *Held) error {
	out := strings.TrimSuffix(h.File, filepath.Ext(h.File)) + ".gcode"
	a.Log.Info("slicing", "job", h.Job.ID, "file", h.Job.File)
	est, err := a.Slicer.Slice(ctx, h.File, out)
	if err != nil {
		return err
	}
	a.Log.Info("sliced", "job", h.Job.ID, "print_seconds", est.Seconds, "filament_mm", est.FilamentMM)
	if h.Job.MaxHours > 0 && est.Seconds > h.Job.MaxHours*3600 {
		return fmt.Errorf("%w: the print would take %.1f h and the lab allows %g h", errTooLong, est.Seconds/3600, h.Job.MaxHours)
	}
	h.Sliced, h.Estimate = out, &est
	return a.Journal.Set(h)
}

func isMesh(file string) bool {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".stl", ".3mf", ".obj":
		return true
	}
	return false
}

// safeExt keeps a file name's extension only when it is plain (letters and digits):
// it ends up in a path on this machine and, with the command driver, near a shell.
func safeExt(name string) string {
	ext := strings.ToLower(filepath.Ext(name))
	if len(ext) < 2 || len(ext) > 9 {
		return ""
	}
	for _, r := range ext[1:] {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return ""
		}
	}
	return ext
}
