// Package agent is the printer-side runtime: it enrols with a hub, pulls jobs, checks
// their files, drives a printer through a Driver, reports back, and keeps a journal so
// a restart resumes or reconciles a job instead of printing it twice. It imports only
// the wire contract (fabrication/agentapi), so the fabagent binary stays small.
package agent

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// Errors the hub's answers map to.
var (
	ErrStale        = errors.New("the hub says the lease is stale")
	ErrUnauthorized = errors.New("the hub does not accept this machine token (revoked or replaced?): enrol again")
	ErrProtocol     = fmt.Errorf("the hub speaks another version of the agent protocol than this agent (%d): upgrade fabagent", agentapi.Protocol)
	ErrRefused      = errors.New("the hub refused the request")
)

var _ agentapi.Hub = (*Client)(nil)

// Client is the one wrapper around the agent API. Calls that can be repeated safely
// are retried with exponential backoff and jitter on network errors, 429 and 5xx.
type Client struct {
	Hub   string
	Token string
	HTTP  *http.Client
	// Protocol is the version polls announce (0: agentapi.Protocol); tests set others.
	Protocol int
	// Backoff bounds: first wait and the longest.
	MinBackoff, MaxBackoff time.Duration
}

// NewClient returns a client for hub with a token (empty before enrolment).
func NewClient(hub, token string) *Client {
	return &Client{Hub: strings.TrimRight(hub, "/"), Token: token, HTTP: &http.Client{Timeout: 90 * time.Second},
		MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}
}

// HubError is a non-2xx answer from the hub: its status and the code and message of its
// error body. It unwraps to what the agent does about it: ErrStale, ErrUnauthorized,
// ErrProtocol or ErrRefused.
type HubError struct {
	Status  int
	Code    string
	Message string
}

func (e *HubError) Error() string { return fmt.Sprintf("hub answered %d: %s", e.Status, e.Message) }

func (e *HubError) Unwrap() error {
	switch {
	case e.Code == agentapi.CodeStaleLease || e.Status == http.StatusConflict:
		return ErrStale
	case e.Code == agentapi.CodeUnauthenticated || e.Status == http.StatusUnauthorized:
		return ErrUnauthorized
	case e.Code == agentapi.CodeUnsupportedProtocol || e.Status == http.StatusUpgradeRequired:
		return ErrProtocol
	}
	return ErrRefused
}

func hubErrorFrom(resp *http.Response) *HubError {
	var e agentapi.Error
	json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
	return &HubError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
}

// retryable: network failures, 429 and 5xx. Not a refusal such as a file whose hash is
// wrong: fetching it again would loop forever.
func retryable(err error) bool {
	var he *HubError
	if errors.As(err, &he) {
		return he.Status == http.StatusTooManyRequests || he.Status >= 500
	}
	return err != nil && !errors.Is(err, ErrRefused) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// do sends one request and decodes a 2xx JSON answer into out (204: out untouched,
// returns false).
func (c *Client) do(ctx context.Context, method, path string, body, out any, header map[string]string) (bool, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return false, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Hub+path, r)
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return false, nil
	}
	if resp.StatusCode/100 != 2 {
		return false, hubErrorFrom(resp)
	}
	if out != nil {
		return true, json.NewDecoder(resp.Body).Decode(out)
	}
	return true, nil
}

// retry repeats call while it fails in a way worth repeating, until ctx ends.
func (c *Client) retry(ctx context.Context, call func() error) error {
	wait := c.MinBackoff
	for {
		err := call()
		if !retryable(err) {
			return err
		}
		sleep := wait/2 + rand.N(wait/2+1) // jitter: agents that lost the hub together do not return together
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(sleep):
		}
		wait = min(wait*2, c.MaxBackoff)
	}
}

// Enroll exchanges a one-time code for a machine token (not retried: a code is single use).
func (c *Client) Enroll(ctx context.Context, code string) (agentapi.Enrollment, error) {
	var e agentapi.Enrollment
	_, err := c.do(ctx, "POST", agentapi.PathEnroll, agentapi.EnrollRequest{Code: code}, &e, nil)
	return e, err
}

// Register creates this machine in a lab with the lab's join token (not retried: a
// repeat would create a second machine).
func (c *Client) Register(ctx context.Context, req agentapi.RegisterRequest) (agentapi.Enrollment, error) {
	var e agentapi.Enrollment
	_, err := c.do(ctx, "POST", agentapi.PathRegister, req, &e, nil)
	return e, err
}

// Ping checks that the hub answers (GET /healthz), without retrying.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.do(ctx, "GET", "/healthz", nil, nil, nil)
	return err
}

// Poll asks for work; nil means none came before the hub's wait ended.
func (c *Client) Poll(ctx context.Context, req agentapi.PollRequest) (*agentapi.PollResponse, error) {
	req.Protocol = cmp.Or(c.Protocol, agentapi.Protocol)
	req.Jobs = slices.Clone(req.Jobs)
	for i := range req.Jobs {
		req.Jobs[i].Message = agentapi.ClipMessage(req.Jobs[i].Message) // a printer's words can be any length
	}
	var resp agentapi.PollResponse
	var got bool
	err := c.retry(ctx, func() (err error) {
		got, err = c.do(ctx, "POST", agentapi.PathPoll, req, &resp, nil)
		return err
	})
	if err != nil || !got {
		return nil, err
	}
	if err := resp.Check(); err != nil {
		// Not retried: the same hub would answer the same. A job it claimed for this
		// machine goes back to its queue when the lease runs out.
		return nil, fmt.Errorf("%w: the hub's answer to a poll breaks the contract: %w", ErrRefused, err)
	}
	return &resp, nil
}

// Event reports on a held job. Reports are idempotent on the hub (a repeated progress
// or a repeated finish changes nothing), so they are retried.
func (c *Client) Event(ctx context.Context, id string, req agentapi.EventRequest) (agentapi.EventResponse, error) {
	req.Message = agentapi.ClipMessage(req.Message) // a printer's words can be any length
	var resp agentapi.EventResponse
	err := c.retry(ctx, func() error {
		_, err := c.do(ctx, "POST", agentapi.JobPath(agentapi.PathJobEvents, id), req, &resp, nil)
		return err
	})
	return resp, err
}

// Photo sends a snapshot of a held job's finished print. The hub keeps one camera
// photo per job, so a repeat does no harm and the call is retried like a report; ctx
// bounds how long it may take (the runtime gives it little: a photo never holds up
// the report of the print).
func (c *Client) Photo(ctx context.Context, id, lease, contentType string, image []byte) (agentapi.PhotoResponse, error) {
	var resp agentapi.PhotoResponse
	if len(image) > agentapi.MaxPhotoBytes {
		return resp, fmt.Errorf("%w: the photo is %d bytes, over the hub's %d", ErrRefused, len(image), agentapi.MaxPhotoBytes)
	}
	err := c.retry(ctx, func() error {
		req, err := http.NewRequestWithContext(ctx, "POST", c.Hub+agentapi.JobPath(agentapi.PathJobPhoto, id), bytes.NewReader(image))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		req.Header.Set(agentapi.HeaderLease, lease)
		r, err := c.HTTP.Do(req)
		if err != nil {
			return err
		}
		defer r.Body.Close()
		if r.StatusCode/100 != 2 {
			return hubErrorFrom(r)
		}
		return json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&resp)
	})
	return resp, err
}

// downloadStalls bounds the attempts in a row that bring no new byte: a hub that answers
// nothing useful that many times (with backoff between) makes Download give up, and the
// runtime tries the job again later. Attempts that make progress reset the count, so a
// link that drops every few megabytes still finishes a large file.
const downloadStalls = 6

// Download fetches a job's file into dst and checks its SHA-256 before anything can
// reach a printer; a mismatch leaves no file behind. progress, when not nil, hears
// bytes received so far.
//
// A cut connection does not start the file over: the bytes so far stay in dst+".part"
// and the next attempt asks for the rest (Range: bytes=N-) with If-Range set to the
// job's hash, the hub's ETag for the file, so a hub whose file is another answers with
// all of it and the part is written again from the start. It ends one of three ways:
// nil (dst holds the file the job names); an error of kind ErrRefused, ErrStale or
// ErrUnauthorized (the hub refused, or the bytes do not hash to wantSHA even when
// fetched whole: fetching again would not help); or another error after downloadStalls
// attempts in a row that brought nothing, or when ctx ends (the part stays for the
// next try).
//
// fileURL must be a path on the hub: the agent sends its token to no other place.
func (c *Client) Download(ctx context.Context, fileURL, lease, wantSHA string, dst string, progress func(done, total int64)) error {
	if !agentapi.HubPath(fileURL) {
		return fmt.Errorf("%w: the file URL %q is not a path on the hub", ErrRefused, fileURL)
	}
	d := &download{c: c, url: c.Hub + fileURL, lease: lease, want: wantSHA, part: dst + ".part", progress: progress}
	if fi, err := os.Stat(d.part); err == nil {
		// A part an earlier Download left (the agent stopped mid-file) is resumed too.
		d.have, d.resumed = fi.Size(), fi.Size() > 0
	}
	wait, stalls := c.MinBackoff, 0
	for {
		before := d.have
		err := d.attempt(ctx)
		if err == nil {
			return os.Rename(d.part, dst)
		}
		if errors.Is(err, errWrongBytes) {
			os.Remove(d.part)
			if !d.resumed || d.refetched {
				return fmt.Errorf("%w: %w", ErrRefused, err)
			}
			// The part was stitched from several answers; fetch the file once more
			// whole before saying the hub's file is wrong.
			d.have, d.resumed, d.refetched = 0, false, true
			continue
		}
		if !retryable(err) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				os.Remove(d.part)
			}
			return err
		}
		if d.have > before {
			wait, stalls = c.MinBackoff, 0
		} else if stalls++; stalls >= downloadStalls {
			// %v, not %w: a 5xx unwraps to ErrRefused, which would fail the job; this
			// is a "not now", and the runtime tries again.
			return fmt.Errorf("download %s: %d attempts in a row brought nothing (the last: %v)", fileURL, stalls, err)
		}
		sleep := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err) // %v: as above
		case <-time.After(sleep):
		}
		wait = min(wait*2, c.MaxBackoff)
	}
}

// errWrongBytes: the file fetched does not hash to what the job names.
var errWrongBytes = errors.New("the file's sha256 is not the one the job names")

// download is one file being fetched, possibly over several requests.
type download struct {
	c                *Client
	url, lease, want string
	part             string
	progress         func(done, total int64)
	have             int64 // bytes in part so far
	resumed          bool  // part holds bytes from more than one answer (or an earlier run)
	refetched        bool  // a stitched part hashed wrong and the file was asked for whole again
}

// attempt sends one request, for the whole file or for what part lacks, and appends
// the answer to part. It returns nil once part is complete and hashes to want.
func (d *download) attempt(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, "GET", d.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.c.Token)
	req.Header.Set(agentapi.HeaderLease, d.lease)
	if d.have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", d.have))
		req.Header.Set("If-Range", `"`+d.want+`"`)
	}
	resp, err := d.c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var total int64
	switch resp.StatusCode {
	case http.StatusOK: // the whole file: a first request, or the hub's file is not the one the part came from
		d.have, d.resumed, total = 0, false, resp.ContentLength
	case http.StatusPartialContent:
		start, size, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != d.have {
			// Not the bytes asked for: start over rather than stitch a wrong file.
			d.have, d.resumed = 0, false
			return fmt.Errorf("the hub answered a range request with Content-Range %q, want bytes from %d", resp.Header.Get("Content-Range"), d.have)
		}
		d.resumed, total = true, size
	case http.StatusRequestedRangeNotSatisfiable:
		// The part is as long as the file, or longer: check it as it is (a wrong one
		// is fetched once more whole).
		d.resumed = true
		return d.check(0)
	default:
		return hubErrorFrom(resp)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if d.have > 0 {
		flags = os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(d.part, flags, 0o600)
	if err != nil {
		return err
	}
	var r io.Reader = resp.Body
	if d.progress != nil {
		r = &countingReader{r: r, done: d.have, total: total, report: d.progress}
	}
	n, err := io.Copy(f, r)
	d.have += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return d.check(total)
}

// check hashes part when it is complete (total, when known, is the file's size) and
// says whether it is the file the job names.
func (d *download) check(total int64) error {
	if total > 0 && d.have < total {
		return io.ErrUnexpectedEOF
	}
	f, err := os.Open(d.part)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.want {
		return fmt.Errorf("%w: got %s, the job says %s", errWrongBytes, got, d.want)
	}
	return nil
}

// contentRange reads "bytes START-END/SIZE".
func contentRange(v string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, false
	}
	span, sizeText, found := strings.Cut(rest, "/")
	startText, _, found2 := strings.Cut(span, "-")
	if !found || !found2 {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(startText, 10, 64)
	size, err2 := strconv.ParseInt(sizeText, 10, 64)
	return start, size, err1 == nil && err2 == nil
}

type countingReader struct {
	r      io.Reader
	done   int64
	total  int64
	report func(done, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.done += int64(n)
	c.report(c.done, c.total)
	return n, err
}
