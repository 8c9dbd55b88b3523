package protocoltest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"
)

// Moonraker is a protocol test server for Moonraker's HTTP API, as documented at
// moonraker.readthedocs.io (web_api.md):
//   - with an API key set, every call needs the X-Api-Key header (401 without it);
//   - answers are {"result": ...}; errors are {"error":{"code","message"}} with the code
//     also as the HTTP status;
//   - POST /server/files/upload takes multipart "file" with "root" (default gcodes),
//     "checksum" (SHA-256 hex; a mismatch is 422 and nothing is kept) and "print";
//     201 with {"item":{...},"print_started":...,"action":"create_file"};
//   - GET /printer/objects/query?print_stats&virtual_sdcard reports the print;
//   - POST /printer/print/cancel cancels it ({"result":"ok"});
//   - GET /server/history/list?limit=&order= lists past and current jobs.
type Moonraker struct {
	*httptest.Server
	APIKey string
	// CorruptUploads flips a byte of every upload as it arrives, as a bad link would.
	CorruptUploads bool
	p              print
	history        []moonJob
}

type moonJob struct {
	JobID     string  `json:"job_id"`
	Filename  string  `json:"filename"`
	Status    string  `json:"status"`
	Exists    bool    `json:"exists"`
	StartTime float64 `json:"start_time"`
	EndTime   float64 `json:"end_time,omitempty"`
}

// NewMoonraker starts a server; close it with Close.
func NewMoonraker(apiKey string) *Moonraker {
	m := &Moonraker{APIKey: apiKey, p: print{state: "standby", uploads: map[string][]byte{}}}
	m.Server = httptest.NewServer(http.HandlerFunc(m.serve))
	return m
}

func moonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg}})
}

func (m *Moonraker) serve(w http.ResponseWriter, r *http.Request) {
	if m.APIKey != "" && r.Header.Get("X-Api-Key") != m.APIKey {
		moonError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	switch {
	case r.Method == "POST" && r.URL.Path == "/server/files/upload":
		m.upload(w, r)
	case r.Method == "GET" && r.URL.Path == "/printer/objects/query":
		status := map[string]any{}
		q := r.URL.Query()
		if q.Has("print_stats") {
			status["print_stats"] = map[string]any{"filename": m.p.file, "state": m.p.state, "message": m.p.message}
		}
		if q.Has("virtual_sdcard") {
			status["virtual_sdcard"] = map[string]any{"progress": m.p.progress, "is_active": m.p.state == "printing"}
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": map[string]any{"eventtime": float64(time.Now().UnixNano()) / 1e9, "status": status}})
	case r.Method == "POST" && r.URL.Path == "/printer/print/cancel":
		if m.p.state != "printing" && m.p.state != "paused" {
			moonError(w, http.StatusBadRequest, "Print not active")
			return
		}
		m.p.cancels++
		m.end("cancelled", "cancelled")
		writeJSON(w, http.StatusOK, map[string]any{"result": "ok"})
	case r.Method == "GET" && r.URL.Path == "/server/history/list":
		jobs := make([]moonJob, 0, len(m.history))
		for i := len(m.history) - 1; i >= 0; i-- { // order=desc, the default
			jobs = append(jobs, m.history[i])
		}
		if r.URL.Query().Get("order") == "asc" {
			jobs = append([]moonJob(nil), m.history...)
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": map[string]any{"count": len(jobs), "jobs": jobs}})
	default:
		moonError(w, http.StatusNotFound, "Not Found")
	}
}

func (m *Moonraker) upload(w http.ResponseWriter, r *http.Request) {
	fields, name, data, err := readUpload(r)
	if err != nil || name == "" {
		moonError(w, http.StatusBadRequest, "No file name specifed in upload form")
		return
	}
	root := fields["root"]
	if root == "" {
		root = "gcodes"
	}
	if root != "gcodes" && root != "config" {
		moonError(w, http.StatusBadRequest, fmt.Sprintf("Invalid root request: %s", root))
		return
	}
	if m.CorruptUploads && len(data) > 0 {
		data[len(data)/2] ^= 0xff
	}
	if want := strings.ToLower(fields["checksum"]); want != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			moonError(w, http.StatusUnprocessableEntity, fmt.Sprintf("File checksum mismatch: expected %s, calculated %s", want, got))
			return
		}
	}
	printIt := strings.EqualFold(fields["print"], "true")
	if printIt && m.p.state == "printing" {
		moonError(w, http.StatusConflict, "Printer is busy")
		return
	}
	m.p.uploads[name] = data
	started := false
	if printIt && root == "gcodes" {
		m.p.file, m.p.state, m.p.progress, m.p.message = name, "printing", 0, ""
		m.history = append(m.history, moonJob{JobID: fmt.Sprintf("%06X", len(m.history)+1), Filename: name, Status: "in_progress", Exists: true, StartTime: float64(time.Now().Unix())})
		started = true
	}
	writeJSON(w, http.StatusCreated, map[string]any{"result": map[string]any{
		"item":          map[string]any{"path": name, "root": root, "size": len(data), "modified": float64(time.Now().Unix()), "permissions": "rw"},
		"print_started": started, "print_queued": false, "action": "create_file",
	}})
}

// end closes the current print with a print_stats state and a history status.
func (m *Moonraker) end(state, historyStatus string) {
	m.p.state = state
	if n := len(m.history); n > 0 && m.history[n-1].Status == "in_progress" {
		m.history[n-1].Status, m.history[n-1].EndTime = historyStatus, float64(time.Now().Unix())
	}
}

// Advance moves the current print to fraction f (0..1).
func (m *Moonraker) Advance(f float64) { m.p.mu.Lock(); m.p.progress = f; m.p.mu.Unlock() }

// Complete ends the current print successfully.
func (m *Moonraker) Complete() {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	m.p.progress = 1
	m.end("complete", "completed")
}

// Fail ends the current print with an error.
func (m *Moonraker) Fail(msg string) {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	m.p.message = msg
	m.end("error", "error")
}

// Restart is a Klipper firmware restart: print_stats goes back to standby with no file;
// the history stays.
func (m *Moonraker) Restart() {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	if m.p.state == "printing" {
		m.end("standby", "klippy_shutdown")
	}
	m.p.file, m.p.state, m.p.progress = "", "standby", 0
}

// Uploaded returns the bytes uploaded as name.
func (m *Moonraker) Uploaded(name string) ([]byte, bool) {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	b, ok := m.p.uploads[name]
	return b, ok
}

// Cancels counts cancels that stopped a print.
func (m *Moonraker) Cancels() int { m.p.mu.Lock(); defer m.p.mu.Unlock(); return m.p.cancels }
