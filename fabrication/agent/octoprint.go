package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// OctoPrint drives a printer through OctoPrint's REST API, as OctoPrint 1.11's source
// behaves (paths below are under OctoPrint's src/octoprint/):
//   - the file goes up with POST /api/files/local (multipart, select=true, print=true,
//     with a Content-Length: server/util/tornado.py refuses chunked uploads with 411).
//     OctoPrint answers 201 even when it did not start the print (printing, paused or
//     offline, or a key without the PRINT permission) and says so in "effectivePrint"
//     (server/api/files.py, uploadGcodeFile);
//   - progress comes from GET /api/job, a cancel is POST /api/job {"command":"cancel"};
//   - a restarted agent reconciles from GET /api/files/local/<name>, whose "prints"
//     record says whether the file was printed and how that ended.
//
// Every call carries the X-Api-Key header. OctoPrint treats an unknown key as an
// anonymous visitor: reads fail the permission check with 403, writes fail the CSRF
// check first with 400 "CSRF validation failed" (server/util/csrf.py).
type OctoPrint struct {
	api printerAPI
}

// NewOctoPrint returns a driver for the OctoPrint at baseURL.
func NewOctoPrint(baseURL, apiKey string) (*OctoPrint, error) {
	api, err := newPrinterAPI("octoprint", baseURL, apiKey, octoRefusedKey)
	if err != nil {
		return nil, err
	}
	return &OctoPrint{api: api}, nil
}

func octoRefusedKey(status int, msg string) bool {
	return status == http.StatusUnauthorized || status == http.StatusForbidden ||
		(status == http.StatusBadRequest && strings.Contains(msg, "CSRF"))
}

type octoJob struct {
	Job struct {
		File struct {
			Name   *string `json:"name"`
			Origin *string `json:"origin"`
		} `json:"file"`
	} `json:"job"`
	Progress struct {
		Completion *float64 `json:"completion"`
	} `json:"progress"`
	State string `json:"state"`
	Error string `json:"error"`
}

// current is the name of the selected file, "" when none (OctoPrint sends nulls).
func (j octoJob) current() string {
	if j.Job.File.Name == nil || (j.Job.File.Origin != nil && *j.Job.File.Origin != "local") {
		return ""
	}
	return *j.Job.File.Name
}

func (j octoJob) completion() float64 {
	if j.Progress.Completion == nil {
		return 0
	}
	return *j.Progress.Completion
}

// octoBusy are the states in which OctoPrint holds a print (util/comm.py, getStateString
// and PRINTING_STATES; "Transferring file to printer" is 2.0's name).
var octoBusy = map[string]bool{
	"Starting": true, "Starting print from SD": true, "Starting to send file to SD": true,
	"Printing": true, "Printing from SD": true, "Sending file to SD": true, "Transferring file to SD": true,
	"Transferring file to printer": true, "Cancelling": true, "Pausing": true, "Paused": true,
	"Resuming": true, "Finishing": true,
}

type octoFile struct {
	Name   string `json:"name"`
	Prints *struct {
		Success int `json:"success"`
		Failure int `json:"failure"`
		Last    *struct {
			Success bool    `json:"success"`
			Date    float64 `json:"date"`
		} `json:"last"`
	} `json:"prints"`
}

func (o *OctoPrint) job(ctx context.Context) (octoJob, error) {
	var cur octoJob
	err := o.api.call(ctx, "GET", "/api/job", nil, &cur)
	return cur, err
}

// Ready: OctoPrint takes a print only when it is "Operational" (connected, not
// printing, not paused).
func (o *OctoPrint) Ready(ctx context.Context) error {
	cur, err := o.job(ctx)
	if err != nil {
		return err
	}
	return octoReady(cur)
}

func octoReady(cur octoJob) error {
	switch {
	case cur.State == "Operational":
		return nil
	case octoBusy[cur.State]:
		return fmt.Errorf("%w: octoprint is %s %s", ErrPrinterBusy, strings.ToLower(cur.State), cur.current())
	case cur.Error != "":
		return fmt.Errorf("%w: octoprint's printer is %s: %s", ErrPrinterBusy, cur.State, cur.Error)
	}
	return fmt.Errorf("%w: octoprint's printer is %s", ErrPrinterBusy, cur.State)
}

func (o *OctoPrint) Start(ctx context.Context, p Print, file string) error {
	if err := needGcode("octoprint", file); err != nil {
		return err
	}
	name := printerFileName(p)
	var ans struct {
		EffectivePrint *bool `json:"effectivePrint"`
	}
	fields := [][2]string{{"select", "true"}, {"print", "true"}}
	if err := o.api.upload(ctx, "/api/files/local", file, name, fields, &ans); err != nil {
		return err
	}
	if ans.EffectivePrint == nil {
		return errors.New("octoprint took the file without saying whether it started the print")
	}
	if *ans.EffectivePrint {
		return nil
	}
	// Stored but not started. Find out why, and take the file away again so nobody
	// starts it later by mistake (a print the hub would not know about).
	cur, err := o.job(ctx)
	if err != nil {
		return fmt.Errorf("octoprint did not start the print, and then: %w", err)
	}
	if cur.current() == name && octoBusy[cur.State] {
		return nil // it started after all
	}
	o.api.call(ctx, "DELETE", "/api/files/local/"+url.PathEscape(name), nil, nil)
	if err := octoReady(cur); err != nil {
		return err
	}
	// Operational now: busy a moment ago, or a key without the PRINT permission.
	var me struct {
		Permissions []string `json:"permissions"`
	}
	if err := o.api.call(ctx, "GET", "/api/currentuser", nil, &me); err == nil &&
		!slices.Contains(me.Permissions, "PRINT") && !slices.Contains(me.Permissions, "ADMIN") {
		return fmt.Errorf("%w: octoprint took the file but did not start it: the key lacks the PRINT permission", ErrPrinterAuth)
	}
	return fmt.Errorf("%w: octoprint did not start the print (the printer was busy a moment ago)", ErrPrinterBusy)
}

// Status answers from the printer: the current job when it is this print, else the
// file's print record; no file (or a file never printed and not current) is PrinterGone.
func (o *OctoPrint) Status(ctx context.Context, p Print) (Status, error) {
	cur, err := o.job(ctx)
	if err != nil {
		return Status{}, err
	}
	name := printerFileName(p)
	ours := cur.current() == name
	if ours && octoBusy[cur.State] {
		return Status{State: PrinterPrinting, Progress: cur.completion(), Message: "octoprint: " + cur.State}, nil
	}
	var f octoFile
	err = o.api.call(ctx, "GET", "/api/files/local/"+url.PathEscape(name), nil, &f)
	if statusOf(err) == http.StatusNotFound {
		return Status{State: PrinterGone}, nil
	}
	if err != nil {
		return Status{}, err
	}
	var last *struct {
		Success bool    `json:"success"`
		Date    float64 `json:"date"`
	}
	if f.Prints != nil {
		last = f.Prints.Last
	}
	switch {
	case last != nil && last.Success:
		return Status{State: PrinterFinished, Progress: 100}, nil
	case last != nil:
		return octoFailure(cur, ours), nil
	case ours:
		// Selected, not printing, no record yet: OctoPrint writes a print's record in a
		// thread of its own (filemanager/__init__.py, log_print), so for a moment a
		// print that just ended looks like this. Wait for the record (the agent bounds
		// the wait).
		return Status{State: PrinterPrinting, Settling: true, Progress: cur.completion(), Message: "octoprint: " + cur.State}, nil
	}
	return Status{State: PrinterGone}, nil
}

// octoFailure tells a fault from a cancel. OctoPrint records both alike (success:
// false, no reason), but a cancel leaves the file selected with the printer
// operational, while an error clears the job and leaves the printer "Offline after
// error" or "Error" (printer/standard.py, on_comm_print_job_cancelled and
// on_comm_state_change). When neither shows any more, it cannot be told: the print is
// not tried again, as a cancel at the printer must not be.
func octoFailure(cur octoJob, ours bool) Status {
	switch {
	case cur.State == "Error" || cur.State == "Offline after error" || (cur.Error != "" && !ours):
		return Status{State: PrinterFailed, Message: "octoprint: the print failed: " + cmp.Or(cur.Error, cur.State)}
	case ours && cur.State == "Operational":
		return Status{State: PrinterFailed, Canceled: true, Message: "canceled at the printer"}
	}
	return Status{State: PrinterFailed, Canceled: true,
		Message: "octoprint records the print as failed and no longer says why (a cancel at the printer, or an error since cleared); not tried again"}
}

// Cancel stops the current print when it is this one. OctoPrint answers 409 when
// nothing is printing, which is fine: there is nothing to stop.
func (o *OctoPrint) Cancel(ctx context.Context, p Print) error {
	cur, err := o.job(ctx)
	if err != nil {
		return err
	}
	if cur.current() != printerFileName(p) || !octoBusy[cur.State] {
		return nil
	}
	err = o.api.call(ctx, "POST", "/api/job", map[string]string{"command": "cancel"}, nil)
	if statusOf(err) == http.StatusConflict {
		return nil
	}
	return err
}
