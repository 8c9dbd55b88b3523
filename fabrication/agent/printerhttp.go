package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// printerAPI is the HTTP plumbing OctoPrint, Moonraker and PrusaLink share: a base
// URL, an X-Api-Key header (all three use that name) or HTTP digest authentication,
// JSON answers and streamed uploads.
type printerAPI struct {
	name   string // "octoprint", "moonraker" or "prusalink", for messages
	base   string
	apiKey string
	digest *digestAuth // nil unless the printer is reached with a user and password
	http   *http.Client
	// refusedKey tells, from a non-2xx answer, whether the printer refused the key:
	// each server says so its own way.
	refusedKey func(status int, msg string) bool
}

func newPrinterAPI(name, base, apiKey string, refusedKey func(status int, msg string) bool) (printerAPI, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return printerAPI{}, fmt.Errorf("%s: %q is not an http(s) URL", name, base)
	}
	return printerAPI{name: name, base: strings.TrimRight(base, "/"), apiKey: apiKey, refusedKey: refusedKey,
		http: &http.Client{Timeout: 10 * time.Minute}}, nil
}

// printerError is a non-2xx answer from a printer.
type printerError struct {
	printer    string
	status     int
	msg        string
	refusedKey bool
	byPassword bool // the agent authenticated with a user and password, not a key
}

func (e *printerError) Error() string {
	switch {
	case e.refusedKey && e.byPassword:
		return fmt.Sprintf("%s refused the user and password (it answered %d: %s): check --printer-user and --printer-password", e.printer, e.status, e.msg)
	case e.refusedKey:
		return fmt.Sprintf("%s refused the API key (it answered %d: %s): check --api-key", e.printer, e.status, e.msg)
	}
	return fmt.Sprintf("%s answered %d: %s", e.printer, e.status, e.msg)
}

func (e *printerError) Unwrap() error {
	if e.refusedKey {
		return ErrPrinterAuth
	}
	return nil
}

func statusOf(err error) int {
	var pe *printerError
	if errors.As(err, &pe) {
		return pe.status
	}
	return 0
}

// call sends a request; body, when not nil, is sent as JSON. A 2xx answer with a body is
// decoded into out when out is not nil.
func (p printerAPI) call(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return p.send(req, out)
}

func (p printerAPI) send(req *http.Request, out any) error {
	if p.apiKey != "" {
		req.Header.Set("X-Api-Key", p.apiKey)
	}
	resp, err := p.do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := errorMessage(b)
		return &printerError{printer: p.name, status: resp.StatusCode, msg: msg,
			refusedKey: p.refusedKey(resp.StatusCode, msg), byPassword: p.digest != nil}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s: unreadable answer: %w", p.name, err)
	}
	return nil
}

// errorMessage pulls a message out of each project's error bodies
// ({"error":"..."} from OctoPrint, {"error":{"code","message"}} from Moonraker) or
// returns the text itself, on one line and short (an error page can be HTML).
func errorMessage(b []byte) string {
	var shape struct {
		Error json.RawMessage `json:"error"`
	}
	// PrusaLink's JSON errors: {"title", "message"} (conditions.py, LinkError).
	var link struct {
		Title   string `json:"title"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &link) == nil && link.Title != "" {
		return oneLine(link.Title+": "+link.Message, 200)
	}
	if json.Unmarshal(b, &shape) == nil && len(shape.Error) > 0 {
		var s string
		if json.Unmarshal(shape.Error, &s) == nil {
			return s
		}
		var m struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(shape.Error, &m) == nil && m.Message != "" {
			return m.Message
		}
	}
	s := oneLine(string(b), 200)
	if s == "" {
		return "(no message)"
	}
	return s
}

// upload sends file as the multipart field "file" named name, with fields before it.
// The body streams from the file but its length is known up front and sent as
// Content-Length: OctoPrint refuses a chunked upload with 411
// (src/octoprint/server/util/tornado.py, UploadStorageFallbackHandler.prepare).
func (p printerAPI) upload(ctx context.Context, path, file, name string, fields [][2]string, out any) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, kv := range fields {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if _, err := mw.CreateFormFile("file", name); err != nil {
		return err
	}
	head := bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil { // the closing boundary, written into buf
		return err
	}
	tail := buf.Bytes()
	body := io.MultiReader(bytes.NewReader(head), io.LimitReader(f, fi.Size()), bytes.NewReader(tail))
	req, err := http.NewRequestWithContext(ctx, "POST", p.base+path, body)
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(head)) + fi.Size() + int64(len(tail))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return p.send(req, out)
}

// printerFileName is the name a print's G-code gets on a printer: the job and attempt
// make it unique and let a restarted agent find the print in the printer's records.
func printerFileName(p Print) string {
	return "fab-" + p.Key() + ".gcode"
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// needGcode refuses a mesh: printers behind OctoPrint and Moonraker print G-code, so
// an STL needs the agent's slicer first.
func needGcode(printer, file string) error {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".gcode", ".gco", ".g":
		return nil
	}
	return fmt.Errorf("%s prints G-code and this job's file is %s: configure a slicer (--slicer cura)", printer, filepath.Base(file))
}
