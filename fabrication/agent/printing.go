package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

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
			fileURL = agentapi.JobPath(agentapi.PathJobFile, h.Job.ID)
		}
		if err := a.Client.Download(ctx, fileURL, h.Lease, h.Job.SHA256, h.File, a.Progress); err != nil {
			if errors.Is(err, ErrStale) || errors.Is(err, ErrRefused) {
				// A refused file (its hash wrong, its design hidden) will be refused again.
				a.report(ctx, h, agentapi.EventRequest{Kind: agentapi.EventFailed, Message: "the file could not be fetched: " + err.Error(), Retryable: !errors.Is(err, ErrRefused)})
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
		st, err := a.Driver.Status(ctx, h.Print())
		if err != nil {
			return fmt.Errorf("printer status: %w", err) // try again; the journal keeps the phase
		}
		if st.State == PrinterGone {
			if started, err := a.start(ctx, h); !started {
				return err
			}
		}
		h.Phase = PhasePrinting
		return a.Journal.Set(h)
	}
	return nil
}

// start hands the file to the printer. Handing over a file is not cut short by
// SIGTERM: a half-sent upload could leave a print the agent no longer knows about.
// It ends one of three ways: started (the printer has the print); not started with a
// nil error (the job was handed back or failed, and dropped); or not started with an
// error, after which the journal still holds the job for the next round.
func (a *Agent) start(ctx context.Context, h *Held) (started bool, err error) {
	startCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	err = a.Driver.Start(startCtx, h.Print(), h.PrintFile())
	cancel()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrPrinterBusy):
		// Another print took the printer between the poll and now: the job goes back
		// to the queue untouched, and this agent waits for its printer.
		return false, a.handBack(ctx, h, err.Error())
	case errors.Is(err, ErrPrinterAuth):
		// Start's word that nothing was printed: hand it back, then Run stops.
		if herr := a.handBack(ctx, h, "the printer refused the agent's API key"); herr != nil {
			return false, herr
		}
		return false, err
	}
	if st, serr := a.Driver.Status(context.WithoutCancel(ctx), h.Print()); serr != nil || st.State != PrinterGone {
		return false, fmt.Errorf("the printer's answer to the start was lost (%w); its status decides next", err)
	}
	a.Log.Warn("the printer refused the job", "job", h.Job.ID, "err", err)
	a.report(ctx, h, agentapi.EventRequest{Kind: agentapi.EventFailed, Message: "the printer refused the job: " + err.Error(), Retryable: true})
	return false, a.drop(h)
}

// tend looks after the held job: asks the printer how it is going and tells the hub,
// at the heartbeat the hub asked for.
func (a *Agent) tend(ctx context.Context) error {
	h := a.Journal.Held
	if h.Phase == PhaseHandingBack {
		return a.handBack(ctx, h, h.HandBackWhy)
	}
	if h.Phase != PhasePrinting {
		// A restart before the printer had it: find out whether it did.
		st, err := a.Driver.Status(ctx, h.Print())
		if err != nil {
			return fmt.Errorf("printer status: %w", err)
		}
		if st.State == PrinterGone {
			return a.fetchAndStart(ctx, h, "")
		}
		h.Phase = PhasePrinting
		if err := a.Journal.Set(h); err != nil {
			return err
		}
	}
	st, err := a.Driver.Status(ctx, h.Print())
	if err != nil {
		return fmt.Errorf("printer status: %w", err)
	}
	st = a.settle(st)
	var req agentapi.EventRequest
	switch st.State {
	case PrinterFinished:
		if err := a.photograph(ctx, h); err != nil {
			return err
		}
		req = agentapi.EventRequest{Kind: agentapi.EventFinished, Progress: 100, Message: st.Message}
	case PrinterFailed:
		// A fault of the machine is worth another try; a print stopped on purpose, at
		// the printer or through the hub, is not.
		msg := st.Message
		if h.CancelRequested {
			msg = "canceled"
		}
		req = agentapi.EventRequest{Kind: agentapi.EventFailed, Progress: st.Progress, Message: msg, Retryable: !st.Canceled && !h.CancelRequested}
	case PrinterGone, PrinterUnknown:
		// The printer had this print and can no longer say how it ended. Only a person
		// can say what is on the bed: the agent forgets the job, and the hub, no longer
		// hearing of it, marks it unknown for an operator to resolve.
		a.Log.Warn("the printer cannot say how this print ended; leaving it to an operator", "job", h.Job.ID, "printer", st.Message)
		return a.drop(h)
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
	case errors.Is(err, ErrRefused):
		// The hub will not take this report and saying it again cannot change that:
		// let go, and the hub, no longer hearing of the job, has an operator look.
		a.Log.Error("the hub refused a report on the job; leaving it to an operator", "job", h.Job.ID, "err", err)
		return a.drop(h)
	case err != nil:
		return err
	case resp.Cancel && req.Kind == agentapi.EventProgress:
		a.Log.Info("job canceled on the hub; stopping the print", "job", h.Job.ID)
		if !h.CancelRequested {
			h.CancelRequested = true
			if err := a.Journal.Set(h); err != nil {
				return err
			}
		}
		if err := a.Driver.Cancel(ctx, h.Print()); err != nil {
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

// photographLimit bounds the camera and the upload together: a photo never holds up
// the report of a finished print for longer.
const photographLimit = 45 * time.Second

// photograph sends the hub a still of a finished print, once per job, before the
// print is reported finished (the lease still holds then). Whatever goes wrong with
// the camera or the upload is logged and the job goes on: the only error it returns
// is the journal's.
func (a *Agent) photograph(ctx context.Context, h *Held) error {
	if a.Camera == nil || h.Photographed {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, photographLimit)
	defer cancel()
	snap, err := a.Camera.Snapshot(pctx)
	switch {
	case errors.Is(err, ErrNoCamera):
		a.Log.Info("no photo of the print: the printer has no camera", "job", h.Job.ID, "why", err)
	case err != nil:
		a.Log.Warn("no photo of the print: the camera did not give one", "job", h.Job.ID, "err", err)
	default:
		if resp, err := a.Client.Photo(pctx, h.Job.ID, h.Lease, snap.ContentType, snap.Data); err != nil {
			a.Log.Warn("no photo of the print: the hub did not take it", "job", h.Job.ID, "err", err)
		} else {
			a.Log.Info("photo of the print sent", "job", h.Job.ID, "bytes", len(snap.Data), "key", resp.Key)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err() // stopping: the next start photographs it
	}
	h.Photographed = true
	return a.Journal.Set(h)
}

func (a *Agent) report(ctx context.Context, h *Held, req agentapi.EventRequest) (agentapi.EventResponse, error) {
	req.Lease = h.Lease
	req.Message = reportable(req.Message)
	return a.Client.Event(ctx, h.Job.ID, req)
}

// maxMessage is the longest message the hub takes in a report (500 characters), with room.
const maxMessage = 400

// reportable makes a printer's text fit a report (oneLine, at most maxMessage
// characters). Printers say what they like (Klipper's shutdown message runs to
// several lines), and the hub refuses what is too long.
func reportable(s string) string { return oneLine(s, maxMessage) }

// oneLine is s on one line, without control characters, cut to at most max characters
// (never inside one).
func oneLine(s string, max int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}

// settleLimit is how long a printer may say it is still writing a print's record
// before the agent stops waiting and leaves the job to an operator.
const settleLimit = 2 * time.Minute

// settle bounds a printer's "the print ended; its record is not written yet" (or
// "taken; not shown started yet"): past settleLimit the outcome is unknown.
func (a *Agent) settle(st Status) Status {
	if !st.Settling {
		a.settlingSince = time.Time{}
		return st
	}
	if a.settlingSince.IsZero() {
		a.settlingSince = time.Now()
	}
	if time.Since(a.settlingSince) > settleLimit {
		a.settlingSince = time.Time{}
		return Status{State: PrinterUnknown, Message: "the printer never showed how the print stands (" + st.Message + ")"}
	}
	return st
}

func (a *Agent) drop(h *Held) error {
	os.Remove(h.File)
	os.Remove(h.File + ".part") // a download cut short (Client.Download resumes from it)
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
