package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Moonraker drives a Klipper printer through Moonraker's HTTP API, as Moonraker's and
// Klipper's source behave (paths under Arksine/moonraker's moonraker/ and Klipper's
// klippy/):
//   - the file goes up with POST /server/files/upload (multipart: root=gcodes,
//     checksum=<sha256>, print=true). The answer is the one body Moonraker does not
//     wrap in {"result": ...}; it says print_started: false when Klipper was busy or
//     refused (file_manager.py, _finish_gcode_upload), and print_queued: true when
//     Moonraker's job queue took the file to start later, which the driver undoes;
//   - status comes from GET /printer/objects/query?webhooks&print_stats&virtual_sdcard;
//     a firmware shutdown leaves print_stats "paused" (virtual_sdcard.py), so webhooks
//     is read with it;
//   - a cancel is POST /printer/print/cancel;
//   - a restarted agent reconciles from GET /server/history/list, which outlives the
//     current print (before v0.9 only with a [history] section: 404 otherwise), and
//     from the file's metadata (print_start_time).
type Moonraker struct {
	api printerAPI
}

// NewMoonraker returns a driver for the Moonraker at baseURL.
func NewMoonraker(baseURL, apiKey string) (*Moonraker, error) {
	api, err := newPrinterAPI("moonraker", baseURL, apiKey, func(status int, msg string) bool {
		return status == http.StatusUnauthorized // components/authorization.py, authenticate_request
	})
	if err != nil {
		return nil, err
	}
	return &Moonraker{api: api}, nil
}

// Moonraker wraps every HTTP answer but the upload's in {"result": ...}.
type moonResult[T any] struct {
	Result T `json:"result"`
}

type moonStatus struct {
	Status struct {
		Webhooks struct {
			State        string `json:"state"` // ready, startup, shutdown, error
			StateMessage string `json:"state_message"`
		} `json:"webhooks"`
		PrintStats struct {
			Filename string `json:"filename"`
			State    string `json:"state"` // standby, printing, paused, complete, cancelled, error
			Message  string `json:"message"`
		} `json:"print_stats"`
		VirtualSDCard struct {
			Progress float64 `json:"progress"` // 0..1
		} `json:"virtual_sdcard"`
	} `json:"status"`
}

type moonHistory struct {
	Jobs []struct {
		JobID    string `json:"job_id"`
		Filename string `json:"filename"`
		Status   string `json:"status"` // in_progress, completed, cancelled, error, klippy_shutdown, klippy_disconnect, server_exit, interrupted
	} `json:"jobs"`
}

type moonQueue struct {
	QueuedJobs []struct {
		Filename string `json:"filename"`
		JobID    string `json:"job_id"`
	} `json:"queued_jobs"`
}

func (m *Moonraker) query(ctx context.Context) (moonStatus, error) {
	var q moonResult[moonStatus]
	err := m.api.call(ctx, "GET", "/printer/objects/query?webhooks&print_stats&virtual_sdcard", nil, &q)
	return q.Result, err
}

// Ready: Klipper must be ready (not shut down, not starting) and neither printing nor
// paused. Moonraker answers 503 while Klippy is disconnected, and 404 for /printer/*
// until Klippy first connected.
func (m *Moonraker) Ready(ctx context.Context) error {
	q, err := m.query(ctx)
	if s := statusOf(err); s == http.StatusServiceUnavailable || s == http.StatusNotFound {
		return fmt.Errorf("%w: klipper is not connected to moonraker (%w)", ErrPrinterBusy, err)
	}
	if err != nil {
		return err
	}
	return moonReady(q)
}

func moonReady(q moonStatus) error {
	wh, ps := q.Status.Webhooks, q.Status.PrintStats
	switch {
	case wh.State != "ready":
		return fmt.Errorf("%w: klipper is %s: %s", ErrPrinterBusy, wh.State, firstLine(wh.StateMessage))
	case ps.State == "printing" || ps.State == "paused":
		return fmt.Errorf("%w: klipper is %s %s", ErrPrinterBusy, ps.State, ps.Filename)
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func (m *Moonraker) Start(ctx context.Context, p Print, file string) error {
	if err := needGcode("moonraker", file); err != nil {
		return err
	}
	sum, err := fileSHA256(file)
	if err != nil {
		return err
	}
	name := printerFileName(p)
	var ans struct {
		Item struct {
			Path string `json:"path"`
		} `json:"item"`
		PrintStarted bool `json:"print_started"`
		PrintQueued  bool `json:"print_queued"`
	}
	fields := [][2]string{{"root", "gcodes"}, {"checksum", sum}, {"print", "true"}}
	err = m.api.upload(ctx, "/server/files/upload", file, name, fields, &ans)
	if statusOf(err) == http.StatusUnprocessableEntity {
		// Moonraker sends only "Unprocessable Entity"; the checksum is why.
		return fmt.Errorf("moonraker refused the upload: the file's SHA-256 did not match what arrived (damaged on the way): %w", err)
	}
	if err != nil {
		return err
	}
	if ans.Item.Path == "" {
		return errors.New("moonraker's answer to the upload names no file")
	}
	if ans.PrintStarted {
		return nil
	}
	// Stored, not started. A queued file would start by itself once the printer is
	// free: after the hub has given the job to another printer. Take it out of the
	// queue and off the printer before saying so.
	if ans.PrintQueued {
		if err := m.unqueue(ctx, name); err != nil {
			return fmt.Errorf("moonraker queued the print for later and it could not be taken out of its queue: %w", err)
		}
	}
	q, qerr := m.query(ctx)
	if qerr == nil && q.Status.PrintStats.Filename == name && (q.Status.PrintStats.State == "printing" || q.Status.PrintStats.State == "paused") {
		return nil // started after all: the job queue took it as the printer came free
	}
	m.api.call(ctx, "DELETE", "/server/files/gcodes/"+url.PathEscape(name), nil, nil)
	if qerr == nil {
		if err := moonReady(q); err != nil {
			return err
		}
	}
	return errors.New("moonraker took the file but klipper did not start the print (see klipper's log)")
}

// unqueue takes every entry for name out of Moonraker's job queue
// (components/job_queue.py: GET /server/job_queue/status, DELETE /server/job_queue/job).
func (m *Moonraker) unqueue(ctx context.Context, name string) error {
	ids, err := m.queued(ctx, name)
	if err != nil {
		return err
	}
	return m.dequeue(ctx, ids)
}

// dequeue takes the job-queue entries ids out of Moonraker's job queue.
func (m *Moonraker) dequeue(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return m.api.call(ctx, "DELETE", "/server/job_queue/job?job_ids="+url.QueryEscape(strings.Join(ids, ",")), nil, nil)
}

// queued lists the job-queue entries for name; a Moonraker without a job queue (before
// v0.8) has none.
func (m *Moonraker) queued(ctx context.Context, name string) ([]string, error) {
	var q moonResult[moonQueue]
	err := m.api.call(ctx, "GET", "/server/job_queue/status", nil, &q)
	if statusOf(err) == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, j := range q.Result.QueuedJobs {
		if j.Filename == name {
			ids = append(ids, j.JobID)
		}
	}
	return ids, nil
}

func (m *Moonraker) Status(ctx context.Context, p Print) (Status, error) {
	name := printerFileName(p)
	q, err := m.query(ctx)
	if err != nil {
		return Status{}, err
	}
	wh, ps := q.Status.Webhooks, q.Status.PrintStats
	progress := 100 * q.Status.VirtualSDCard.Progress
	if ps.Filename == name {
		switch ps.State {
		case "printing":
			return Status{State: PrinterPrinting, Progress: progress, Message: "klipper: printing"}, nil
		case "paused":
			if wh.State == "shutdown" || wh.State == "error" {
				// virtual_sdcard pauses the print on a shutdown; it will never resume.
				return Status{State: PrinterFailed, Progress: progress, Message: "klipper shut down mid-print: " + firstLine(wh.StateMessage)}, nil
			}
			return Status{State: PrinterPrinting, Progress: progress, Message: "klipper: paused"}, nil
		case "complete":
			return Status{State: PrinterFinished, Progress: 100}, nil
		case "cancelled":
			return Status{State: PrinterFailed, Progress: progress, Canceled: true, Message: "canceled at the printer"}, nil
		case "error":
			return Status{State: PrinterFailed, Progress: progress, Message: "klipper: " + ps.Message}, nil
		}
	}
	// Not the current print (or Klipper restarted since): the history knows.
	var h moonResult[moonHistory]
	err = m.api.call(ctx, "GET", "/server/history/list?limit=100&order=desc", nil, &h)
	noHistory := statusOf(err) == http.StatusNotFound
	if err != nil && !noHistory {
		return Status{}, err
	}
	if st, ok := fromHistory(h.Result, name, progress); ok {
		return st, nil
	}
	// In the job queue (its upload found the printer busy, and taking it out failed
	// then): never printed. Out of the queue, it can be given back.
	if ids, err := m.queued(ctx, name); err != nil {
		return Status{}, err
	} else if len(ids) > 0 {
		if err := m.dequeue(ctx, ids); err != nil {
			return Status{}, fmt.Errorf("the print waits in moonraker's job queue and could not be taken out: %w", err)
		}
		return Status{State: PrinterGone}, nil
	}
	// No record of a print: the file says whether one could have been made. Its
	// print_start_time is written by the history component (history.py,
	// update_metadata), so without history a file on the printer may have been printed.
	var md moonResult[struct {
		PrintStartTime *float64 `json:"print_start_time"`
	}]
	err = m.api.call(ctx, "GET", "/server/files/metadata?filename="+url.QueryEscape(name), nil, &md)
	switch {
	case statusOf(err) == http.StatusNotFound:
		return Status{State: PrinterGone}, nil
	case err != nil:
		return Status{}, err
	case noHistory:
		return Status{State: PrinterUnknown, Message: "moonraker keeps no print history (add [history] to moonraker.conf)"}, nil
	case md.Result.PrintStartTime == nil:
		return Status{State: PrinterGone}, nil
	}
	return Status{State: PrinterUnknown, Message: "the print is no longer in moonraker's recent history"}, nil
}

// fromHistory reads the print's outcome from Moonraker's history. The printer file
// is the agent's own, so its first print (the last in newest-first order) is ours: a
// later one is someone printing the file again from the printer.
func fromHistory(h moonHistory, name string, progress float64) (Status, bool) {
	var status, id string
	for _, j := range h.Jobs {
		if j.Filename == name {
			status, id = j.Status, j.JobID
		}
	}
	switch status {
	case "":
		return Status{}, false
	case "completed":
		return Status{State: PrinterFinished, Progress: 100}, true
	case "in_progress":
		return Status{State: PrinterPrinting, Progress: progress, Message: "klipper: printing"}, true
	case "cancelled":
		return Status{State: PrinterFailed, Canceled: true, Message: "canceled at the printer"}, true
	case "server_exit", "interrupted":
		// Moonraker stopped while Klipper printed on; the history never learned the end
		// (history.py, on_exit; component_init).
		return Status{State: PrinterUnknown, Message: fmt.Sprintf("moonraker history: print %s ended %s (moonraker restarted mid-print)", id, status)}, true
	}
	return Status{State: PrinterFailed, Message: fmt.Sprintf("moonraker history: print %s ended %s", id, status)}, true
}

// Cancel stops the print when it is this one, and takes it out of Moonraker's job
// queue if it waits there.
func (m *Moonraker) Cancel(ctx context.Context, p Print) error {
	name := printerFileName(p)
	if err := m.unqueue(ctx, name); err != nil {
		return err
	}
	q, err := m.query(ctx)
	if err != nil {
		return err
	}
	ps := q.Status.PrintStats
	if ps.Filename != name || (ps.State != "printing" && ps.State != "paused") {
		return nil
	}
	return m.api.call(ctx, "POST", "/printer/print/cancel", nil, nil)
}
