package protocoltest

import (
	"net/http"
	"net/http/httptest"
	"sync"
)

// Webcam stands in for the webcam servers printers' front ends point at, which
// Moonraker and OctoPrint only know the URLs of: mjpg-streamer answers
// /?action=snapshot with one JPEG (plugins/output_http/httpd.c, send_snapshot);
// crowsnest puts it behind the front end's web server at /webcam/?action=snapshot;
// ustreamer serves /snapshot. A test sets what it answers: a still of a type, an
// error status, or nothing until the request gives up (Hang).
type Webcam struct {
	*httptest.Server

	mu     sync.Mutex
	still  []byte
	ctype  string
	status int
	hang   bool
	snaps  int
}

// NewWebcam starts a webcam whose stills are still, of type ctype; close it with Close.
func NewWebcam(still []byte, ctype string) *Webcam {
	w := &Webcam{still: still, ctype: ctype, status: http.StatusOK}
	w.Server = httptest.NewServer(http.HandlerFunc(w.serve))
	return w
}

// SnapshotURL is the still's URL as crowsnest configures it, on this server.
func (w *Webcam) SnapshotURL() string { return w.URL + "/webcam/?action=snapshot" }

func (w *Webcam) serve(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	still, ctype, status, hang := w.still, w.ctype, w.status, w.hang
	w.snaps++
	w.mu.Unlock()
	if r.URL.Query().Get("action") != "snapshot" && r.URL.Path != "/snapshot" {
		http.NotFound(rw, r)
		return
	}
	if hang {
		<-r.Context().Done() // a camera that never answers
		return
	}
	if status != http.StatusOK {
		http.Error(rw, http.StatusText(status), status)
		return
	}
	rw.Header().Set("Content-Type", ctype)
	rw.Write(still)
}

// Set changes the still and its type.
func (w *Webcam) Set(still []byte, ctype string) {
	w.mu.Lock()
	w.still, w.ctype, w.status, w.hang = still, ctype, http.StatusOK, false
	w.mu.Unlock()
}

// Fail makes the webcam answer status (a camera unplugged: mjpg-streamer's 500).
func (w *Webcam) Fail(status int) { w.mu.Lock(); w.status = status; w.mu.Unlock() }

// Hang makes the webcam answer nothing until the request gives up.
func (w *Webcam) Hang() { w.mu.Lock(); w.hang = true; w.mu.Unlock() }

// Snaps counts the requests it had.
func (w *Webcam) Snaps() int { w.mu.Lock(); defer w.mu.Unlock(); return w.snaps }
