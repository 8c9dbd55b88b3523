package protocoltest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"time"
)

// OctoPrint is a protocol test server for OctoPrint's REST API, as documented at
// docs.octoprint.org (api/files.html, api/job.html):
//   - every call needs the X-Api-Key header (403 without the right one);
//   - POST /api/files/local takes multipart "file" plus optional "select" and "print";
//     201 with a Location header and {"files":{"local":{...}},"done":true}; 400 without a
//     file; 415 for a type it cannot print; 409 when asked to print while printing;
//   - GET /api/job is {"job":{"file":{...}},"progress":{"completion":...},"state":"..."};
//   - POST /api/job {"command":"cancel"} answers 204, or 409 when nothing is printing;
//   - GET /api/files/local/<name> is the file's information, with "prints" once it was
//     printed, or 404.
type OctoPrint struct {
	*httptest.Server
	APIKey string
	p      print
	prints map[string]octoPrints
}

type octoPrints struct {
	Success int `json:"success"`
	Failure int `json:"failure"`
	Last    struct {
		Date    int64 `json:"date"`
		Success bool  `json:"success"`
	} `json:"last"`
}

// NewOctoPrint starts a server; close it with Close.
func NewOctoPrint(apiKey string) *OctoPrint {
	o := &OctoPrint{APIKey: apiKey, p: print{state: "idle", uploads: map[string][]byte{}}, prints: map[string]octoPrints{}}
	o.Server = httptest.NewServer(http.HandlerFunc(o.serve))
	return o
}

func octoError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (o *OctoPrint) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Api-Key") != o.APIKey {
		octoError(w, http.StatusForbidden, "Invalid API key")
		return
	}
	o.p.mu.Lock()
	defer o.p.mu.Unlock()
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/files/local":
		o.upload(w, r)
	case r.Method == "GET" && r.URL.Path == "/api/job":
		o.job(w)
	case r.Method == "POST" && r.URL.Path == "/api/job":
		var cmd struct {
			Command string `json:"command"`
		}
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&cmd) != nil {
			octoError(w, http.StatusBadRequest, "Expected content-type JSON")
			return
		}
		switch cmd.Command {
		case "cancel":
			if o.p.state != "printing" {
				octoError(w, http.StatusConflict, "Printer is not printing")
				return
			}
			o.p.cancels++
			o.end(false, "cancelled")
			w.WriteHeader(http.StatusNoContent)
		case "start", "restart", "pause":
			octoError(w, http.StatusConflict, "not supported by this test server")
		default:
			octoError(w, http.StatusBadRequest, "Unknown command: "+cmd.Command)
		}
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/files/local/"):
		name := strings.TrimPrefix(r.URL.Path, "/api/files/local/")
		data, ok := o.p.uploads[name]
		if !ok {
			octoError(w, http.StatusNotFound, "File not found on 'local': "+name)
			return
		}
		info := map[string]any{"name": name, "path": name, "origin": "local", "type": "machinecode", "size": len(data)}
		if pr, ok := o.prints[name]; ok {
			info["prints"] = pr
		}
		writeJSON(w, http.StatusOK, info)
	default:
		octoError(w, http.StatusNotFound, "Not found")
	}
}

func (o *OctoPrint) upload(w http.ResponseWriter, r *http.Request) {
	fields, name, data, err := readUpload(r)
	if err != nil || name == "" {
		octoError(w, http.StatusBadRequest, "No file to upload and no folder to create")
		return
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".gcode", ".gco", ".g":
	default:
		octoError(w, http.StatusUnsupportedMediaType, "Could not upload the file \""+name+"\", invalid type")
		return
	}
	printIt := fields["print"] == "true"
	if printIt && o.p.state == "printing" {
		octoError(w, http.StatusConflict, "Printer is already printing, cannot start a new print")
		return
	}
	o.p.uploads[name] = data
	if printIt || fields["select"] == "true" {
		o.p.file, o.p.progress, o.p.message = name, 0, ""
		o.p.state = "idle"
	}
	if printIt {
		o.p.state = "printing"
	}
	w.Header().Set("Location", o.URL+"/api/files/local/"+url.PathEscape(name))
	writeJSON(w, http.StatusCreated, map[string]any{
		"files": map[string]any{"local": map[string]any{"name": name, "origin": "local", "refs": map[string]string{
			"resource": o.URL + "/api/files/local/" + name, "download": o.URL + "/downloads/files/local/" + name}}},
		"done": true,
	})
}

func (o *OctoPrint) job(w http.ResponseWriter) {
	state := map[string]string{"idle": "Operational", "printing": "Printing", "complete": "Operational", "cancelled": "Operational", "error": "Error"}[o.p.state]
	var file any = map[string]any{"name": nil, "origin": nil}
	var completion any
	if o.p.file != "" {
		file = map[string]any{"name": o.p.file, "origin": "local", "size": len(o.p.uploads[o.p.file])}
		completion = 100 * o.p.progress
	}
	body := map[string]any{"job": map[string]any{"file": file, "estimatedPrintTime": nil}, "progress": map[string]any{"completion": completion}, "state": state}
	if o.p.state == "error" {
		body["error"] = o.p.message
	}
	writeJSON(w, http.StatusOK, body)
}

// end records the print's outcome in the file's "prints" record.
func (o *OctoPrint) end(success bool, state string) {
	pr := o.prints[o.p.file]
	if success {
		pr.Success++
	} else {
		pr.Failure++
	}
	pr.Last.Date, pr.Last.Success = time.Now().Unix(), success
	o.prints[o.p.file] = pr
	o.p.state = state
}

// Advance moves the current print to fraction f (0..1).
func (o *OctoPrint) Advance(f float64) { o.p.mu.Lock(); o.p.progress = f; o.p.mu.Unlock() }

// Complete ends the current print successfully.
func (o *OctoPrint) Complete() {
	o.p.mu.Lock()
	defer o.p.mu.Unlock()
	o.p.progress = 1
	o.end(true, "complete")
}

// Fail ends the current print with an error, as a thermal runaway would.
func (o *OctoPrint) Fail(msg string) {
	o.p.mu.Lock()
	defer o.p.mu.Unlock()
	o.p.message = msg
	o.end(false, "error")
}

// Restart forgets the current job, as a power cycle does; files and their print
// records stay.
func (o *OctoPrint) Restart() {
	o.p.mu.Lock()
	defer o.p.mu.Unlock()
	o.p.file, o.p.state, o.p.progress = "", "idle", 0
}

// Uploaded returns the bytes uploaded as name.
func (o *OctoPrint) Uploaded(name string) ([]byte, bool) {
	o.p.mu.Lock()
	defer o.p.mu.Unlock()
	b, ok := o.p.uploads[name]
	return b, ok
}

// Cancels counts cancel commands that stopped a print.
func (o *OctoPrint) Cancels() int { o.p.mu.Lock(); defer o.p.mu.Unlock(); return o.p.cancels }
