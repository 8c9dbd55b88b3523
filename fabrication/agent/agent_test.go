package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

func fastClient(url string) *Client {
	c := NewClient(url, "fab_m_test")
	c.MinBackoff, c.MaxBackoff = time.Millisecond, 5*time.Millisecond
	return c
}

func TestClientRetriesOnlyWhatIsWorthRetrying(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer fab_m_test" {
			t.Errorf("got Authorization %q", r.Header.Get("Authorization"))
		}
		switch r.URL.Path {
		case "/api/v1/agent/poll":
			if calls.Add(1) < 3 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte(`{"job":{"id":"j1","attempt":1,"version":1,"file":"a.stl","sha256":"` + strings.Repeat("ab", 32) + `","size":1},"lease":"l1","file_url":"/api/v1/agent/jobs/j1/file","heartbeat_s":20}`))
		case "/api/v1/agent/jobs/stale/events":
			calls.Add(1)
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"error":{"code":"stale_lease","message":"drop it"}}`))
		case "/api/v1/agent/jobs/revoked/events":
			w.WriteHeader(http.StatusUnauthorized)
		case "/api/v1/agent/jobs/idle/events":
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	c := fastClient(srv.URL)
	ctx := context.Background()
	resp, err := c.Poll(ctx, agentapi.PollRequest{})
	if err != nil || resp == nil || resp.Job.ID != "j1" || calls.Load() != 3 {
		t.Fatalf("poll through two 503s: got %+v, %v after %d calls", resp, err, calls.Load())
	}
	calls.Store(0)
	if _, err := c.Event(ctx, "stale", agentapi.EventRequest{}); !errors.Is(err, ErrStale) || calls.Load() != 1 {
		t.Fatalf("409: got %v after %d calls, want ErrStale after 1", err, calls.Load())
	}
	if _, err := c.Event(ctx, "revoked", agentapi.EventRequest{}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("401: got %v, want ErrUnauthorized", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := NewClient("http://127.0.0.1:1", "x").Poll(ctx, agentapi.PollRequest{}); err == nil {
		t.Fatal("a canceled context: got nil error")
	}
}

func TestDownloadChecksTheHash(t *testing.T) {
	t.Parallel()
	data := []byte("solid part\nendsolid part\n")
	sum := sha256.Sum256(data)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Fab-Lease") != "lease-1" {
			w.WriteHeader(http.StatusConflict)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	c := fastClient(srv.URL)
	dir := t.TempDir()
	dst := filepath.Join(dir, "part.stl")
	var seen int64
	if err := c.Download(context.Background(), "/f", "lease-1", hex.EncodeToString(sum[:]), dst, func(done, _ int64) { seen = done }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != string(data) || seen != int64(len(data)) {
		t.Fatalf("got %q, progress %d", b, seen)
	}
	bad := filepath.Join(dir, "bad.stl")
	err := c.Download(context.Background(), "/f", "lease-1", hex.EncodeToString(make([]byte, 32)), bad, nil)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("wrong hash: got %v, want ErrRefused", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("a refused download left files behind: %v", entries)
	}
	if err := c.Download(context.Background(), "/f", "other", "x", bad, nil); !errors.Is(err, ErrStale) {
		t.Fatalf("someone else's lease: got %v, want ErrStale", err)
	}
}

// TestDownloadResumesAPart: a part an earlier run left is resumed with a Range request
// tied to the file's hash (If-Range); a part whose bytes are not the file's is fetched
// whole once more instead of failing the job; a hub whose file is another (its ETag is
// not the job's hash) answers in full and the download is refused.
func TestDownloadResumesAPart(t *testing.T) {
	t.Parallel()
	data := []byte(strings.Repeat("facet normal 0 0 1\n", 500))
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	etag := `"` + want + `"`
	served := make(chan int64, 100) // bytes written by each request, when its handler ends
	var ranges []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range")+" "+r.Header.Get("If-Range"))
		e := etag
		mu.Unlock()
		w.Header().Set("ETag", e)
		cw := &countingWriter{ResponseWriter: w}
		http.ServeContent(cw, r, "", time.Time{}, strings.NewReader(string(data)))
		served <- cw.n
	}))
	defer srv.Close()
	c := fastClient(srv.URL)
	dir := t.TempDir()

	// A good part of 1,000 bytes: only the rest comes over the network.
	dst := filepath.Join(dir, "a.stl")
	os.WriteFile(dst+".part", data[:1000], 0o600)
	if err := c.Download(context.Background(), "/f", "l", want, dst, nil); err != nil {
		t.Fatal(err)
	}
	if got := <-served; got != int64(len(data)-1000) {
		t.Fatalf("served %d bytes, want %d (the rest of the file)", got, len(data)-1000)
	}
	mu.Lock()
	first := ranges[0]
	mu.Unlock()
	if first != "bytes=1000- "+etag {
		t.Fatalf("got Range and If-Range %q, want %q", first, "bytes=1000- "+etag)
	}

	// A part with wrong bytes: the stitched file hashes wrong and is fetched whole.
	dst = filepath.Join(dir, "b.stl")
	os.WriteFile(dst+".part", []byte(strings.Repeat("x", 1000)), 0o600)
	if err := c.Download(context.Background(), "/f", "l", want, dst, nil); err != nil {
		t.Fatalf("a wrong part: got %v, want the file fetched whole", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != string(data) {
		t.Fatalf("a wrong part: the file is not the hub's")
	}

	// The hub's file is another: If-Range fails, it answers in full, the hash refuses it.
	mu.Lock()
	etag = `"other"`
	mu.Unlock()
	dst = filepath.Join(dir, "c.stl")
	os.WriteFile(dst+".part", data[:1000], 0o600)
	other := sha256.Sum256([]byte("another file"))
	err := c.Download(context.Background(), "/f", "l", hex.EncodeToString(other[:]), dst, nil)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("another file: got %v, want ErrRefused", err)
	}
	if _, err := os.Stat(dst + ".part"); !os.IsNotExist(err) {
		t.Fatalf("a refused download left its part: %v", err)
	}
}

// TestDownloadGivesUp: a hub that answers nothing useful (503 each time) is asked
// downloadStalls times, with backoff, and then Download returns an error the runtime
// retries later (not a refusal: the job is not failed for it).
func TestDownloadGivesUp(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	err := fastClient(srv.URL).Download(context.Background(), "/f", "l", strings.Repeat("0", 64), filepath.Join(t.TempDir(), "f.stl"), nil)
	if err == nil || errors.Is(err, ErrRefused) || calls.Load() != downloadStalls {
		t.Fatalf("got %v after %d requests, want a retryable error after %d", err, calls.Load(), downloadStalls)
	}
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func TestJournal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil || j.Held != nil {
		t.Fatalf("empty journal: got %+v, %v", j, err)
	}
	h := &Held{Job: agentapi.Job{ID: "j1", SHA256: "abc"}, Lease: "l1", Phase: PhasePrinting, File: "f.stl"}
	if err := j.Set(h); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "journal.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal mode %v, want 0600 (it holds the lease)", fi.Mode().Perm())
	}
	again, err := OpenJournal(dir)
	if err != nil || again.Held == nil || *again.Held != *h {
		t.Fatalf("reopened: got %+v, %v", again.Held, err)
	}
	again.Set(nil)
	if third, _ := OpenJournal(dir); third.Held != nil {
		t.Fatal("a cleared journal still holds a job")
	}
	os.WriteFile(filepath.Join(dir, "journal.json"), []byte("{broken"), 0o600)
	if _, err := OpenJournal(dir); err == nil {
		t.Fatal("a damaged journal: got nil error")
	}
}

func TestSimPrinter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "part.stl")
	os.WriteFile(file, []byte("x"), 0o600)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	sim := &Sim{Dir: dir, Speed: 10, BaseSeconds: 100, Now: clock} // a 10 s print
	ctx := context.Background()
	if st, _ := sim.Status(ctx, Print{Job: "j1", Attempt: 1}); st.State != PrinterGone {
		t.Fatalf("before start: got %+v", st)
	}
	if err := sim.Start(ctx, Print{Job: "j1", Attempt: 1}, file); err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(ctx, Print{Job: "j1", Attempt: 1}, file); err == nil {
		t.Fatal("starting a job twice: got nil error")
	}
	now = now.Add(4 * time.Second)
	if st, _ := sim.Status(ctx, Print{Job: "j1", Attempt: 1}); st.State != PrinterPrinting || st.Progress < 39 || st.Progress > 41 {
		t.Fatalf("at 4 s: got %+v, want printing at 40%%", st)
	}
	// A new Sim on the same dir (a restarted agent) sees the same print.
	restarted := &Sim{Dir: dir, Speed: 10, BaseSeconds: 100, Now: clock}
	now = now.Add(7 * time.Second)
	if st, _ := restarted.Status(ctx, Print{Job: "j1", Attempt: 1}); st.State != PrinterFinished {
		t.Fatalf("after 11 s: got %+v, want finished", st)
	}
	restarted.Start(ctx, Print{Job: "j2", Attempt: 1}, file)
	restarted.Cancel(ctx, Print{Job: "j2", Attempt: 1})
	if st, _ := restarted.Status(ctx, Print{Job: "j2", Attempt: 1}); st.State != PrinterFailed || (st.Message != "canceled" || !st.Canceled) {
		t.Fatalf("canceled: got %+v", st)
	}
	failing := &Sim{Dir: t.TempDir(), Speed: 10, BaseSeconds: 100, FailRate: 1, Now: clock}
	failing.Start(ctx, Print{Job: "j3", Attempt: 1}, file)
	now = now.Add(20 * time.Second)
	if st, _ := failing.Status(ctx, Print{Job: "j3", Attempt: 1}); st.State != PrinterFailed {
		t.Fatalf("fail rate 1: got %+v, want failed", st)
	}
	// The hub queues a failed job again under its id: the next attempt is a new print,
	// not the failed one's record.
	if err := failing.Start(ctx, Print{Job: "j3", Attempt: 2}, file); err != nil {
		t.Fatalf("a retry on the same printer: got %v, want it started", err)
	}
	if st, _ := failing.Status(ctx, Print{Job: "j3", Attempt: 2}); st.State != PrinterPrinting {
		t.Fatalf("the retry: got %+v, want printing", st)
	}
	if err := sim.Start(ctx, Print{Job: "j4", Attempt: 1}, filepath.Join(dir, "missing.stl")); err == nil {
		t.Fatal("a missing file: got nil error")
	}
}

func TestReportableMessages(t *testing.T) {
	t.Parallel()
	klipper := "MCU 'mcu' shutdown: Timer too close\nThis often indicates the host computer is overloaded.\r\n\tOnce the underlying issue is corrected, use the \"FIRMWARE_RESTART\" command" + strings.Repeat(" more", 300)
	got := reportable(klipper)
	if n := utf8.RuneCountInString(got); n > maxMessage || strings.ContainsAny(got, "\n\r\t") || !strings.HasPrefix(got, "MCU 'mcu' shutdown: Timer too close This often") {
		t.Fatalf("got %d characters %q, want one line of at most %d starting with Klipper's words", n, got, maxMessage)
	}
	if got := reportable("layer 3 of 10"); got != "layer 3 of 10" {
		t.Fatalf("a plain message: got %q", got)
	}
}

func TestSettlingIsBounded(t *testing.T) {
	t.Parallel()
	a := &Agent{}
	waiting := Status{State: PrinterPrinting, Settling: true}
	if st := a.settle(waiting); st.State != PrinterPrinting {
		t.Fatalf("first look: got %+v, want still printing", st)
	}
	a.settlingSince = time.Now().Add(-settleLimit - time.Second)
	if st := a.settle(waiting); st.State != PrinterUnknown {
		t.Fatalf("after the limit: got %+v, want unknown", st)
	}
	a.settlingSince = time.Now().Add(-time.Hour)
	if st := a.settle(Status{State: PrinterFinished}); st.State != PrinterFinished || !a.settlingSince.IsZero() {
		t.Fatalf("a record that came: got %+v (since %v), want finished and the wait forgotten", st, a.settlingSince)
	}
}

// TestClientRefusesABrokenAnswer: a poll's answer that breaks the contract (here, a
// file URL off the hub, where the agent would send its token) is refused, not acted
// on and not asked again; and a printer's long message is clipped to what the hub takes.
func TestClientRefusesABrokenAnswer(t *testing.T) {
	t.Parallel()
	var polls atomic.Int32
	var message atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case agentapi.PathPoll:
			polls.Add(1)
			w.Write([]byte(`{"job":{"id":"j1","attempt":1,"version":1,"file":"a.stl","sha256":"` + strings.Repeat("ab", 32) + `","size":1},"lease":"l1","file_url":"//evil.example/f","heartbeat_s":20}`))
		default:
			var req agentapi.EventRequest
			json.NewDecoder(r.Body).Decode(&req)
			message.Store(req.Message)
			w.Write([]byte(`{"lease_expires_at":"2026-11-30T22:00:00Z"}`))
		}
	}))
	defer srv.Close()
	c := fastClient(srv.URL)
	resp, err := c.Poll(context.Background(), agentapi.PollRequest{})
	if !errors.Is(err, ErrRefused) || resp != nil || polls.Load() != 1 || !strings.Contains(err.Error(), "file_url") {
		t.Fatalf("a file URL off the hub: got %+v, %v after %d polls; want ErrRefused naming file_url after 1", resp, err, polls.Load())
	}
	if _, err := c.Event(context.Background(), "j1", agentapi.EventRequest{Kind: agentapi.EventFailed, Message: strings.Repeat("klipper says ", 100)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := message.Load().(string); utf8.RuneCountInString(got) > agentapi.MaxMessage || !strings.HasPrefix(got, "klipper says") {
		t.Fatalf("a long message reached the hub as %d characters, want at most %d", utf8.RuneCountInString(got), agentapi.MaxMessage)
	}
}
