package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
)

// PrusaLink drives a Prusa printer through PrusaLink's v1 HTTP API, as its published
// description (prusa3d/Prusa-Link-Web, spec/openapi.yaml) and PrusaLink's source
// (prusa3d/Prusa-Link, under prusa/link/) behave:
//   - the file goes up with PUT /api/v1/files/<storage>/<name>, the bytes as the body
//     with a Content-Length (411 without: web/files.py, file_upload) and
//     Print-After-Upload: ?1 (an RFC 8941 boolean; anything but "?1" is false). When
//     the printer cannot print, PrusaLink stores the file and answers 409 "Not in state
//     to print"; the driver deletes the file again, so nobody starts it by mistake;
//   - status comes from GET /api/v1/job (204: no job) and GET /api/v1/status; a stop
//     is DELETE /api/v1/job/<id>;
//   - calls carry X-Api-Key, or else HTTP digest authentication with the printer's
//     user and password (web/lib/auth.py, check_api_digest: a wrong key is 403, a
//     wrong password 401).
//
// PrusaLink keeps no record of ended prints: only the current (or last, until someone
// acknowledges its end at the printer) job names its file. A restarted agent finds its
// print there while it runs or until the end is acknowledged; after that, with the
// file still on the printer, the print's outcome is unknown. PrusaLink's own source
// drops an ended job at once (printer_adapter/job.py, tick), so the driver also
// remembers which prints it saw as PrusaLink's job, and reads the printer's FINISHED,
// STOPPED or ERROR state, with no job shown, as the end of such a print while the
// agent lives.
type PrusaLink struct {
	api     printerAPI
	storage string

	mu      sync.Mutex
	seen    map[string]bool // keys of the prints this driver saw as PrusaLink's job
	started map[string]bool // keys of the prints PrusaLink took with a 201
}

// PrusaLinkConfig says how to reach a PrusaLink: an API key, or a user and password
// for digest authentication (PrusaLink's Settings page shows both).
type PrusaLinkConfig struct {
	URL            string
	APIKey         string
	User, Password string
	// Storage is where files go: "local" for PrusaLink on a Raspberry Pi (the
	// default), "usb" for the MK4, XL and MINI's built-in PrusaLink.
	Storage string
}

// NewPrusaLink returns a driver for the PrusaLink at c.URL.
func NewPrusaLink(c PrusaLinkConfig) (*PrusaLink, error) {
	refused := func(status int, msg string) bool {
		return status == http.StatusUnauthorized || status == http.StatusForbidden
	}
	api, err := newPrinterAPI("prusalink", c.URL, c.APIKey, refused)
	if err != nil {
		return nil, err
	}
	switch {
	case c.APIKey != "" && (c.User != "" || c.Password != ""):
		return nil, errors.New("prusalink: give an API key or a user and password, not both")
	case c.APIKey == "" && c.User == "" && c.Password == "":
		return nil, errors.New("prusalink needs an API key, or a user and password for digest authentication (PrusaLink: Settings)")
	case c.APIKey == "":
		if api.digest, err = newDigestAuth(c.User, c.Password); err != nil {
			return nil, fmt.Errorf("prusalink: %w", err)
		}
	}
	storage := c.Storage
	if storage == "" {
		storage = "local"
	}
	switch {
	case storage == "sdcard":
		return nil, errors.New("prusalink: the sdcard storage is read-only; use local (or usb on the printer's built-in PrusaLink)")
	case strings.ContainsAny(storage, "/?#% ") || storage == "." || storage == "..":
		return nil, fmt.Errorf("prusalink: %q is not a storage name (local or usb)", storage)
	}
	return &PrusaLink{api: api, storage: storage, seen: map[string]bool{}, started: map[string]bool{}}, nil
}

// prusaJob is GET /api/v1/job's answer (the spec's Job).
type prusaJob struct {
	ID       int     `json:"id"`
	State    string  `json:"state"` // PRINTING, PAUSED, FINISHED, STOPPED, ERROR (or the printer's state)
	Progress float64 `json:"progress"`
	File     *struct {
		Name        string `json:"name"`
		DisplayName string `json:"display_name"`
		Path        string `json:"path"`
	} `json:"file"`
}

// prusaStatus is GET /api/v1/status's answer (the spec's StatusPrinter and StatusJob).
type prusaStatus struct {
	Printer struct {
		State         string `json:"state"`
		StatusPrinter *struct {
			OK      bool   `json:"ok"`
			Message string `json:"message"`
		} `json:"status_printer"`
	} `json:"printer"`
	Job *struct {
		ID int `json:"id"`
	} `json:"job"`
}

// trouble is what the printer says is wrong, "" when it says nothing is.
func (s prusaStatus) trouble() string {
	if sp := s.Printer.StatusPrinter; sp != nil && !sp.OK {
		return sp.Message
	}
	return ""
}

// file is the job's file name, "" for a print not from a file.
func (j *prusaJob) file() string {
	if j == nil || j.File == nil {
		return ""
	}
	// Buddy firmware gives the short 8.3 name in name and the long one in display_name.
	for _, n := range []string{j.File.DisplayName, j.File.Name, path.Base(j.File.Path)} {
		if n != "" && n != "." && n != "/" {
			return n
		}
	}
	return ""
}

func (j *prusaJob) printing() bool {
	return j != nil && (j.State == "PRINTING" || j.State == "PAUSED")
}

// job is the current job, nil when there is none.
func (d *PrusaLink) job(ctx context.Context) (*prusaJob, error) {
	var j *prusaJob
	err := d.api.call(ctx, "GET", "/api/v1/job", nil, &j)
	return j, err
}

func (d *PrusaLink) status(ctx context.Context) (prusaStatus, error) {
	var s prusaStatus
	err := d.api.call(ctx, "GET", "/api/v1/status", nil, &s)
	return s, err
}

func (d *PrusaLink) filePath(name string) string {
	return "/api/v1/files/" + url.PathEscape(d.storage) + "/" + url.PathEscape(name)
}

// Ready: the printer takes a print when idle, ready, or showing the end of the last
// one (web/main.py, STATES_TO_READY; command_handlers.py, StartPrint).
func (d *PrusaLink) Ready(ctx context.Context) error {
	s, err := d.status(ctx)
	if err != nil {
		return err
	}
	switch st := s.Printer.State; st {
	case "IDLE", "READY", "FINISHED", "STOPPED":
		return nil
	case "PRINTING", "PAUSED":
		j, err := d.job(ctx)
		if err != nil {
			return fmt.Errorf("%w: prusalink is %s", ErrPrinterBusy, strings.ToLower(st))
		}
		return fmt.Errorf("%w: prusalink is %s %s", ErrPrinterBusy, strings.ToLower(st), j.file())
	default: // BUSY, ATTENTION, ERROR
		if t := s.trouble(); t != "" {
			return fmt.Errorf("%w: prusalink's printer is %s: %s", ErrPrinterBusy, st, t)
		}
		return fmt.Errorf("%w: prusalink's printer is %s", ErrPrinterBusy, st)
	}
}

func (d *PrusaLink) Start(ctx context.Context, p Print, file string) error {
	if err := needGcode("prusalink", file); err != nil {
		return err
	}
	if d.api.digest != nil {
		// A fresh nonce first (PrusaLink's last 60 s), so the file goes up once, and a
		// wrong password is found before it does.
		if _, err := d.status(ctx); err != nil {
			return err
		}
	}
	name := printerFileName(p)
	err := d.upload(ctx, name, file)
	if err == nil {
		d.mu.Lock()
		d.started[p.Key()] = true
		d.mu.Unlock()
		d.remember(ctx, p)
		return nil
	}
	switch statusOf(err) {
	case http.StatusNotFound: // web/lib/files.py, check_storage
		return fmt.Errorf("prusalink has no storage %q (%w): set --prusalink-storage to local, or usb on the printer's built-in PrusaLink", d.storage, err)
	case http.StatusConflict:
	default:
		return err
	}
	var pe *printerError
	errors.As(err, &pe)
	if strings.Contains(strings.ToLower(pe.msg), "already exists") {
		return fmt.Errorf("prusalink already has a file %s, which this agent did not expect: %w", name, err)
	}
	// Stored but not printed (web/files.py, file_upload: NotStateToPrint after the
	// file is in place). Unless it started after all, take it away again.
	if j, jerr := d.job(ctx); jerr == nil && j.file() == name && j.printing() {
		d.remember(ctx, p)
		return nil
	}
	d.api.call(ctx, "DELETE", d.filePath(name), nil, nil)
	if rerr := d.Ready(ctx); errors.Is(rerr, ErrPrinterBusy) {
		return rerr
	}
	return fmt.Errorf("%w: prusalink did not start the print (%w)", ErrPrinterBusy, err)
}

// upload PUTs the file, its length known up front; the body can be sent again, for a
// digest challenge.
func (d *PrusaLink) upload(ctx context.Context, name, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return fmt.Errorf("prusalink: %s is empty; PrusaLink refuses an empty upload", file)
	}
	req, err := http.NewRequestWithContext(ctx, "PUT", d.api.base+d.filePath(name), io.NopCloser(io.LimitReader(f, fi.Size())))
	if err != nil {
		return err
	}
	req.ContentLength = fi.Size()
	// A body of its own for a second send: the first may still be read as the 401
	// comes back.
	req.GetBody = func() (io.ReadCloser, error) {
		again, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(again, fi.Size()), again}, nil
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Print-After-Upload", "?1")
	req.Header.Set("Overwrite", "?0")
	return d.api.send(req, nil)
}

// remember notes that p is PrusaLink's job now, when it is.
func (d *PrusaLink) remember(ctx context.Context, p Print) {
	if j, err := d.job(ctx); err == nil && j.file() == printerFileName(p) {
		d.note(p)
	}
}

func (d *PrusaLink) note(p Print) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen[p.Key()] = true
}

func (d *PrusaLink) wasSeen(p Print) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[p.Key()]
}

// awaited: PrusaLink took p to print and has not shown it as its job yet.
func (d *PrusaLink) awaited(p Print) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.started[p.Key()] && !d.seen[p.Key()]
}

// Status answers from the printer's job when it is this print's; else from the end
// state of the job this driver saw printing it; else from whether its file is on the
// printer (no: PrinterGone; yes: PrinterUnknown, as PrusaLink keeps no history).
func (d *PrusaLink) Status(ctx context.Context, p Print) (Status, error) {
	name := printerFileName(p)
	j, err := d.job(ctx)
	if err != nil {
		return Status{}, err
	}
	if j.file() == name {
		d.note(p)
		return d.ended(ctx, j.State, j.Progress)
	}
	if j == nil && d.wasSeen(p) {
		// Its job is gone and no other took its place: the printer's state is its end.
		s, err := d.status(ctx)
		if err != nil {
			return Status{}, err
		}
		switch s.Printer.State {
		case "FINISHED", "STOPPED", "ERROR":
			return d.endedWith(s, s.Printer.State, 0)
		}
	}
	var info struct {
		Name string `json:"name"`
	}
	err = d.api.call(ctx, "GET", d.filePath(name), nil, &info)
	switch {
	case statusOf(err) == http.StatusNotFound:
		return Status{State: PrinterGone}, nil
	case err != nil:
		return Status{}, err
	case j == nil && d.awaited(p):
		// The upload's 201 came after PrusaLink queued the start (web/files.py,
		// file_upload; printer_adapter/command_handlers.py, StartPrint); the printer
		// may show it a moment later. The agent waits, for a while.
		return Status{State: PrinterPrinting, Settling: true, Message: "prusalink took the file and does not show the print started yet"}, nil
	}
	return Status{State: PrinterUnknown, Message: "prusalink keeps no record of ended prints: the file is on the printer, and the printer no longer shows its job (its end acknowledged at the printer, or the printer restarted)"}, nil
}

// ended maps the state of this print's job.
func (d *PrusaLink) ended(ctx context.Context, state string, progress float64) (Status, error) {
	switch state {
	case "FINISHED", "STOPPED", "ERROR":
		s, err := d.status(ctx)
		if err != nil {
			return Status{}, err
		}
		return d.endedWith(s, state, progress)
	case "PAUSED":
		return Status{State: PrinterPrinting, Progress: progress, Message: "prusalink: paused"}, nil
	case "PRINTING":
		return Status{State: PrinterPrinting, Progress: progress, Message: "prusalink: printing"}, nil
	}
	// ATTENTION or BUSY with the job still on the printer (a filament runout, a
	// crash check): it is not over.
	return Status{State: PrinterPrinting, Progress: progress, Message: "prusalink: " + strings.ToLower(state)}, nil
}

func (d *PrusaLink) endedWith(s prusaStatus, state string, progress float64) (Status, error) {
	switch state {
	case "FINISHED":
		return Status{State: PrinterFinished, Progress: 100}, nil
	case "STOPPED":
		return Status{State: PrinterFailed, Progress: progress, Canceled: true, Message: "stopped at the printer or by the agent"}, nil
	}
	msg := "prusalink: the print ended in an error"
	if t := s.trouble(); t != "" {
		msg = "prusalink: " + t
	}
	return Status{State: PrinterFailed, Progress: progress, Message: msg}, nil
}

// Cancel stops the print when it is the current job. PrusaLink answers 409 when the
// job no longer prints and 404 when another job took its place; both leave nothing
// to stop.
func (d *PrusaLink) Cancel(ctx context.Context, p Print) error {
	j, err := d.job(ctx)
	if err != nil {
		return err
	}
	if j.file() != printerFileName(p) || !j.printing() {
		return nil
	}
	err = d.api.call(ctx, "DELETE", "/api/v1/job/"+strconv.Itoa(j.ID), nil, nil)
	if s := statusOf(err); s == http.StatusConflict || s == http.StatusNotFound {
		return nil
	}
	return err
}
