package agent

import (
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

// ErrPrinterAuth means the printer refused the API key.
var ErrPrinterAuth = errors.New("the printer refused the API key")

// printerAPI is the HTTP plumbing OctoPrint and Moonraker share: a base URL, an
// X-Api-Key header (both projects use that name), JSON answers and streamed multipart
// uploads.
type printerAPI struct {
	name   string // "octoprint" or "moonraker", for messages
	base   string
	apiKey string
	http   *http.Client
}

func newPrinterAPI(name, base, apiKey string) (printerAPI, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return printerAPI{}, fmt.Errorf("%s: %q is not an http(s) URL", name, base)
	}
	return printerAPI{name: name, base: strings.TrimRight(base, "/"), apiKey: apiKey, http: &http.Client{Timeout: 10 * time.Minute}}, nil
}

// printerError is a non-2xx answer from a printer.
type printerError struct {
	printer string
	status  int
	msg     string
}

func (e *printerError) Error() string {
	return fmt.Sprintf("%s answered %d: %s", e.printer, e.status, e.msg)
}

func (e *printerError) Unwrap() error {
	if e.status == http.StatusUnauthorized || e.status == http.StatusForbidden {
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
	resp, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &printerError{printer: p.name, status: resp.StatusCode, msg: errorMessage(b)}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s: unreadable answer: %w", p.name, err)
	}
	return nil
}

// errorMessage pulls a message out of either project's error bodies
// ({"error":"..."} from OctoPrint, {"error":{"code","message"}} from Moonraker) or
// returns the text itself.
func errorMessage(b []byte) string {
	var shape struct {
		Error json.RawMessage `json:"error"`
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
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(no message)"
	}
	return s
}

// upload streams file as the multipart field "file" named name, with fields before it.
func (p printerAPI) upload(ctx context.Context, path, file, name string, fields [][2]string, out any) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			for _, kv := range fields {
				if err := mw.WriteField(kv[0], kv[1]); err != nil {
					return err
				}
			}
			part, err := mw.CreateFormFile("file", name)
			if err != nil {
				return err
			}
			if _, err := io.Copy(part, f); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, "POST", p.base+path, pr)
	if err != nil {
		pr.Close()
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	err = p.send(req, out)
	pr.Close()
	return err
}

// printerFileName is the name a job's G-code gets on a printer: the job id makes it
// unique and lets a restarted agent find the job in the printer's own records.
func printerFileName(jobID string) string {
	return "fab-" + jobID + ".gcode"
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
