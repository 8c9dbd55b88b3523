package protocoltest

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// OctoPrint is a protocol test server that behaves as OctoPrint 1.11.8's source does.
// Paths in comments are under OctoPrint/OctoPrint's src/octoprint/.
type OctoPrint struct {
	*httptest.Server
	APIKey string

	mu      sync.Mutex
	state   string // a state string of util/comm.py, MachineCom.getStateString
	errText string
	current string   // the selected file, "" for none
	done    *float64 // progress.completion; nil after a cancel or with no job
	files   map[string][]byte
	history map[string][]octoPrint
	pending []func() // print records not yet written (delayRecords)
	phys    physical
	cancels int

	noPrint      bool
	delayRecords bool
	webcamOn     bool
	snapshotURL  string
	beforeUpload func()
	afterUpload  func()
}

// octoPrint is one entry of a file's print history (filemanager/storage.py, add_history).
type octoPrint struct {
	date    float64
	success bool
	seconds float64
}

// NewOctoPrint starts a server whose printer is connected and operational; close it
// with Close.
func NewOctoPrint(apiKey string) *OctoPrint {
	o := &OctoPrint{APIKey: apiKey, state: "Operational", files: map[string][]byte{}, history: map[string][]octoPrint{}}
	o.Server = httptest.NewServer(http.HandlerFunc(o.serve))
	return o
}

// octoPrinting are the states in which is_printing() or is_paused() holds
// (util/comm.py, PRINTING_STATES and the paused states).
var octoPrinting = map[string]bool{"Starting": true, "Printing": true, "Cancelling": true, "Pausing": true,
	"Paused": true, "Resuming": true, "Finishing": true}

// operational: connected and not in an error state (util/comm.py, isOperational).
func (o *OctoPrint) operational() bool {
	return o.state == "Operational" || octoPrinting[o.state]
}

// octoError is how the API answers an abort(code, description): {"error": description}
// (server/__init__.py, _handle_api_error; server/util/flask.py, make_api_error).
func octoError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (o *OctoPrint) serve(w http.ResponseWriter, r *http.Request) {
	// server/util/tornado.py, UploadStorageFallbackHandler.prepare: a multipart body
	// must declare its length. Tornado's default error page answers, before Flask and
	// the API key are looked at.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" && r.ContentLength < 0 {
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(http.StatusLengthRequired)
		w.Write([]byte("<html><title>411: Length Required</title><body>411: Length Required</body></html>"))
		return
	}
	if r.Header.Get("X-Api-Key") != o.APIKey {
		// An unknown key makes the caller an anonymous visitor. Writes meet the CSRF
		// check first (server/util/__init__.py, csrfRequestHandler; server/util/csrf.py,
		// validate_csrf_request); reads fail the permission check
		// (access/permissions.py, Permissions.STATUS.require(403)).
		if r.Method != "GET" && r.Method != "HEAD" {
			octoError(w, http.StatusBadRequest, "CSRF validation failed")
			return
		}
		octoError(w, http.StatusForbidden, "You don't have the permission to access the requested resource. It is either read-protected or not readable by the server.")
		return
	}
	if r.Method == "POST" && r.URL.Path == "/api/files/local" {
		o.mu.Lock()
		hook, after := o.beforeUpload, o.afterUpload
		o.mu.Unlock()
		if hook != nil {
			hook()
		}
		if after != nil {
			defer after()
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	name := strings.TrimPrefix(r.URL.Path, "/api/files/local/")
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/files/local":
		o.upload(w, r)
	case r.Method == "GET" && r.URL.Path == "/api/job":
		o.job(w)
	case r.Method == "GET" && r.URL.Path == "/api/currentuser":
		// server/api/__init__.py, get_current_user: the keys of the effective permissions.
		perms := []string{"STATUS", "CONNECTION", "FILES_LIST", "FILES_UPLOAD", "FILES_DELETE", "FILES_SELECT", "PRINT"}
		if o.noPrint {
			perms = perms[:len(perms)-1]
		}
		writeJSON(w, http.StatusOK, map[string]any{"name": "fabagent", "permissions": perms, "groups": []string{"users"}})
	case r.Method == "POST" && r.URL.Path == "/api/job":
		o.command(w, r)
	case r.Method == "GET" && r.URL.Path == "/api/settings":
		o.settings(w)
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/files/local/"):
		o.fileInfo(w, name)
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/api/files/local/"):
		o.delete(w, name)
	default:
		octoError(w, http.StatusNotFound, "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.")
	}
}

// upload follows server/api/files.py, uploadGcodeFile.
func (o *OctoPrint) upload(w http.ResponseWriter, r *http.Request) {
	fields, name, data, err := readUpload(r)
	if err != nil {
		octoError(w, http.StatusBadRequest, "No file to upload and no folder to create")
		return
	}
	if !isGcode(name) {
		octoError(w, http.StatusUnsupportedMediaType, "Could not upload file, invalid type")
		return
	}
	busy := octoPrinting[o.state]
	// printer/__init__.py, can_modify_file: not the file being printed.
	if name == o.current && busy {
		octoError(w, http.StatusConflict, "Trying to overwrite file that is currently being printed")
		return
	}
	// filemanager/storage.py, LocalFileStorage.add_file: new content drops the old
	// metadata, print history included (1.11; 2.0 keeps it).
	if old, ok := o.files[name]; ok && !bytes.Equal(old, data) {
		delete(o.history, name)
	}
	o.files[name] = data
	// Select and print only when operational and neither printing nor paused; the
	// answer says what happened instead of refusing.
	canStart := o.operational() && !busy
	effSelect := fields["select"] == "true" && canStart
	effPrint := fields["print"] == "true" && canStart && !o.noPrint
	if effSelect || effPrint {
		o.current, o.done = name, nil
	}
	if effPrint {
		// Started inline before the answer (printer/standard.py, start_print; comm.py,
		// startPrint): the state is "Starting" as the 201 leaves, "Printing" a moment later.
		o.state, o.errText = "Starting", ""
		zero := 0.0
		o.done = &zero
		o.phys.begin(name)
	}
	loc := o.URL + "/api/files/local/" + url.PathEscape(name)
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusCreated, map[string]any{
		"files": map[string]any{"local": map[string]any{"name": name, "path": name, "origin": "local",
			"refs": map[string]string{"resource": loc, "download": o.URL + "/downloads/files/local/" + url.PathEscape(name)}}},
		"done": true, "effectiveSelect": effSelect, "effectivePrint": effPrint,
	})
}

// job follows server/api/job.py, jobState; with no file selected every field is null
// (printer/standard.py, _setJobData).
func (o *OctoPrint) job(w http.ResponseWriter) {
	if o.state == "Starting" {
		o.state = "Printing"
	}
	file := map[string]any{"name": nil, "path": nil, "display": nil, "origin": nil, "size": nil, "date": nil}
	if o.current != "" {
		file = map[string]any{"name": o.current, "path": o.current, "display": o.current, "origin": "local",
			"size": len(o.files[o.current]), "date": time.Now().Unix()}
	}
	var completion any
	if o.done != nil {
		completion = *o.done
	}
	body := map[string]any{
		"job":      map[string]any{"file": file, "estimatedPrintTime": nil, "averagePrintTime": nil, "lastPrintTime": nil, "filament": nil, "user": nil},
		"progress": map[string]any{"completion": completion, "filepos": nil, "printTime": nil, "printTimeLeft": nil, "printTimeLeftOrigin": nil},
		"state":    o.state,
	}
	if o.errText != "" {
		body["error"] = o.errText
	}
	writeJSON(w, http.StatusOK, body)
}

// command follows server/api/job.py, controlJob.
func (o *OctoPrint) command(w http.ResponseWriter, r *http.Request) {
	if !o.operational() {
		octoError(w, http.StatusConflict, "Printer is not operational")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		octoError(w, http.StatusUnsupportedMediaType, "Did not attempt to load JSON data because the request Content-Type was not 'application/json'.")
		return
	}
	var cmd struct {
		Command string `json:"command"`
	}
	if err := json.NewDecoder(r.Body).Decode(&cmd); err != nil {
		octoError(w, http.StatusBadRequest, "The browser (or proxy) sent a request that this server could not understand.")
		return
	}
	switch cmd.Command {
	case "cancel":
		if !octoPrinting[o.state] {
			octoError(w, http.StatusConflict, "Printer is neither printing nor paused, 'cancel' command cannot be performed")
			return
		}
		o.cancels++
		o.cancel()
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNoContent)
	case "start", "restart", "pause":
		octoError(w, http.StatusConflict, "not modelled by this test server")
	default:
		octoError(w, http.StatusBadRequest, "command is invalid")
	}
}

// cancel: the print is logged as a failure, the file stays selected and the progress
// fields go null (printer/standard.py, on_comm_print_job_cancelled).
func (o *OctoPrint) cancel() {
	o.record(o.current, false)
	o.phys.end(OutcomeCanceled)
	o.state, o.done = "Operational", nil
}

// record writes a print into the file's history. OctoPrint does that in a thread of
// its own (filemanager/__init__.py, log_print), with no order against the state
// change, which delayRecords makes visible.
func (o *OctoPrint) record(name string, success bool) {
	write := func() {
		o.history[name] = append(o.history[name], octoPrint{date: float64(time.Now().Unix()), success: success, seconds: 60})
	}
	if o.delayRecords {
		o.pending = append(o.pending, write)
		return
	}
	write()
}

// fileInfo follows server/api/files.py, readGcodeFile: "prints" appears once the file
// has a history; "last.printTime" only for a success.
func (o *OctoPrint) fileInfo(w http.ResponseWriter, name string) {
	data, ok := o.files[name]
	if !ok {
		octoError(w, http.StatusNotFound, "File not found on 'local': "+name)
		return
	}
	info := map[string]any{"name": name, "display": name, "path": name, "origin": "local", "type": "machinecode",
		"typePath": []string{"machinecode", "gcode"}, "size": len(data), "date": time.Now().Unix(),
		"refs": map[string]string{"resource": o.URL + "/api/files/local/" + url.PathEscape(name)}}
	if h := o.history[name]; len(h) > 0 {
		success, failure := 0, 0
		for _, p := range h {
			if p.success {
				success++
			} else {
				failure++
			}
		}
		last := h[len(h)-1]
		lastJSON := map[string]any{"success": last.success, "date": last.date}
		if last.success {
			lastJSON["printTime"] = last.seconds
		}
		info["prints"] = map[string]any{"success": success, "failure": failure, "last": lastJSON}
	}
	writeJSON(w, http.StatusOK, info)
}

// delete follows server/api/files.py, deleteGcodeFile.
func (o *OctoPrint) delete(w http.ResponseWriter, name string) {
	if _, ok := o.files[name]; !ok {
		octoError(w, http.StatusNotFound, "File not found on 'local': "+name)
		return
	}
	if name == o.current && octoPrinting[o.state] {
		octoError(w, http.StatusConflict, "Trying to delete a file that is currently in use")
		return
	}
	if name == o.current {
		o.current, o.done = "", nil
	}
	delete(o.files, name)
	delete(o.history, name)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusNoContent)
}

// --- what happens at the printer, for tests -----------------------------------------

// Advance moves the current print to fraction f (0..1).
func (o *OctoPrint) Advance(f float64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	pct := 100 * f
	o.done = &pct
}

// Complete ends the current print well: "Finishing", the record written, then
// "Operational" with the file still selected at 100% (on_comm_print_job_done).
func (o *OctoPrint) Complete() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !octoPrinting[o.state] {
		return
	}
	o.record(o.current, true)
	o.phys.end(OutcomeCompleted)
	pct := 100.0
	o.state, o.done = "Operational", &pct
}

// Fail ends the current print with a printer error (a thermal runaway, a lost serial
// line): logged as a failure, the job cleared, "Offline after error" with the error
// text until someone reconnects (printer/standard.py, on_comm_state_change).
func (o *OctoPrint) Fail(msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.state == "Printing" || o.state == "Starting" {
		o.record(o.current, false)
		o.phys.end(OutcomeFailed)
	} else {
		o.phys.end(OutcomeLost) // lost while paused: on_comm_state_change logs nothing
	}
	o.state, o.errText, o.current, o.done = "Offline after error", msg, "", nil
}

// Shutdown is Fail: OctoPrint sees a firmware halt as a printer error.
func (o *OctoPrint) Shutdown(msg string) { o.Fail(msg) }

// Recover reconnects the printer after an error.
func (o *OctoPrint) Recover() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.state, o.errText = "Operational", ""
}

// CancelAtPrinter is a cancel from OctoPrint's own page or the printer's screen.
func (o *OctoPrint) CancelAtPrinter() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if octoPrinting[o.state] {
		o.cancel()
	}
}

// Pause pauses the current print.
func (o *OctoPrint) Pause() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if octoPrinting[o.state] {
		o.state = "Paused"
	}
}

// Restart restarts OctoPrint: a print it was streaming is lost and nothing records it;
// files and their histories stay, and the printer reconnects with nothing selected.
func (o *OctoPrint) Restart() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if octoPrinting[o.state] {
		o.phys.end(OutcomeLost)
	}
	o.state, o.errText, o.current, o.done = "Operational", "", "", nil
}

// StartOther prints a file of someone else's, started from OctoPrint's own page.
func (o *OctoPrint) StartOther(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.files[name] = []byte("G28\n")
	zero := 0.0
	o.current, o.state, o.done = name, "Printing", &zero
	o.phys.begin(name)
}

// SetNoPrintPermission makes the API key one without the PRINT permission.
func (o *OctoPrint) SetNoPrintPermission(v bool) { o.mu.Lock(); o.noPrint = v; o.mu.Unlock() }

// SetDelayRecords holds print records back until FlushRecords, as OctoPrint's logging
// thread may.
func (o *OctoPrint) SetDelayRecords(v bool) { o.mu.Lock(); o.delayRecords = v; o.mu.Unlock() }

// FlushRecords writes the print records held back.
func (o *OctoPrint) FlushRecords() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, f := range o.pending {
		f()
	}
	o.pending = nil
}

// SetBeforeUpload runs f as each upload arrives, before OctoPrint handles it.
func (o *OctoPrint) SetBeforeUpload(f func()) { o.mu.Lock(); o.beforeUpload = f; o.mu.Unlock() }

// SetAfterUpload runs f after OctoPrint handled each upload, before the next request.
func (o *OctoPrint) SetAfterUpload(f func()) { o.mu.Lock(); o.afterUpload = f; o.mu.Unlock() }

// State is OctoPrint's state string and the selected file.
func (o *OctoPrint) State() (state, file string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state, o.current
}

// Uploaded returns the bytes uploaded as name.
func (o *OctoPrint) Uploaded(name string) ([]byte, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.files[name]
	return b, ok
}

// Prints lists every physical print the printer started.
func (o *OctoPrint) Prints() []PrintRecord { o.mu.Lock(); defer o.mu.Unlock(); return o.phys.list() }

// Cancels counts cancel commands that stopped a print.
func (o *OctoPrint) Cancels() int { o.mu.Lock(); defer o.mu.Unlock(); return o.cancels }

// settings answers GET /api/settings with its webcam parts (server/api/settings.py,
// getSettings). Since 1.9 the still's URL is the classic webcam plugin's setting,
// under plugins.classicwebcam (plugins/classicwebcam/__init__.py,
// get_settings_defaults: "snapshot", "" when none); webcam.webcamEnabled stays
// OctoPrint's own.
func (o *OctoPrint) settings(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{
		"webcam": map[string]any{"webcamEnabled": o.webcamOn, "timelapseEnabled": true, "defaultWebcam": "classic", "snapshotWebcam": "classic"},
		"plugins": map[string]any{"classicwebcam": map[string]any{"snapshot": o.snapshotURL, "stream": "", "snapshotTimeout": 5,
			"snapshotSslValidation": true, "flipH": false, "flipV": false, "rotate90": false}},
	})
}

// SetWebcam sets the classic webcam's still URL ("" for none) and whether the webcam
// is enabled.
func (o *OctoPrint) SetWebcam(enabled bool, snapshotURL string) {
	o.mu.Lock()
	o.webcamOn, o.snapshotURL = enabled, snapshotURL
	o.mu.Unlock()
}
