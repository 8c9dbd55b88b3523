package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// Snapshot is one still from a camera.
type Snapshot struct {
	Data        []byte
	ContentType string // image/jpeg, image/png or image/gif
}

// Camera takes stills of a printer's bed.
type Camera interface {
	// Snapshot ends one of three ways: a still; ErrNoCamera (none is configured, so
	// there is nothing to look at); or another error (the camera is away, slow, or
	// sent what is not an image of a size the hub takes).
	Snapshot(ctx context.Context) (Snapshot, error)
}

// ErrNoCamera: the printer has no camera configured.
var ErrNoCamera = errors.New("no camera is configured")

// Bounds on a snapshot: the hub's limit on photos, and how long a camera may take.
const (
	maxSnapshotBytes = agentapi.MaxPhotoBytes
	snapshotTimeout  = 15 * time.Second
)

// URLCamera is a camera whose stills are at a URL the operator set (--camera-url):
// mjpg-streamer's /?action=snapshot, ustreamer's /snapshot, an IP camera's still URL.
// The agent sends it no printer key: it is not the printer's API.
type URLCamera struct {
	URL  string
	HTTP *http.Client // nil: one with snapshotTimeout
}

// NewURLCamera checks that raw is an http(s) URL.
func NewURLCamera(raw string) (*URLCamera, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("camera: %q is not an http(s) URL", raw)
	}
	return &URLCamera{URL: raw}, nil
}

func (c *URLCamera) Snapshot(ctx context.Context) (Snapshot, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: snapshotTimeout}
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.URL, nil)
	if err != nil {
		return Snapshot{}, err
	}
	return fetchSnapshot(hc.Do, req)
}

// fetchSnapshot sends req with do and reads the answer as one still: a 2xx with an
// image body of at most maxSnapshotBytes. The type is the one the camera declares
// when it is an image type, else what the bytes look like (some webcam servers say
// nothing, or application/octet-stream); the hub decodes it either way.
func fetchSnapshot(do func(*http.Request) (*http.Response, error), req *http.Request) (Snapshot, error) {
	resp, err := do(req)
	if err != nil {
		return Snapshot{}, fmt.Errorf("camera: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return Snapshot{}, errors.New("camera: it has no still yet (204)")
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return Snapshot{}, fmt.Errorf("camera: %s answered %d: %s", req.URL.Redacted(), resp.StatusCode, errorMessage(b))
	}
	if resp.ContentLength > maxSnapshotBytes {
		return Snapshot{}, fmt.Errorf("camera: a still of %d bytes is over the hub's %d", resp.ContentLength, maxSnapshotBytes)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSnapshotBytes+1))
	if err != nil {
		return Snapshot{}, fmt.Errorf("camera: %w", err)
	}
	if len(data) > maxSnapshotBytes {
		return Snapshot{}, fmt.Errorf("camera: the still is over the hub's %d bytes", maxSnapshotBytes)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if !stillType(ct) {
		ct, _, _ = mime.ParseMediaType(http.DetectContentType(data))
	}
	if !stillType(ct) {
		// A multipart/x-mixed-replace stream URL given for a still, an HTML page.
		return Snapshot{}, fmt.Errorf("camera: %s did not answer with a JPEG, PNG or GIF image (%s)", req.URL.Redacted(), ct)
	}
	return Snapshot{Data: data, ContentType: ct}, nil
}

func stillType(ct string) bool {
	return ct == "image/jpeg" || ct == "image/png" || ct == "image/gif"
}

// onPrinterHost resolves a camera URL a printer's server gave, as the printer's own
// front ends do: a URL without a host is on the printer's host, and a loopback host
// (mjpg-streamer's usual http://127.0.0.1:8080/?action=snapshot) means the printer's
// machine, not the agent's. base is the printer URL the agent was given; defaultPort
// says whether a URL without a host keeps base's port (OctoPrint serves its own
// paths) or takes the scheme's (Moonraker's webcam paths are on the web server in
// front of it, webcam.py's default host, not on Moonraker's port).
func onPrinterHost(base, raw string, keepPort bool) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || raw == "" {
		return "", fmt.Errorf("camera: %q is not a URL", raw)
	}
	if u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("camera: %q is not an http(s) URL", raw)
	}
	if u.Host == "" {
		host := b.Host
		if !keepPort {
			host = b.Hostname()
			if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
		}
		r := &url.URL{Scheme: b.Scheme, Host: host}
		if !keepPort {
			r.Scheme = "http" // webcam.py: the default host is http://<address>
		}
		u = r.ResolveReference(&url.URL{Path: "/" + strings.TrimLeft(u.Path, "/"), RawQuery: u.RawQuery})
	} else if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
		host := b.Hostname()
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		if p := u.Port(); p != "" {
			host = net.JoinHostPort(b.Hostname(), p)
		}
		u.Host = host
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("camera: %q is not an http(s) URL", raw)
	}
	return u.String(), nil
}

// ---- the printers' own cameras ----------------------------------------------------

// Snapshot takes a still from the webcam OctoPrint is configured with: GET
// /api/settings, webcam.snapshotUrl (server/api/settings.py, getSettings; the
// settings need the SETTINGS_READ permission), or, from OctoPrint 1.9, the classic
// webcam plugin's plugins.classicwebcam.snapshot. webcam.webcamEnabled false, or no
// snapshot URL, is ErrNoCamera. The still comes from the webcam server, without the
// API key.
func (o *OctoPrint) Snapshot(ctx context.Context) (Snapshot, error) {
	var s struct {
		Webcam struct {
			Enabled     *bool  `json:"webcamEnabled"`
			SnapshotURL string `json:"snapshotUrl"`
		} `json:"webcam"`
		Plugins struct {
			Classic struct {
				Snapshot string `json:"snapshot"`
			} `json:"classicwebcam"`
		} `json:"plugins"`
	}
	if err := o.api.call(ctx, "GET", "/api/settings", nil, &s); err != nil {
		return Snapshot{}, err
	}
	snap := s.Webcam.SnapshotURL
	if snap == "" {
		snap = s.Plugins.Classic.Snapshot
	}
	if (s.Webcam.Enabled != nil && !*s.Webcam.Enabled) || snap == "" {
		return Snapshot{}, fmt.Errorf("octoprint: %w (Settings > Webcam & Timelapse)", ErrNoCamera)
	}
	u, err := onPrinterHost(o.api.base, snap, true)
	if err != nil {
		return Snapshot{}, err
	}
	return (&URLCamera{URL: u, HTTP: &http.Client{Timeout: snapshotTimeout}}).Snapshot(ctx)
}

// Snapshot takes a still from the first webcam Moonraker lists with a snapshot URL:
// GET /server/webcams/list (components/webcam.py, _handle_webcam_list). Moonraker
// only keeps the webcams' settings; crowsnest or mjpg-streamer serves the stills, at
// a URL that is often relative ("/webcam/?action=snapshot": on the printer's web
// server). A webcam with enabled: false (later versions) is passed over.
func (m *Moonraker) Snapshot(ctx context.Context) (Snapshot, error) {
	var list moonResult[struct {
		Webcams []struct {
			Name        string `json:"name"`
			SnapshotURL string `json:"snapshot_url"`
			Enabled     *bool  `json:"enabled"`
		} `json:"webcams"`
	}]
	if err := m.api.call(ctx, "GET", "/server/webcams/list", nil, &list); err != nil {
		if statusOf(err) == http.StatusNotFound { // a Moonraker without the webcam component
			return Snapshot{}, fmt.Errorf("moonraker: %w", ErrNoCamera)
		}
		return Snapshot{}, err
	}
	for _, w := range list.Result.Webcams {
		if w.SnapshotURL == "" || (w.Enabled != nil && !*w.Enabled) {
			continue
		}
		u, err := onPrinterHost(m.api.base, w.SnapshotURL, false)
		if err != nil {
			return Snapshot{}, fmt.Errorf("moonraker webcam %s: %w", w.Name, err)
		}
		return (&URLCamera{URL: u, HTTP: &http.Client{Timeout: snapshotTimeout}}).Snapshot(ctx)
	}
	return Snapshot{}, fmt.Errorf("moonraker: %w ([webcam] sections, or the front end's webcam settings)", ErrNoCamera)
}

// Snapshot takes a fresh still with the first connected camera PrusaLink lists: GET
// /api/v1/cameras, then POST /api/v1/cameras/{id}/snap (web/cameras.py,
// take_photo_by_camera_id). A camera that cannot take one on demand (409, 408) gives
// its last still: GET /api/v1/cameras/{id}/snap (204 when it has none yet). The
// spec says the list is an array; PrusaLink's source answers {"camera_list": [...]}:
// both are read.
func (p *PrusaLink) Snapshot(ctx context.Context) (Snapshot, error) {
	type camera struct {
		ID        string `json:"camera_id"`
		Connected bool   `json:"connected"`
	}
	var raw json.RawMessage
	if err := p.api.call(ctx, "GET", "/api/v1/cameras", nil, &raw); err != nil {
		return Snapshot{}, err
	}
	var cams []camera
	if json.Unmarshal(raw, &cams) != nil {
		var wrapped struct {
			List []camera `json:"camera_list"`
		}
		if err := json.Unmarshal(raw, &wrapped); err != nil {
			return Snapshot{}, fmt.Errorf("prusalink: unreadable camera list: %w", err)
		}
		cams = wrapped.List
	}
	for _, c := range cams {
		if !c.Connected || c.ID == "" {
			continue
		}
		path := "/api/v1/cameras/" + url.PathEscape(c.ID) + "/snap"
		snap, err := p.snap(ctx, "POST", path)
		if err == nil {
			return snap, nil
		}
		if s := statusOf(err); s != http.StatusConflict && s != http.StatusRequestTimeout {
			return Snapshot{}, err
		}
		return p.snap(ctx, "GET", path)
	}
	return Snapshot{}, fmt.Errorf("prusalink: %w (Settings > Cameras)", ErrNoCamera)
}

func (p *PrusaLink) snap(ctx context.Context, method, path string) (Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.api.base+path, nil)
	if err != nil {
		return Snapshot{}, err
	}
	if p.api.apiKey != "" {
		req.Header.Set("X-Api-Key", p.api.apiKey)
	}
	req.Header.Set("Accept", "image/*, application/json")
	resp, err := p.api.do(req)
	if err != nil {
		return Snapshot{}, fmt.Errorf("prusalink: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := errorMessage(b)
		return Snapshot{}, &printerError{printer: "prusalink", status: resp.StatusCode, msg: msg,
			refusedKey: p.api.refusedKey(resp.StatusCode, msg), byPassword: p.api.digest != nil}
	}
	return fetchSnapshot(func(*http.Request) (*http.Response, error) { return resp, nil }, req)
}
