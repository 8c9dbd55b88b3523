package protocoltest

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PrusaLink is a protocol test server for PrusaLink's v1 API, as the published
// description (prusa3d/Prusa-Link-Web, spec/openapi.yaml) and PrusaLink's own source
// (prusa3d/Prusa-Link; paths in comments are under its prusa/link/) behave. Where the
// two differ the comment says so.
type PrusaLink struct {
	*httptest.Server
	APIKey         string // "" accepts no key: every X-Api-Key is refused
	User, Password string // the digest user (web/lib/auth.py, REALM "Administrator")

	mu      sync.Mutex
	state   string // a printer state of the spec's StatusPrinter.state
	errText string // status_printer.message while in ERROR
	files   map[string][]byte
	job     *prusaJob // nil: no job (GET /api/v1/job answers 204)
	lastID  int       // job ids only grow, across restarts (printer_adapter/job.py, kept in the printer's EEPROM)
	nonces  map[string]time.Time
	phys    physical
	cancels int
	forget  bool // the job is dropped as soon as it ends, as PrusaLink's source does
	sess    bool // the challenge asks for MD5-sess
	hold    bool // an upload's print starts only on ReleaseStart
	held    string
	before  func()
	cameras []*prusaCamera
}

// prusaCamera is a camera PrusaLink drives (web/cameras.py): its last still, and
// whether it can take one on demand.
type prusaCamera struct {
	id         string
	connected  bool
	last       []byte // nil: no still taken yet
	fresh      []byte // what a POST .../snap takes
	noOnDemand bool
}

type prusaJob struct {
	id       int
	file     string
	progress float64
}

const prusaRealm = "Administrator" // web/lib/auth.py, REALM

// prusaLocalDir is the display path of the "local" storage (app.cfg.printer.directory_name).
const prusaLocalDir = "/PrusaLink gcodes"

// NewPrusaLink starts a server whose printer is idle; close it with Close.
func NewPrusaLink(apiKey, user, password string) *PrusaLink {
	p := &PrusaLink{APIKey: apiKey, User: user, Password: password, state: "IDLE",
		files: map[string][]byte{}, nonces: map[string]time.Time{}}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	return p
}

// prusaError answers a LinkError (conditions.py): text/plain "title\ntext\n" unless the
// client accepts JSON, then {"title", "message"} (LinkError.text_response, json_response).
func prusaError(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, status, map[string]string{"title": title, "message": text})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s\n%s\n", title, text)
}

// authorized follows web/lib/auth.py, check_api_digest: an X-Api-Key header is checked
// against the key (403 "Bad X-Api-Key." when it differs); without one, HTTP digest is
// required (check_digest: 401 with a challenge; a nonce older than auth_timeout, 60 s
// in web/lib/core.py, is refused with stale=true).
func (p *PrusaLink) authorized(w http.ResponseWriter, r *http.Request) bool {
	if key, ok := r.Header["X-Api-Key"]; ok {
		if p.APIKey == "" || key[0] != p.APIKey {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "Bad X-Api-Key.")
			return false
		}
		return true
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Digest ") {
		p.challenge(w, false)
		return false
	}
	f := parseDigestParams(auth[len("Digest "):])
	issued, known := p.nonces[f["nonce"]]
	if !known || time.Since(issued) > 60*time.Second {
		p.challenge(w, known)
		return false
	}
	ha1 := md5hex(p.User + ":" + prusaRealm + ":" + p.Password)
	if p.sess {
		ha1 = md5hex(ha1 + ":" + f["nonce"] + ":" + f["cnonce"])
	}
	ha2 := md5hex(r.Method + ":" + f["uri"])
	want := md5hex(strings.Join([]string{ha1, f["nonce"], f["nc"], f["cnonce"], f["qop"], ha2}, ":"))
	if p.User == "" || f["username"] != p.User || f["realm"] != prusaRealm || f["qop"] != "auth" ||
		f["uri"] != r.URL.RequestURI() || f["response"] != want {
		p.challenge(w, false)
		return false
	}
	return true
}

// challenge answers 401 with a fresh nonce (poorwsgi's HTTPException(401, realm=...)).
func (p *PrusaLink) challenge(w http.ResponseWriter, stale bool) {
	b := make([]byte, 16)
	rand.Read(b)
	nonce := hex.EncodeToString(b)
	p.nonces[nonce] = time.Now()
	alg := "MD5"
	if p.sess {
		alg = "MD5-sess"
	}
	h := fmt.Sprintf(`Digest realm=%q, qop="auth", algorithm=%q, nonce=%q, opaque="fabtest"`, prusaRealm, alg, nonce)
	if stale {
		h += ", stale=true"
	}
	w.Header().Set("WWW-Authenticate", h)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, "401 - Unauthorized")
}

// ExpireNonces makes every nonce handed out so far older than PrusaLink's 60 s.
func (p *PrusaLink) ExpireNonces() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := range p.nonces {
		p.nonces[n] = time.Now().Add(-time.Hour)
	}
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// parseDigestParams reads k=v and k="v" pairs separated by commas.
func parseDigestParams(s string) map[string]string {
	out := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimLeft(s, ", ") {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				break
			}
			v, s = rest[1:1+end], rest[2+end:]
		} else {
			v, s, _ = strings.Cut(rest, ",")
		}
		out[k] = strings.TrimSpace(v)
	}
	return out
}

func (p *PrusaLink) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == "PUT" {
		p.mu.Lock()
		hook := p.before
		p.mu.Unlock()
		if hook != nil {
			hook()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.authorized(w, r) {
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/v1/status":
		p.status(w)
	case r.Method == "GET" && r.URL.Path == "/api/v1/job":
		p.jobInfo(w)
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/api/v1/job/"):
		p.stop(w, r, strings.TrimPrefix(r.URL.Path, "/api/v1/job/"))
	case r.Method == "GET" && r.URL.Path == "/api/v1/cameras":
		p.listCameras(w)
	case r.Method == "GET" && r.URL.Path == "/api/v1/cameras/snap":
		p.defaultSnap(w)
	case strings.HasPrefix(r.URL.Path, "/api/v1/cameras/") && strings.HasSuffix(r.URL.Path, "/snap"):
		p.cameraSnap(w, r, strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/v1/cameras/"), "/snap"))
	case strings.HasPrefix(r.URL.Path, "/api/v1/files/"):
		storage, name, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/api/v1/files/"), "/")
		// web/lib/files.py, check_storage: only local and sdcard exist.
		if storage != "local" && storage != "sdcard" {
			prusaError(w, r, http.StatusNotFound, "Location Not Found", "Location not found, use local.")
			return
		}
		switch r.Method {
		case "PUT":
			p.upload(w, r, storage, name)
		case "GET":
			p.fileInfo(w, r, storage, name)
		case "DELETE":
			p.deleteFile(w, r, storage, name)
		default:
			prusaError(w, r, http.StatusMethodNotAllowed, "Method Not Allowed", "not modelled by this test server")
		}
	default:
		prusaError(w, r, http.StatusNotFound, "Not Found", "Resource you want not found.")
	}
}

// printing: a job is in progress (the printer prints it or holds it paused).
func (p *PrusaLink) printing() bool { return p.state == "PRINTING" || p.state == "PAUSED" }

// status follows web/main.py, api_status: "job" only while there is one; status_printer
// carries the printer's error (conditions.py, printer_status).
func (p *PrusaLink) status(w http.ResponseWriter) {
	sp := map[string]any{"ok": p.errText == "", "message": "OK"}
	if p.errText != "" {
		sp["message"] = p.errText
	}
	body := map[string]any{
		"printer": map[string]any{"state": p.state, "temp_nozzle": 215.0, "temp_bed": 60.0, "status_printer": sp},
		"storage": []map[string]any{{"name": "PrusaLink gcodes", "path": "/local", "read_only": false}},
	}
	if p.job != nil {
		body["job"] = map[string]any{"id": p.job.id, "progress": p.job.progress, "time_printing": 60}
	}
	writeJSON(w, http.StatusOK, body)
}

// jobInfo follows the spec's Job and web/main.py, job_info: 204 without a job. The
// spec lets a job be FINISHED, STOPPED or ERROR (the printer keeps it until someone
// acknowledges the end, as Prusa's Buddy firmware does); PrusaLink's source drops a job
// at its next tick after the end (printer_adapter/job.py, state_changed and tick),
// which SetForgetEndedJobs models.
func (p *PrusaLink) jobInfo(w http.ResponseWriter) {
	if p.job == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	name := p.job.file
	writeJSON(w, http.StatusOK, map[string]any{
		"id": p.job.id, "state": p.state, "progress": p.job.progress, "time_printing": 60,
		"file": map[string]any{"name": name, "display_name": name, "path": prusaLocalDir + "/" + name,
			"display_path": prusaLocalDir + "/" + name, "size": len(p.files[name]), "m_timestamp": time.Now().Unix()},
	})
}

// stop follows web/main.py, job_stop: 404 for another job's id, 409 unless printing
// or paused.
func (p *PrusaLink) stop(w http.ResponseWriter, r *http.Request, idText string) {
	id, err := strconv.Atoi(idText)
	if err != nil {
		prusaError(w, r, http.StatusNotFound, "Not Found", "Resource you want not found.")
		return
	}
	if p.job == nil || p.job.id != id {
		prusaError(w, r, http.StatusNotFound, "Not Current Job", "Given job id does not belong to current job")
		return
	}
	if !p.printing() {
		prusaError(w, r, http.StatusConflict, "Printer Is Not Printing", "Operation you want can only be done when printer is printing.")
		return
	}
	p.cancels++
	p.end("STOPPED", OutcomeCanceled)
	w.WriteHeader(http.StatusNoContent)
}

// upload follows web/files.py, file_upload. A file stored and then refused printing
// (409 "Not in state to print") stays on the printer.
func (p *PrusaLink) upload(w http.ResponseWriter, r *http.Request, storage, name string) {
	if storage == "sdcard" { // web/lib/files.py, check_read_only
		prusaError(w, r, http.StatusConflict, "SD Card Read Only", "SD Card storage is read only.")
		return
	}
	if strings.ContainsAny(name, `\?"%*:|<>`) || name == "" { // web/lib/files.py, forbidden_characters
		prusaError(w, r, http.StatusBadRequest, "Forbidden Characters", "Forbidden characters in file or folder name.")
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "" {
		mt = "application/octet-stream"
	}
	if mt != "application/octet-stream" && mt != "text/x.gcode" {
		prusaError(w, r, http.StatusUnsupportedMediaType, "Unsupported Media Type", "Only G-Code for FDM printer can be uploaded.")
		return
	}
	if r.ContentLength <= 0 {
		prusaError(w, r, http.StatusLengthRequired, "Length Required", "Missing Content-Length header or no content in request.")
		return
	}
	// get_boolean_header: only "?1" is true.
	if _, exists := p.files[name]; exists && r.Header.Get("Overwrite") != "?1" {
		prusaError(w, r, http.StatusConflict, "File Already Exists", "File already exists.")
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil || int64(len(data)) < r.ContentLength {
		prusaError(w, r, http.StatusInternalServerError, "File Upload Failed", "the upload ended early")
		return
	}
	if !isGcode(name) { // the magic check of the uploaded bytes, by name here
		prusaError(w, r, http.StatusUnsupportedMediaType, "Unsupported Media Type", "Only G-Code for FDM printer can be uploaded.")
		return
	}
	p.files[name] = data
	if r.Header.Get("Print-After-Upload") == "?1" {
		if !p.canPrint() {
			prusaError(w, r, http.StatusConflict, "Not in state to print", "Printer is not in state to print.")
			return
		}
		if p.hold {
			p.state, p.held = "BUSY", name
		} else {
			p.begin(name)
		}
	}
	w.WriteHeader(http.StatusCreated)
}

// canPrint follows printer_adapter/command_handlers.py, StartPrint: not while a job is
// in progress, nor in an error or attention state; a finished or stopped printer takes
// the next print (web/main.py, STATES_TO_READY).
func (p *PrusaLink) canPrint() bool {
	switch p.state {
	case "IDLE", "READY", "FINISHED", "STOPPED":
		return true
	}
	return false
}

func (p *PrusaLink) begin(name string) {
	p.lastID++
	p.job = &prusaJob{id: p.lastID, file: name}
	p.state, p.errText = "PRINTING", ""
	p.phys.begin(name)
}

// end closes the job in progress with the printer state state.
func (p *PrusaLink) end(state, outcome string) {
	p.phys.end(outcome)
	p.state = state
	if p.forget {
		p.job = nil
	}
}

// fileInfo follows web/files.py, file_info (404 "File Not Found").
func (p *PrusaLink) fileInfo(w http.ResponseWriter, r *http.Request, storage, name string) {
	data, ok := p.files[name]
	if storage != "local" || !ok {
		prusaError(w, r, http.StatusNotFound, "File Not Found", "File you want was not found.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": path.Base(name), "display_name": path.Base(name),
		"read_only": false, "type": "PRINT_FILE", "size": len(data), "m_timestamp": time.Now().Unix()})
}

// deleteFile follows web/files.py, file_delete and web/lib/files.py, check_job.
func (p *PrusaLink) deleteFile(w http.ResponseWriter, r *http.Request, storage, name string) {
	if storage == "sdcard" {
		prusaError(w, r, http.StatusConflict, "SD Card Read Only", "SD Card storage is read only.")
		return
	}
	if _, ok := p.files[name]; !ok {
		prusaError(w, r, http.StatusNotFound, "File Not Found", "File you want was not found.")
		return
	}
	if p.job != nil && p.job.file == name && p.printing() {
		prusaError(w, r, http.StatusConflict, "File is currently printed", "You try to do an operation with the file, which is currently printed.")
		return
	}
	delete(p.files, name)
	w.WriteHeader(http.StatusNoContent)
}

// --- what happens at the printer, for tests -----------------------------------------

// Advance moves the current print to fraction f (0..1).
func (p *PrusaLink) Advance(f float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.job != nil && p.printing() {
		p.job.progress = 100 * f
	}
}

// Complete ends the current print well: FINISHED, at 100%.
func (p *PrusaLink) Complete() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printing() {
		p.job.progress = 100
		p.end("FINISHED", OutcomeCompleted)
	}
}

// Fail ends the current print with a printer error (ERROR, the reason in
// status_printer.message).
func (p *PrusaLink) Fail(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printing() {
		p.end("ERROR", OutcomeFailed)
	} else {
		p.state = "ERROR"
	}
	p.errText = msg
}

// Shutdown is Fail: PrusaLink reports a firmware halt as ERROR.
func (p *PrusaLink) Shutdown(msg string) { p.Fail(msg) }

// Recover clears an error: the printer is IDLE, the failed job forgotten.
func (p *PrusaLink) Recover() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == "ERROR" {
		p.state, p.errText, p.job = "IDLE", "", nil
	}
}

// Acknowledge is someone confirming the end of a print on the printer's screen: IDLE,
// and the ended job is gone.
func (p *PrusaLink) Acknowledge() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.printing() {
		p.state, p.errText, p.job = "IDLE", "", nil
	}
}

// CancelAtPrinter is a stop from the printer's screen.
func (p *PrusaLink) CancelAtPrinter() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printing() {
		p.end("STOPPED", OutcomeCanceled)
	}
}

// Pause pauses the current print.
func (p *PrusaLink) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == "PRINTING" {
		p.state = "PAUSED"
	}
}

// Restart restarts the printer and PrusaLink: a print in progress is lost, the job is
// forgotten; files and the job id counter stay.
func (p *PrusaLink) Restart() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printing() {
		p.phys.end(OutcomeLost)
	}
	p.state, p.errText, p.job = "IDLE", "", nil
}

// StartOther prints a file of someone else's, started at the printer.
func (p *PrusaLink) StartOther(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files[name] = []byte("G28\n")
	p.begin(name)
}

// SetForgetEndedJobs drops a job as soon as it ends, as PrusaLink's source does,
// instead of keeping it until someone acknowledges the end.
func (p *PrusaLink) SetForgetEndedJobs(v bool) { p.mu.Lock(); p.forget = v; p.mu.Unlock() }

// SetDigestSess makes the challenge ask for MD5-sess instead of MD5 (poorwsgi, under
// PrusaLink, can be set to either; which PrusaLink uses was not checked).
func (p *PrusaLink) SetDigestSess(v bool) { p.mu.Lock(); p.sess = v; p.mu.Unlock() }

// SetHoldStarts makes the print an upload asks for start only when the test calls
// ReleaseStart: the printer BUSY meanwhile, with no job. It models a start that shows
// a moment after the 201 (StartPrint goes through PrusaLink's command queue to the
// printer), not a behaviour read in PrusaLink's source.
func (p *PrusaLink) SetHoldStarts(v bool) { p.mu.Lock(); p.hold = v; p.mu.Unlock() }

// ReleaseStart starts the print an upload asked for.
func (p *PrusaLink) ReleaseStart() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held != "" {
		p.begin(p.held)
		p.held = ""
	}
}

// SetBeforeUpload runs f as each upload arrives, before PrusaLink handles it.
func (p *PrusaLink) SetBeforeUpload(f func()) { p.mu.Lock(); p.before = f; p.mu.Unlock() }

// State is the printer state and the current job's file.
func (p *PrusaLink) State() (state, file string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.job != nil {
		file = p.job.file
	}
	return p.state, file
}

// Uploaded returns the bytes uploaded as name.
func (p *PrusaLink) Uploaded(name string) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.files[name]
	return b, ok
}

// Prints lists every physical print the printer started.
func (p *PrusaLink) Prints() []PrintRecord { p.mu.Lock(); defer p.mu.Unlock(); return p.phys.list() }

// Cancels counts stops through the API that stopped a print.
func (p *PrusaLink) Cancels() int { p.mu.Lock(); defer p.mu.Unlock(); return p.cancels }

// prusaJSON is poorwsgi's JSONResponse(status_code, message=...): {"message": ...}.
func prusaJSON(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

// listCameras follows web/cameras.py, list_cameras: {"camera_list": [...]} (the spec
// says a bare array; the source wraps it).
func (p *PrusaLink) listCameras(w http.ResponseWriter) {
	list := []map[string]any{}
	for _, c := range p.cameras {
		list = append(list, map[string]any{"camera_id": c.id, "config": map[string]any{"name": "Camera " + c.id, "driver": "V4L2",
			"path": "/dev/video0", "resolution": "1280x720"}, "connected": c.connected, "detected": true, "stored": true})
	}
	writeJSON(w, http.StatusOK, map[string]any{"camera_list": list})
}

// photo follows web/cameras.py, photo_by_camera_id: 404 for a camera not connected, 204
// before its first still, else the last still as image/jpeg.
func (p *PrusaLink) photo(w http.ResponseWriter, c *prusaCamera) {
	switch {
	case c == nil || !c.connected:
		prusaJSON(w, http.StatusNotFound, "Camera is not available")
	case c.last == nil:
		prusaJSON(w, http.StatusNoContent, "Camera did not take a photo yet.")
	default:
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(c.last)
	}
}

func (p *PrusaLink) camera(id string) *prusaCamera {
	for _, c := range p.cameras {
		if c.id == id {
			return c
		}
	}
	return nil
}

// defaultSnap follows default_camera_snap: the first camera in order.
func (p *PrusaLink) defaultSnap(w http.ResponseWriter) {
	if len(p.cameras) == 0 {
		prusaJSON(w, http.StatusNotFound, "Camera is not available")
		return
	}
	p.photo(w, p.cameras[0])
}

// cameraSnap follows get_photo_by_camera_id (GET) and take_photo_by_camera_id (POST:
// a fresh still; 409 when the camera cannot take one now).
func (p *PrusaLink) cameraSnap(w http.ResponseWriter, r *http.Request, id string) {
	c := p.camera(id)
	switch {
	case r.Method == "GET":
		p.photo(w, c)
	case r.Method != "POST":
		prusaError(w, r, http.StatusMethodNotAllowed, "Method Not Allowed", "not modelled by this test server")
	case c == nil || !c.connected:
		prusaJSON(w, http.StatusNotFound, "Camera with id: "+id+" is not available")
	case c.noOnDemand:
		prusaJSON(w, http.StatusConflict, "Camera with id: "+id+" cannot take the picture: not supported")
	default:
		c.last = c.fresh
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(c.fresh)
	}
}

// AddCamera connects a camera whose fresh stills are fresh; last is its last still
// (nil: none yet). onDemand false makes it refuse to take one when asked (409).
func (p *PrusaLink) AddCamera(id string, fresh, last []byte, onDemand bool) {
	p.mu.Lock()
	p.cameras = append(p.cameras, &prusaCamera{id: id, connected: true, fresh: fresh, last: last, noOnDemand: !onDemand})
	p.mu.Unlock()
}
