// Package protocoltest holds protocol test servers: in-memory stand-ins for OctoPrint,
// PrusaLink and Moonraker (with the Klipper behind it) for testing the agent's printer drivers
// where the real servers and printers cannot run. Each behaviour follows the real
// server's source code, not only its documentation (the two differ), and its comment
// names the upstream file and function it comes from. They print nothing: a test
// moves a print along with Advance, Complete, Fail and the rest, and reads back every
// physical print the printer made with Prints.
package protocoltest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Printer is what a test does to either test server: what happens at the printer, and
// what it made.
type Printer interface {
	Advance(fraction float64)    // the current print reaches fraction (0..1)
	Complete()                   // the current print ends well
	Fail(msg string)             // a fault ends the current print
	Shutdown(msg string)         // the firmware halts mid-print
	Recover()                    // the printer is reconnected or its firmware restarted
	CancelAtPrinter()            // someone cancels the current print at the printer
	Pause()                      // someone pauses the current print
	Restart()                    // the server (or Klipper's host) restarts
	StartOther(name string)      // someone prints a file of their own
	SetBeforeUpload(f func())    // f runs as each upload arrives
	State() (state, file string) // the server's state and current file
	Uploaded(name string) ([]byte, bool)
	Prints() []PrintRecord
	Cancels() int
	Close()
}

var (
	_ Printer = (*OctoPrint)(nil)
	_ Printer = (*Moonraker)(nil)
	_ Printer = (*PrusaLink)(nil)
)

// Outcomes of a physical print, in PrintRecord.
const (
	OutcomePrinting  = ""          // still on the printer (printing or paused)
	OutcomeCompleted = "completed" // a whole part came off the printer
	OutcomeFailed    = "failed"    // a fault stopped it
	OutcomeCanceled  = "canceled"  // someone stopped it
	OutcomeShutdown  = "shutdown"  // the firmware shut down under it
	OutcomeLost      = "lost"      // the server lost it (restarted or disconnected) without a record
)

// PrintRecord is one physical print a test server's printer started, and how it ended:
// the ground truth the driver tests check the hub's view against.
type PrintRecord struct {
	File    string
	Outcome string
}

// physical is the log of physical prints, shared by both servers.
type physical struct {
	prints []PrintRecord
}

func (p *physical) begin(file string) { p.prints = append(p.prints, PrintRecord{File: file}) }

// end closes the print in progress, if there is one.
func (p *physical) end(outcome string) {
	if n := len(p.prints); n > 0 && p.prints[n-1].Outcome == OutcomePrinting {
		p.prints[n-1].Outcome = outcome
	}
}

func (p *physical) list() []PrintRecord { return append([]PrintRecord(nil), p.prints...) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

var errNoFile = errors.New("no file part with a file name")

// readUpload reads a multipart upload: its fields and the "file" part.
func readUpload(r *http.Request) (fields map[string]string, name string, data []byte, err error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", nil, err
	}
	fields = map[string]string{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			if name == "" {
				return nil, "", nil, errNoFile
			}
			return fields, name, data, nil
		}
		if err != nil {
			return nil, "", nil, err
		}
		b, err := io.ReadAll(io.LimitReader(p, 64<<20))
		if err != nil {
			return nil, "", nil, err
		}
		if p.FormName() == "file" && p.FileName() != "" {
			name, data = p.FileName(), b
		} else {
			fields[p.FormName()] = string(b)
		}
	}
}

func isGcode(name string) bool {
	for _, ext := range []string{".gcode", ".gco", ".g"} {
		if strings.HasSuffix(strings.ToLower(name), ext) {
			return true
		}
	}
	return false
}
