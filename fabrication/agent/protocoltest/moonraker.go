package protocoltest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Moonraker is a protocol test server that behaves as Moonraker (v0.9 and later) and
// the Klipper behind it do, by their source. Paths in comments are under
// Arksine/moonraker's moonraker/ and Klipper3d/klipper's klippy/.
type Moonraker struct {
	*httptest.Server
	APIKey string

	mu        sync.Mutex
	klippy    string // webhooks state: ready, shutdown (klippy.py, get_state_message)
	klippyMsg string
	ps        moonStats
	progress  float64
	files     map[string]*moonFile
	history   []moonJob
	queue     []moonQueued
	nextJob   int
	phys      physical
	cancels   int

	trusted      bool
	noHistory    bool
	queueUploads bool
	corrupt      bool
	beforeUpload func()
	afterUpload  func()
	webcams      []map[string]any
}

// moonStats is Klipper's print_stats (extras/print_stats.py, get_status).
type moonStats struct {
	filename, state, message string
}

type moonFile struct {
	data       []byte
	modified   float64
	printStart *float64 // metadata print_start_time, set by history (history.py, update_metadata)
	jobID      *string
}

type moonJob struct {
	JobID     string   `json:"job_id"`
	User      string   `json:"user"`
	Filename  string   `json:"filename"`
	Status    string   `json:"status"`
	StartTime float64  `json:"start_time"`
	EndTime   *float64 `json:"end_time"`
	Duration  float64  `json:"print_duration"`
	Total     float64  `json:"total_duration"`
	Filament  float64  `json:"filament_used"`
	Metadata  struct{} `json:"metadata"`
	Aux       []any    `json:"auxiliary_data"`
	Exists    bool     `json:"exists"`
}

type moonQueued struct {
	Filename  string  `json:"filename"`
	JobID     string  `json:"job_id"`
	TimeAdded float64 `json:"time_added"`
	InQueue   float64 `json:"time_in_queue"`
}

// NewMoonraker starts a server with Klipper ready and idle. With an apiKey every
// request must carry it; close the server with Close.
func NewMoonraker(apiKey string) *Moonraker {
	m := &Moonraker{APIKey: apiKey, klippy: "ready", klippyMsg: "Printer is ready", ps: moonStats{state: "standby"}, files: map[string]*moonFile{}}
	m.Server = httptest.NewServer(http.HandlerFunc(m.serve))
	return m
}

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// moonError is the body of every error (components/application.py,
// AuthorizedRequestHandler.write_error). API endpoints put the error's text in
// "message"; the upload handler and authorization pass it as tornado's log message,
// so there "message" is only the status phrase and the text is in the traceback.
func moonError(w http.ResponseWriter, status int, msg, detail string) {
	tb := fmt.Sprintf("tornado.web.HTTPError: HTTP %d: %s", status, http.StatusText(status))
	if detail != "" {
		tb += " (" + detail + ")"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg, "traceback": tb + "\n"}})
}

func (m *Moonraker) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	trusted, hook, after := m.trusted, m.beforeUpload, m.afterUpload
	m.mu.Unlock()
	// components/authorization.py, authenticate_request: an API key, else a trusted
	// client (a wrong key from a trusted address passes), else 401, before routing.
	if m.APIKey != "" && r.Header.Get("X-Api-Key") != m.APIKey && !trusted {
		moonError(w, http.StatusUnauthorized, "Unauthorized", "")
		return
	}
	if r.Method == "POST" && r.URL.Path == "/server/files/upload" {
		if hook != nil {
			hook()
		}
		if after != nil {
			defer after()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	q := r.URL.Query()
	switch {
	case r.Method == "POST" && r.URL.Path == "/server/files/upload":
		m.upload(w, r)
	case r.Method == "GET" && r.URL.Path == "/printer/objects/query":
		m.query(w, q)
	case r.Method == "POST" && r.URL.Path == "/printer/print/start":
		// components/klippy_apis.py, start_print: SDCARD_PRINT_FILE straight to Klipper,
		// past the job queue, with no busy check of its own.
		name := q.Get("filename")
		switch {
		case m.klippy != "ready":
			moonError(w, http.StatusBadRequest, "Klippy state: "+m.klippy, "")
		case m.ps.state == "printing":
			moonError(w, http.StatusBadRequest, "SD busy", "") // extras/virtual_sdcard.py, cmd_SDCARD_PRINT_FILE
		case m.files[name] == nil:
			moonError(w, http.StatusBadRequest, "Unable to open file", "")
		default:
			m.start(name) // a paused print is dropped for the new file, as Klipper does
			writeJSON(w, http.StatusOK, map[string]any{"result": "ok"})
		}
	case r.Method == "GET" && r.URL.Path == "/server/webcams/list":
		// components/webcam.py, _handle_webcam_list: every webcam's as_dict, the URLs as
		// configured (a partial URL stays partial; front ends put it on the printer's host).
		cams := m.webcams
		if cams == nil {
			cams = []map[string]any{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": map[string]any{"webcams": cams}})
	case r.Method == "POST" && r.URL.Path == "/printer/print/cancel":
		// extras/pause_resume.py, cmd_CANCEL_PRINT: idle, it only answers "ok".
		if m.ps.state == "printing" || m.ps.state == "paused" {
			m.cancels++
			m.cancel()
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": "ok"})
	case r.Method == "GET" && r.URL.Path == "/server/history/list" && !m.noHistory:
		m.historyList(w, q)
	case r.Method == "GET" && r.URL.Path == "/server/files/metadata":
		m.metadata(w, q.Get("filename"))
	case r.Method == "GET" && r.URL.Path == "/server/job_queue/status":
		m.queueStatus(w)
	case r.Method == "DELETE" && r.URL.Path == "/server/job_queue/job":
		// components/job_queue.py, _handle_job_request: unknown ids are ignored.
		drop := map[string]bool{}
		for _, id := range strings.Split(q.Get("job_ids"), ",") {
			drop[id] = true
		}
		kept := m.queue[:0]
		for _, j := range m.queue {
			if !drop[j.JobID] {
				kept = append(kept, j)
			}
		}
		m.queue = kept
		m.queueStatus(w)
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/server/files/gcodes/"):
		m.delete(w, strings.TrimPrefix(r.URL.Path, "/server/files/gcodes/"))
	default:
		// components/application.py, AuthorizedErrorHandler (and no history before
		// v0.9 without a [history] section).
		moonError(w, http.StatusNotFound, "Not Found", "")
	}
}

// upload follows components/application.py, FileUploadHandler, and
// components/file_manager/file_manager.py, finalize_upload and _finish_gcode_upload.
func (m *Moonraker) upload(w http.ResponseWriter, r *http.Request) {
	fields, name, data, err := readUpload(r)
	if err != nil {
		moonError(w, http.StatusBadRequest, "Bad Request", "No file name specifed in upload form")
		return
	}
	if root := fields["root"]; root != "" && root != "gcodes" {
		moonError(w, http.StatusBadRequest, "Bad Request", "Invalid root request: "+root)
		return
	}
	if m.corrupt && len(data) > 0 {
		data[len(data)/2] ^= 0xff
	}
	if want := strings.ToLower(fields["checksum"]); want != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			moonError(w, http.StatusUnprocessableEntity, "Unprocessable Entity",
				fmt.Sprintf("File checksum mismatch: expected %s, calculated %s", want, got))
			return
		}
	}
	active := m.klippy == "ready" && (m.ps.state == "printing" || m.ps.state == "paused")
	// _handle_operation_check: not over the file being printed.
	if active && m.ps.filename == name {
		moonError(w, http.StatusForbidden, "Forbidden", "File is loaded, upload not permitted")
		return
	}
	m.files[name] = &moonFile{data: data, modified: now()} // new metadata: print_start_time null
	started, queued := false, false
	if fields["print"] == "true" {
		switch {
		case active:
			// the operation check says no; no start is tried
		case m.klippy != "ready":
			// start_print fails and the error is dropped: "except self.server.error: pass"
		default:
			m.start(name)
			started = true
		}
		if !started && m.queueUploads {
			// [file_manager] queue_gcode_uploads: whatever kept it from starting, the
			// job queue takes it, to start when a print ends (components/job_queue.py,
			// queue_job).
			m.nextJob++
			m.queue = append(m.queue, moonQueued{Filename: name, JobID: fmt.Sprintf("%016X", m.nextJob), TimeAdded: now()})
			queued = true
		}
	}
	loc := m.URL + "/server/files/gcodes/" + url.PathEscape(name)
	w.Header().Set("Location", loc)
	// Not wrapped in {"result": ...}, unlike every other endpoint: FileUploadHandler
	// finishes with the bare result.
	writeJSON(w, http.StatusCreated, map[string]any{
		"item":          map[string]any{"path": name, "root": "gcodes", "modified": m.files[name].modified, "size": len(data), "permissions": "rw"},
		"print_started": started, "print_queued": queued, "action": "create_file",
	})
}

// query follows klippy/webhooks.py, QueryStatusHelper: an object Klipper has not is
// {}; Moonraker answers 503 while Klippy is away (klippy_connection.py, request).
func (m *Moonraker) query(w http.ResponseWriter, q url.Values) {
	if m.klippy == "disconnected" {
		moonError(w, http.StatusServiceUnavailable, "Klippy Host not connected", "")
		return
	}
	status := map[string]any{}
	if q.Has("webhooks") {
		status["webhooks"] = map[string]any{"state": m.klippy, "state_message": m.klippyMsg}
	}
	if q.Has("print_stats") {
		status["print_stats"] = map[string]any{"filename": m.ps.filename, "total_duration": 0.0, "print_duration": 0.0,
			"filament_used": 0.0, "state": m.ps.state, "message": m.ps.message, "info": map[string]any{"total_layer": nil, "current_layer": nil}}
	}
	if q.Has("virtual_sdcard") {
		path := ""
		if m.ps.filename != "" {
			path = "/home/pi/printer_data/gcodes/" + m.ps.filename
		}
		status["virtual_sdcard"] = map[string]any{"file_path": path, "progress": m.progress, "is_active": m.ps.state == "printing",
			"file_position": 0, "file_size": 0}
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": map[string]any{"eventtime": now(), "status": status}})
}

// historyList follows components/history.py, _handle_jobs_list: limit 50 by default
// (0: all), newest first unless order=asc.
func (m *Moonraker) historyList(w http.ResponseWriter, q url.Values) {
	limit := 50
	if s := q.Get("limit"); s != "" {
		limit, _ = strconv.Atoi(s)
	}
	jobs := make([]moonJob, 0, len(m.history))
	for i := len(m.history) - 1; i >= 0; i-- {
		jobs = append(jobs, m.history[i])
	}
	if strings.EqualFold(q.Get("order"), "asc") {
		jobs = append(jobs[:0:0], m.history...)
	}
	if limit > 0 && len(jobs) > limit {
		jobs = jobs[:limit]
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": map[string]any{"count": len(jobs), "jobs": jobs}})
}

// metadata follows components/file_manager/metadata.py and history.py,
// update_metadata: print_start_time and job_id are null until the file is printed.
func (m *Moonraker) metadata(w http.ResponseWriter, name string) {
	f := m.files[name]
	if f == nil {
		moonError(w, http.StatusNotFound, "Metadata not available for "+name, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": map[string]any{"filename": name, "size": len(f.data),
		"modified": f.modified, "print_start_time": f.printStart, "job_id": f.jobID}})
}

func (m *Moonraker) queueStatus(w http.ResponseWriter) {
	state := "ready"
	if len(m.queue) == 0 {
		state = "paused"
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": map[string]any{"queued_jobs": append([]moonQueued{}, m.queue...), "queue_state": state}})
}

// delete follows file_manager.py, _handle_file_delete: not the file being printed.
func (m *Moonraker) delete(w http.ResponseWriter, name string) {
	if m.files[name] == nil {
		moonError(w, http.StatusNotFound, "File "+name+" does not exist", "")
		return
	}
	if m.ps.filename == name && (m.ps.state == "printing" || m.ps.state == "paused") {
		moonError(w, http.StatusForbidden, "File is loaded, DELETE not permitted", "")
		return
	}
	delete(m.files, name)
	writeJSON(w, http.StatusOK, map[string]any{"result": map[string]any{"item": map[string]any{"path": name, "root": "gcodes"}, "action": "delete_file"}})
}

// start is SDCARD_PRINT_FILE: print_stats takes the file (extras/print_stats.py,
// note_start) and history opens a job (history.py, _on_print_started).
func (m *Moonraker) start(name string) {
	if m.ps.state == "printing" || m.ps.state == "paused" {
		m.phys.end(OutcomeCanceled) // Klipper resets a paused print for the new file
		m.finish("cancelled")
	}
	m.ps, m.progress = moonStats{filename: name, state: "printing"}, 0
	id := fmt.Sprintf("%06X", len(m.history)+1)
	t := now()
	m.history = append(m.history, moonJob{JobID: id, Filename: name, Status: "in_progress", StartTime: t, Exists: true, Aux: []any{}})
	if f := m.files[name]; f != nil && !m.noHistory {
		f.printStart, f.jobID = &t, &id // only the history component writes them
	}
	m.phys.begin(name)
}

// finish closes the history's job in progress (history.py, finish_job).
func (m *Moonraker) finish(status string) {
	if n := len(m.history); n > 0 && m.history[n-1].Status == "in_progress" {
		t := now()
		m.history[n-1].Status, m.history[n-1].EndTime = status, &t
	}
}

func (m *Moonraker) cancel() {
	m.ps.state = "cancelled"
	m.finish("cancelled")
	m.phys.end(OutcomeCanceled)
}

// --- what happens at the printer, for tests -----------------------------------------

// Advance moves the current print to fraction f (0..1).
func (m *Moonraker) Advance(f float64) { m.mu.Lock(); m.progress = f; m.mu.Unlock() }

// Complete ends the current print well; a job queue with files in it starts the next
// one (components/job_queue.py, _on_job_complete, automatic transition).
func (m *Moonraker) Complete() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ps.state != "printing" {
		return
	}
	m.progress, m.ps.state = 1, "complete"
	m.finish("completed")
	m.phys.end(OutcomeCompleted)
	if len(m.queue) > 0 {
		// _pop_job starts the file first and takes it off the queue after.
		next := m.queue[0]
		if m.files[next.Filename] != nil {
			m.start(next.Filename)
		}
		m.queue = m.queue[1:]
	}
}

// Fail ends the current print with a G-code error: print_stats "error" with its
// message (print_stats.py, note_error), history "error".
func (m *Moonraker) Fail(msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ps.state != "printing" && m.ps.state != "paused" {
		return
	}
	m.ps.state, m.ps.message = "error", msg
	m.finish("error")
	m.phys.end(OutcomeFailed)
}

// Shutdown is a Klipper firmware shutdown mid-print: virtual_sdcard pauses the work
// (extras/virtual_sdcard.py, _handle_analyze_shutdown then note_pause), so print_stats
// shows the file "paused"; webhooks says "shutdown"; Moonraker's history closes the
// job as "klippy_shutdown" (history.py, _handle_shutdown).
func (m *Moonraker) Shutdown(msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.klippy, m.klippyMsg = "shutdown", msg+"\nOnce the underlying issue is corrected, use the\n\"FIRMWARE_RESTART\" command to reset the firmware, reload the\nconfig, and restart the host software.\nPrinter is shutdown"
	if m.ps.state == "printing" {
		m.ps.state = "paused"
		m.finish("klippy_shutdown")
		m.phys.end(OutcomeShutdown)
	}
}

// Recover is FIRMWARE_RESTART: Klipper rebuilds its objects, so print_stats is back to
// standby with no file.
func (m *Moonraker) Recover() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ps.state == "printing" || m.ps.state == "paused" {
		m.finish("klippy_disconnect")
		m.phys.end(OutcomeLost)
	}
	m.klippy, m.klippyMsg = "ready", "Printer is ready"
	m.ps, m.progress = moonStats{state: "standby"}, 0
}

// Restart is a host RESTART mid-print: the print is lost, history says
// "klippy_disconnect", print_stats starts over.
func (m *Moonraker) Restart() { m.Recover() }

// RestartServer restarts Moonraker while Klipper prints on: the history closes the job
// as "server_exit" (history.py, on_exit) and opens none for the print that goes on.
func (m *Moonraker) RestartServer() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.finish("server_exit")
}

// Disconnect cuts Klippy off from Moonraker (the host process died): /printer/* answers
// 503 until Recover.
func (m *Moonraker) Disconnect() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.klippy = "disconnected"
}

// CancelAtPrinter is a cancel from Mainsail, Fluidd or the printer's screen.
func (m *Moonraker) CancelAtPrinter() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ps.state == "printing" || m.ps.state == "paused" {
		m.cancel()
	}
}

// Pause pauses the current print.
func (m *Moonraker) Pause() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ps.state == "printing" {
		m.ps.state = "paused"
	}
}

// StartOther prints a file of someone else's, started from Mainsail.
func (m *Moonraker) StartOther(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = &moonFile{data: []byte("G28\n"), modified: now()}
	m.start(name)
}

// SetTrusted makes every request come from a trusted client, whatever its key.
func (m *Moonraker) SetTrusted(v bool) { m.mu.Lock(); m.trusted = v; m.mu.Unlock() }

// SetNoHistory is a Moonraker before v0.9 without a [history] section.
func (m *Moonraker) SetNoHistory(v bool) { m.mu.Lock(); m.noHistory = v; m.mu.Unlock() }

// SetQueueUploads is [file_manager] queue_gcode_uploads: True.
func (m *Moonraker) SetQueueUploads(v bool) { m.mu.Lock(); m.queueUploads = v; m.mu.Unlock() }

// SetCorruptUploads flips a byte of every upload as it arrives, as a bad link would.
func (m *Moonraker) SetCorruptUploads(v bool) { m.mu.Lock(); m.corrupt = v; m.mu.Unlock() }

// SetBeforeUpload runs f as each upload arrives, before Moonraker handles it.
func (m *Moonraker) SetBeforeUpload(f func()) { m.mu.Lock(); m.beforeUpload = f; m.mu.Unlock() }

// SetAfterUpload runs f after Moonraker handled each upload, before the next request.
func (m *Moonraker) SetAfterUpload(f func()) { m.mu.Lock(); m.afterUpload = f; m.mu.Unlock() }

// State is print_stats' state and file.
func (m *Moonraker) State() (state, file string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ps.state, m.ps.filename
}

// Queued lists the files in Moonraker's job queue.
func (m *Moonraker) Queued() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for _, j := range m.queue {
		names = append(names, j.Filename)
	}
	return names
}

// Uploaded returns the bytes uploaded as name.
func (m *Moonraker) Uploaded(name string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.files[name]; f != nil {
		return f.data, true
	}
	return nil, false
}

// Prints lists every physical print the printer started.
func (m *Moonraker) Prints() []PrintRecord { m.mu.Lock(); defer m.mu.Unlock(); return m.phys.list() }

// Cancels counts cancels that stopped a print.
func (m *Moonraker) Cancels() int { m.mu.Lock(); defer m.mu.Unlock(); return m.cancels }

// AddWebcam configures a webcam as a [webcam name] section would (components/webcam.py,
// WebCam.from_config and its defaults).
func (m *Moonraker) AddWebcam(name, snapshotURL string) {
	m.mu.Lock()
	m.webcams = append(m.webcams, map[string]any{"name": name, "location": "printer", "service": "mjpegstreamer", "target_fps": 15,
		"stream_url": "/webcam/?action=stream", "snapshot_url": snapshotURL, "flip_horizontal": false, "flip_vertical": false,
		"rotation": 0, "source": "config"})
	m.mu.Unlock()
}
