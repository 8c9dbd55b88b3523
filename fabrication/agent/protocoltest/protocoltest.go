// Package protocoltest holds protocol test servers: small in-memory stand-ins for
// OctoPrint and Moonraker that follow the endpoints, headers, multipart fields, answer
// shapes and error codes those projects document, for testing the agent's printer
// drivers where the real servers (and printers) cannot run. They print nothing: a test
// moves a print along with Advance, Complete, Fail and Restart.
package protocoltest

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
)

// print is the state of one printer's current print, shared by both servers.
type print struct {
	mu       sync.Mutex
	file     string  // current file
	state    string  // idle, printing, complete, cancelled, error
	progress float64 // 0..1
	message  string
	cancels  int
	uploads  map[string][]byte
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

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
			return fields, name, data, nil
		}
		if err != nil {
			return nil, "", nil, err
		}
		b, err := io.ReadAll(io.LimitReader(p, 64<<20))
		if err != nil {
			return nil, "", nil, err
		}
		if p.FormName() == "file" {
			name, data = p.FileName(), b
		} else {
			fields[p.FormName()] = string(b)
		}
	}
}
