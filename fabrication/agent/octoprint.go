package agent

import (
	"context"
	"net/http"
	"net/url"
	"sync"
)

// OctoPrint drives a printer through OctoPrint's REST API: the file goes up with
// POST /api/files/local (multipart, select=true, print=true), progress comes from
// GET /api/job, a cancel is POST /api/job {"command":"cancel"}, and every call carries
// the X-Api-Key header. A restarted agent reconciles from GET /api/files/local/<name>,
// whose "prints" record says whether the file was printed and how that ended.
type OctoPrint struct {
	api      printerAPI
	canceled sync.Map // job id -> true: canceled by us, so a failure is not retried
}

// NewOctoPrint returns a driver for the OctoPrint at baseURL.
func NewOctoPrint(baseURL, apiKey string) (*OctoPrint, error) {
	api, err := newPrinterAPI("octoprint", baseURL, apiKey)
	if err != nil {
		return nil, err
	}
	return &OctoPrint{api: api}, nil
}

type octoJob struct {
	Job struct {
		File struct {
			Name   string `json:"name"`
			Origin string `json:"origin"`
		} `json:"file"`
	} `json:"job"`
	Progress struct {
		Completion *float64 `json:"completion"`
	} `json:"progress"`
	State string `json:"state"`
	Error string `json:"error"`
}

type octoFile struct {
	Name   string `json:"name"`
	Prints *struct {
		Success int `json:"success"`
		Failure int `json:"failure"`
		Last    *struct {
			Success bool `json:"success"`
		} `json:"last"`
	} `json:"prints"`
}

func (o *OctoPrint) Start(ctx context.Context, jobID, file string) error {
	if err := needGcode("octoprint", file); err != nil {
		return err
	}
	fields := [][2]string{{"select", "true"}, {"print", "true"}}
	return o.api.upload(ctx, "/api/files/local", file, printerFileName(jobID), fields, nil)
}

// Status answers from the printer: the current job when it is this one, else the
// file's print record; no file (or a file never printed and not current) is PrinterGone.
func (o *OctoPrint) Status(ctx context.Context, jobID string) (Status, error) {
	var cur octoJob
	if err := o.api.call(ctx, "GET", "/api/job", nil, &cur); err != nil {
		return Status{}, err
	}
	name := printerFileName(jobID)
	ours := cur.Job.File.Name == name && cur.Job.File.Origin != "sdcard"
	progress := 0.0
	if cur.Progress.Completion != nil {
		progress = *cur.Progress.Completion
	}
	if ours {
		switch cur.State {
		case "Printing", "Pausing", "Paused", "Resuming", "Finishing", "Starting", "Starting print from SD":
			return Status{State: PrinterPrinting, Progress: progress, Message: "octoprint: " + cur.State}, nil
		case "Cancelling":
			return Status{State: PrinterPrinting, Progress: progress, Message: "octoprint: cancelling"}, nil
		}
	}
	var f octoFile
	err := o.api.call(ctx, "GET", "/api/files/local/"+url.PathEscape(name), nil, &f)
	if statusOf(err) == http.StatusNotFound {
		return Status{State: PrinterGone}, nil
	}
	if err != nil {
		return Status{}, err
	}
	switch {
	case f.Prints != nil && f.Prints.Last != nil && f.Prints.Last.Success:
		return Status{State: PrinterFinished, Progress: 100}, nil
	case f.Prints != nil && f.Prints.Last != nil:
		msg := "octoprint reports the print failed"
		if _, ok := o.canceled.Load(jobID); ok {
			msg = "canceled"
		} else if cur.Error != "" && ours {
			msg = "octoprint: " + cur.Error
		}
		return Status{State: PrinterFailed, Progress: progress, Message: msg}, nil
	case ours:
		// Uploaded and selected, not yet printing: the print is about to start.
		return Status{State: PrinterPrinting, Progress: 0, Message: "octoprint: " + cur.State}, nil
	}
	return Status{State: PrinterGone}, nil
}

// Cancel stops the current print when it is this job's. OctoPrint answers 409 when
// nothing is printing, which is fine: there is nothing to stop.
func (o *OctoPrint) Cancel(ctx context.Context, jobID string) error {
	o.canceled.Store(jobID, true)
	var cur octoJob
	if err := o.api.call(ctx, "GET", "/api/job", nil, &cur); err != nil {
		return err
	}
	if cur.Job.File.Name != printerFileName(jobID) {
		return nil
	}
	err := o.api.call(ctx, "POST", "/api/job", map[string]string{"command": "cancel"}, nil)
	if statusOf(err) == http.StatusConflict {
		return nil
	}
	return err
}
