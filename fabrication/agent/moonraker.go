package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// Moonraker drives a Klipper printer through Moonraker's HTTP API: the file goes up with
// POST /server/files/upload (multipart: root=gcodes, checksum=<sha256>, print=true;
// Moonraker answers 422 when the checksum does not match what arrived), status comes
// from GET /printer/objects/query?print_stats&virtual_sdcard, a cancel is
// POST /printer/print/cancel, and a restarted agent reconciles from
// GET /server/history/list, which outlives the current print.
type Moonraker struct {
	api      printerAPI
	canceled sync.Map
}

// NewMoonraker returns a driver for the Moonraker at baseURL.
func NewMoonraker(baseURL, apiKey string) (*Moonraker, error) {
	api, err := newPrinterAPI("moonraker", baseURL, apiKey)
	if err != nil {
		return nil, err
	}
	return &Moonraker{api: api}, nil
}

// Moonraker wraps every HTTP answer in {"result": ...}.
type moonResult[T any] struct {
	Result T `json:"result"`
}

type moonStatus struct {
	Status struct {
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
	Count int `json:"count"`
	Jobs  []struct {
		JobID    string `json:"job_id"`
		Filename string `json:"filename"`
		Status   string `json:"status"` // in_progress, completed, cancelled, error, klippy_shutdown, ...
	} `json:"jobs"`
}

func (m *Moonraker) Start(ctx context.Context, jobID, file string) error {
	if err := needGcode("moonraker", file); err != nil {
		return err
	}
	sum, err := fileSHA256(file)
	if err != nil {
		return err
	}
	fields := [][2]string{{"root", "gcodes"}, {"checksum", sum}, {"print", "true"}}
	var out json.RawMessage
	return m.api.upload(ctx, "/server/files/upload", file, printerFileName(jobID), fields, &out)
}

func (m *Moonraker) Status(ctx context.Context, jobID string) (Status, error) {
	name := printerFileName(jobID)
	var q moonResult[moonStatus]
	if err := m.api.call(ctx, "GET", "/printer/objects/query?print_stats&virtual_sdcard", nil, &q); err != nil {
		return Status{}, err
	}
	ps := q.Result.Status.PrintStats
	progress := 100 * q.Result.Status.VirtualSDCard.Progress
	if ps.Filename == name {
		switch ps.State {
		case "printing", "paused":
			return Status{State: PrinterPrinting, Progress: progress, Message: "klipper: " + ps.State}, nil
		case "complete":
			return Status{State: PrinterFinished, Progress: 100}, nil
		case "cancelled":
			return Status{State: PrinterFailed, Progress: progress, Message: m.failure(jobID, "klipper: print cancelled")}, nil
		case "error":
			return Status{State: PrinterFailed, Progress: progress, Message: m.failure(jobID, "klipper: "+ps.Message)}, nil
		}
	}
	// Not the current print (or the printer was reset since): the history knows.
	var h moonResult[moonHistory]
	if err := m.api.call(ctx, "GET", "/server/history/list?limit=100&order=desc", nil, &h); err != nil {
		return Status{}, err
	}
	for _, j := range h.Result.Jobs {
		if j.Filename != name {
			continue
		}
		switch j.Status {
		case "completed":
			return Status{State: PrinterFinished, Progress: 100}, nil
		case "in_progress":
			return Status{State: PrinterPrinting, Progress: progress, Message: "klipper: printing"}, nil
		default:
			return Status{State: PrinterFailed, Message: m.failure(jobID, fmt.Sprintf("moonraker history: job %s ended %s", j.JobID, j.Status))}, nil
		}
	}
	return Status{State: PrinterGone}, nil
}

func (m *Moonraker) failure(jobID, msg string) string {
	if _, ok := m.canceled.Load(jobID); ok {
		return "canceled"
	}
	return msg
}

// Cancel stops the print when it is this job's.
func (m *Moonraker) Cancel(ctx context.Context, jobID string) error {
	m.canceled.Store(jobID, true)
	var q moonResult[moonStatus]
	if err := m.api.call(ctx, "GET", "/printer/objects/query?print_stats&virtual_sdcard", nil, &q); err != nil {
		return err
	}
	ps := q.Result.Status.PrintStats
	if ps.Filename != printerFileName(jobID) || (ps.State != "printing" && ps.State != "paused") {
		return nil
	}
	err := m.api.call(ctx, "POST", "/printer/print/cancel", nil, nil)
	if statusOf(err) == http.StatusBadRequest { // Klipper: no print in progress
		return nil
	}
	return err
}
