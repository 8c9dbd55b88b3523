package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Printer states as a driver reports them.
const (
	PrinterPrinting = "printing"
	PrinterFinished = "finished"
	PrinterFailed   = "failed"
	PrinterGone     = "gone" // the printer has no record of the print: it never started
	// PrinterUnknown: the printer had the print but can no longer say how it ended
	// (a Moonraker without history, a print lost while paused). Only a person can say
	// what is on the bed, so the agent lets the hub mark the job unknown.
	PrinterUnknown = "unknown"
)

// Status is what the printer says about a print.
type Status struct {
	State    string
	Progress float64 // 0..100
	Message  string
	// Canceled, with PrinterFailed: the print was stopped on purpose (at the printer, or
	// by the agent), not by a fault of the machine, so it is not worth printing again.
	Canceled bool
	// Settling, with PrinterPrinting: the printer does not yet show how the print
	// stands: it has stopped and its end is not recorded yet, or the printer took it
	// and does not show it started yet. The agent waits, for a while.
	Settling bool
}

// Errors a driver's Ready and Start answer with.
var (
	// ErrPrinterBusy: the printer cannot take a print now (it prints something else, it
	// is paused, off or shut down); nothing was printed. Wrapped with the reason.
	ErrPrinterBusy = errors.New("the printer cannot take a print now")
	// ErrPrinterAuth: the printer refused the agent's API key. Trying again cannot help.
	ErrPrinterAuth = errors.New("the printer refused the API key")
)

// Print names one attempt at a job on a printer. The hub queues a job that failed
// again under the same id, and printers keep the records of earlier prints, so the
// attempt is part of every name a driver gives the printer: a retry is never
// mistaken for the print that failed before it.
type Print struct {
	Job     string
	Attempt int // the hub's claim count; 0 in journals written before the hub sent it
}

// Key is the print's name among the printer's records: "<job>-a<attempt>".
func (p Print) Key() string {
	if p.Attempt == 0 {
		return p.Job
	}
	return fmt.Sprintf("%s-a%d", p.Job, p.Attempt)
}

// Driver drives one printer. Status must answer from the printer's own state, so a
// restarted agent learns what really happened.
type Driver interface {
	// Ready says whether the printer can take a print now: nil; ErrPrinterBusy (wrapped
	// with why); ErrPrinterAuth; or another error when the printer cannot be reached.
	Ready(ctx context.Context) error
	// Start hands the file to the printer and starts the print. It ends one of three
	// ways: nil (the printer prints it); ErrPrinterBusy or ErrPrinterAuth (nothing was
	// printed, nothing is left to start later); or another error, after which only
	// Status can say whether the print started.
	Start(ctx context.Context, p Print, file string) error
	// Status reports on a print the printer was given (PrinterGone if it never was).
	Status(ctx context.Context, p Print) (Status, error)
	// Cancel stops the print; a print that is not running is left alone.
	Cancel(ctx context.Context, p Print) error
}

// Sim is a virtual printer for tests, demos and docker-compose. Prints take
// BaseSeconds scaled down by Speed; a fraction FailRate fails part way. Its state lives
// in a file, so, like a real printer, it keeps printing while the agent is down.
type Sim struct {
	Dir         string
	Speed       float64 // 1 = real time; 200 = a 20-minute print in 6 s
	BaseSeconds float64 // length of a print at speed 1 (default 1200)
	FailRate    float64
	Now         func() time.Time

	mu sync.Mutex
}

type simJob struct {
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	FailAt   float64   `json:"fail_at,omitempty"` // fraction at which it fails; 0 = it will not
	Canceled bool      `json:"canceled,omitempty"`
}

func (s *Sim) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sim) load() (map[string]simJob, error) {
	jobs := map[string]simJob{}
	b, err := os.ReadFile(filepath.Join(s.Dir, "sim-printer.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return jobs, nil
	}
	if err != nil {
		return nil, err
	}
	return jobs, json.Unmarshal(b, &jobs)
}

func (s *Sim) save(jobs map[string]simJob) error {
	b, _ := json.Marshal(jobs)
	return writeFileAtomic(filepath.Join(s.Dir, "sim-printer.json"), b, 0o600)
}

// Ready: a virtual printer is always ready.
func (s *Sim) Ready(ctx context.Context) error { return nil }

func (s *Sim) Start(ctx context.Context, p Print, file string) error {
	jobID := p.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("sim printer: %w", err)
	}
	jobs, err := s.load()
	if err != nil {
		return err
	}
	if _, ok := jobs[jobID]; ok {
		return fmt.Errorf("sim printer: job %s was already started", jobID)
	}
	base, speed := s.BaseSeconds, s.Speed
	if base <= 0 {
		base = 1200
	}
	if speed <= 0 {
		speed = 1
	}
	j := simJob{Started: s.now(), Seconds: base / speed}
	if rand.Float64() < s.FailRate {
		j.FailAt = 0.1 + 0.8*rand.Float64()
	}
	jobs[jobID] = j
	// Every start is also appended to a log (job id, then attempt), which the
	// end-to-end tests read to prove that no job was printed twice.
	f, err := os.OpenFile(filepath.Join(s.Dir, "sim-starts.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintln(f, p.Job, p.Attempt)
	if err := f.Close(); err != nil {
		return err
	}
	return s.save(jobs)
}

func (s *Sim) Status(ctx context.Context, p Print) (Status, error) {
	jobID := p.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	jobs, err := s.load()
	if err != nil {
		return Status{}, err
	}
	j, ok := jobs[jobID]
	if !ok {
		return Status{State: PrinterGone}, nil
	}
	if j.Canceled {
		return Status{State: PrinterFailed, Message: "canceled", Canceled: true}, nil
	}
	frac := s.now().Sub(j.Started).Seconds() / j.Seconds
	switch {
	case j.FailAt > 0 && frac >= j.FailAt:
		return Status{State: PrinterFailed, Progress: 100 * j.FailAt, Message: "simulated failure: spaghetti detected"}, nil
	case frac >= 1:
		return Status{State: PrinterFinished, Progress: 100}, nil
	}
	return Status{State: PrinterPrinting, Progress: 100 * frac, Message: fmt.Sprintf("layer %d of 100", int(100*frac)+1)}, nil
}

func (s *Sim) Cancel(ctx context.Context, p Print) error {
	jobID := p.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	jobs, err := s.load()
	if err != nil {
		return err
	}
	if j, ok := jobs[jobID]; ok {
		j.Canceled = true
		jobs[jobID] = j
	}
	return s.save(jobs)
}
