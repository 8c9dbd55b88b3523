package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agent"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/externaltest"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/mongo"
	"github.com/fabcommons/fabcommons/storage/s3blob"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

// cuttingProxy stands between an agent and a hub as a flaky network would: it forwards
// TCP connections to target, closes the first cuts of them after cutAfter bytes from
// the hub, and, when corrupt is set, flips one byte in every 64 KiB it forwards (so
// every answer of a large file, on a new connection or a reused one, comes changed).
// It counts every byte the hub sends through it.
type cuttingProxy struct {
	ln       net.Listener
	target   string
	cutAfter int64
	corrupt  bool
	cuts     atomic.Int32 // connections still to cut
	cut      atomic.Int32 // connections cut
	fromHub  atomic.Int64
	wg       sync.WaitGroup
}

// A corrupting proxy flips the byte at corruptAt in every corruptEvery bytes of a
// connection: the first lies past the first answer's headers, inside the file.
const corruptAt, corruptEvery = 4096, 64 << 10

func startCuttingProxy(t *testing.T, target string, cuts int, cutAfter int64, corrupt bool) *cuttingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttingProxy{ln: ln, target: target, cutAfter: cutAfter, corrupt: corrupt}
	p.cuts.Store(int32(cuts))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(client)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *cuttingProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *cuttingProxy) serve(client net.Conn) {
	defer client.Close()
	hub, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer hub.Close()
	go func() {
		io.Copy(hub, client)
		hub.Close()
	}()
	limit := int64(-1)
	if p.cuts.Add(-1) >= 0 {
		limit = p.cutAfter
	}
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		n, err := hub.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if limit >= 0 && sent+int64(n) >= limit {
				chunk = chunk[:limit-sent]
			}
			for i := range chunk {
				if p.corrupt && (sent+int64(i))%corruptEvery == corruptAt {
					chunk[i] ^= 0xff
				}
			}
			w, _ := client.Write(chunk)
			sent += int64(w)
			p.fromHub.Add(int64(w))
			if limit >= 0 && sent >= limit {
				p.cut.Add(1)
				return // the deferred closes cut both sides mid-answer
			}
		}
		if err != nil {
			return
		}
	}
}

// bigJob publishes a design with one large mesh, orders it and claims the job on f's
// machine: the file's URL, size and hash, and the job's lease.
func bigJob(t *testing.T, f labFixture) (fileURL, lease, sha string, size int64) {
	t.Helper()
	big := meshtest.Binary("big ring", meshtest.Torus(200, 100, 30, 8)) // 40,000 facets, 2 MB
	body := newMultipart().field("meta", map[string]any{"title": "Big ring", "license": "CERN-OHL-S-2.0"}).
		file("files", "ring.stl", big).done()
	f.do(t, call{method: "POST", path: "/api/v1/designs", body: body, header: f.maker}).want(t, 201, "")
	f.do(t, call{method: "POST", path: "/api/v1/orders", header: f.maker, body: map[string]any{
		"design": "big-ring", "lab": "makerspace", "material": "PLA", "quantity": 1}}).want(t, 201, "")
	c, r := f.poll(t, f.machine)
	if c.id == "" {
		t.Fatalf("poll: got no job; body %s", r.body)
	}
	job := r.json["job"].(map[string]any)
	return c.file, c.lease, job["sha256"].(string), int64(len(big))
}

// TestDownloadResumesAfterCuts: the network between agent and hub drops the download of
// a large file three times; the agent asks for the rest each time instead of starting
// over, and the file it keeps has the job's hash. A network that changes bytes makes the
// download fail, saying the hash is wrong, and leaves no file.
func TestDownloadResumesAfterCuts(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	fileURL, lease, sha, size := bigJob(t, f)
	if size < 1<<20 {
		t.Fatalf("the file is %d bytes; the test needs a large one", size)
	}
	token := f.machine["Authorization"][len("Bearer "):]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	newClient := func(base string) *agent.Client {
		c := agent.NewClient(base, token)
		c.MinBackoff, c.MaxBackoff = time.Millisecond, 20*time.Millisecond
		return c
	}

	const cuts = 3
	cutAfter := size / 4
	proxy := startCuttingProxy(t, srv.Listener.Addr().String(), cuts, cutAfter, false)
	dst := filepath.Join(t.TempDir(), "ring.stl")
	if err := newClient(proxy.URL()).Download(ctx, fileURL, lease, sha, dst, nil); err != nil {
		t.Fatalf("download through a network that drops it %d times: %v", cuts, err)
	}
	got, _ := os.ReadFile(dst)
	if int64(len(got)) != size || sha256Hex(got) != sha {
		t.Fatalf("got %d bytes hashing to %s, want %d bytes hashing to %s", len(got), sha256Hex(got), size, sha)
	}
	if n := proxy.cut.Load(); n != cuts {
		t.Fatalf("the proxy cut %d connections, want %d", n, cuts)
	}
	// Starting over after each cut would move cuts*cutAfter + size bytes (3.5 MB);
	// resuming moves the file once plus a few headers per request.
	restart := cuts*cutAfter + size
	if sent := proxy.fromHub.Load(); sent > size+16<<10 {
		t.Fatalf("the hub sent %d bytes for a %d-byte file; resuming should send about %d, starting over %d", sent, size, size, restart)
	}
	t.Logf("%d-byte file, %d cuts: the hub sent %d bytes (starting over: %d)", size, cuts, proxy.fromHub.Load(), restart)

	// A network that changes bytes: the download fails for the hash and leaves nothing.
	bad := startCuttingProxy(t, srv.Listener.Addr().String(), 1, cutAfter, true)
	dir := t.TempDir()
	err := newClient(bad.URL()).Download(ctx, fileURL, lease, sha, filepath.Join(dir, "ring.stl"), nil)
	t.Logf("bad proxy: cut %d, sent %d", bad.cut.Load(), bad.fromHub.Load())
	if !errors.Is(err, agent.ErrRefused) {
		t.Fatalf("download through a network that changes bytes: got %v, want ErrRefused for the hash", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a refused download left %v behind", entries)
	}
	t.Logf("changed bytes: %v", err)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// faultHub runs a whole hub over the given stores on a real loopback HTTP server, with
// /readyz checking them as cmd/fabhub wires it. It counts the answers of 500 and over
// other than 503 (a panic is a 500 too): a store that goes away must never cause one.
type faultHub struct {
	base   string
	fab    fabrication.Fabrication
	logs   *syncBuffer
	mu     sync.Mutex
	errors []string // "METHOD path: status" of every answer >= 500 but 503
}

func startFaultHub(t *testing.T, st hubStores, blobs storage.Blobs, ready map[string]Pinger, fo fabrication.Options) *faultHub {
	t.Helper()
	h := &faultHub{logs: &syncBuffer{}}
	hub, err := NewHub(HubConfig{Web: Config{PollWait: time.Second, PollRecheck: 50 * time.Millisecond, SignupsPerHour: 1000},
		Accounts: account.Options{Argon2: cheapArgon}, Fabrication: fo, Log: slog.New(slog.NewTextHandler(h.logs, nil))},
		Stores{Accounts: st.accounts, Catalog: st.catalog, Fabrication: st.fab, Blobs: blobs, Ready: ready})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		hub.Handler.ServeHTTP(rec, r)
		if rec.status >= 500 && rec.status != http.StatusServiceUnavailable {
			h.mu.Lock()
			h.errors = append(h.errors, fmt.Sprintf("%s %s: %d", r.Method, r.URL.Path, rec.status))
			h.mu.Unlock()
		}
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the hub's log:\n%s", h.logs.String())
		}
	})
	h.base, h.fab = ts.URL, hub.Fab
	return h
}

// checkNoServerErrors fails the test if the hub answered anything of 500 or over but 503.
func (h *faultHub) checkNoServerErrors(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errors) > 0 {
		t.Errorf("the hub answered %d requests with a server error other than 503, want none: %v", len(h.errors), h.errors)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// signUpOver makes an account over HTTP and returns a personal API token.
func signUpOver(t *testing.T, hub httpClient, handle string) string {
	t.Helper()
	if code, err := hub.call("POST", "/api/v1/users", "", map[string]string{"handle": handle, "email": handle + "@example.org", "password": "correct horse battery"}, nil); code != 201 {
		t.Fatalf("sign up: got %d %v, want 201", code, err)
	}
	var tok struct {
		Token struct{ Secret string } `json:"token"`
	}
	if code, err := hub.call("POST", "/api/v1/tokens", "", map[string]string{"handle": handle, "password": "correct horse battery", "name": "faults"}, &tok); code != 201 {
		t.Fatalf("token: got %d %v, want 201", code, err)
	}
	return tok.Token.Secret
}

// uploadOver sends a multipart body to path over HTTP; pause, when not nil, is called once
// after the first pauseAt bytes are sent, while the request is under way.
func uploadOver(t *testing.T, base, path, token string, body *multipartBody, pauseAt int, pause func()) (int, []byte) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() {
		b := body.buf.Bytes()
		if pause != nil {
			if _, err := pw.Write(b[:pauseAt]); err != nil {
				pw.CloseWithError(err)
				return
			}
			pause()
			b = b[pauseAt:]
		}
		_, err := pw.Write(b)
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", base+path, pr)
	req.Header.Set("Content-Type", body.contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload to %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// wantUnavailable checks an answer is a 503 in the API's error shape, code unavailable.
func wantUnavailable(t *testing.T, what string, status int, body []byte) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	json.Unmarshal(body, &e)
	if status != http.StatusServiceUnavailable || e.Error.Code != "unavailable" || e.Error.Message == "" {
		t.Errorf("%s: got %d %s, want 503 with error code unavailable and a message", what, status, body)
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// waitReady waits up to 30 s for the hub's /readyz to say 200.
func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := get(t, base+"/readyz")
		if status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz 30 s after the server came back: got %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// watchedBlobs, once armed, closes the channel arm returned when a Put first reads past
// 16 MiB (s3blob's part size): the S3 client sends a part once it has read all of it,
// so the first part is then stored and the second under way.
type watchedBlobs struct {
	storage.Blobs
	mu         sync.Mutex
	secondPart chan struct{} // nil: not armed
}

func (w *watchedBlobs) arm() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.secondPart = make(chan struct{})
	return w.secondPart
}

func (w *watchedBlobs) Put(ctx context.Context, r io.Reader, limit int64, want string) (storage.BlobInfo, error) {
	return w.Blobs.Put(ctx, &partWatcher{r: r, w: w}, limit, want)
}

type partWatcher struct {
	r    io.Reader
	w    *watchedBlobs
	read int64
}

func (p *partWatcher) Read(b []byte) (int, error) {
	if p.read >= 16<<20 {
		p.w.mu.Lock()
		if p.w.secondPart != nil {
			close(p.w.secondPart)
			p.w.secondPart = nil
		}
		p.w.mu.Unlock()
	}
	n, err := p.r.Read(b)
	p.read += int64(n)
	return n, err
}

// TestMinIOAway kills the blob store (MinIO) under a running hub, in the middle of a
// download and in the middle of an upload. The download under way is cut short (never
// a whole-looking wrong file); while MinIO is away a download, an upload and /readyz
// answer 503 in the API's error shape; the upload cut off creates no version; once
// MinIO is back the same hub, never restarted, takes the upload and serves the file.
func TestMinIOAway(t *testing.T) {
	t.Parallel()
	minio, creds := externaltest.StartMinIO(t)
	ctx := context.Background()
	blobs, err := s3blob.Open(ctx, s3blob.Config{Endpoint: creds.Endpoint, AccessKey: creds.AccessKey, SecretKey: creds.SecretKey, Bucket: "fab"})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fab.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	watched := &watchedBlobs{Blobs: blobs}
	hub := startFaultHub(t, hubStores{db.Accounts(), db.Catalog(), db.Fabrication()}, watched, map[string]Pinger{"db": db, "blobs": blobs}, fabrication.Options{})
	api := httpClient{base: hub.base, c: http.DefaultClient}
	ada := signUpOver(t, api, "ada")

	// Large enough that neither the hub nor the sockets hold the whole file while the
	// client waits, and that the upload below is sent to MinIO in parts (16 MiB each).
	big := make([]byte, 24<<20)
	rand.Read(big)
	first := newMultipart().field("meta", map[string]any{"title": "Big part", "license": "CC0-1.0"}).file("files", "data/big.bin", big).done()
	if status, body := uploadOver(t, hub.base, "/api/v1/designs", ada, first, 0, nil); status != 201 {
		t.Fatalf("publish: got %d %s", status, body)
	}
	fileURL := hub.base + "/api/v1/designs/big-part/versions/1/files/data/big.bin"

	// A download under way when MinIO goes.
	resp, err := http.Get(fileURL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("download: got %v, %v", resp, err)
	}
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	minio.Stop()
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(head)+len(rest) >= len(big) {
		t.Errorf("the download under way: got %d of %d bytes and %v, want it cut short with an error", len(head)+len(rest), len(big), err)
	}

	// While MinIO is away.
	status, body := get(t, fileURL)
	wantUnavailable(t, "a download while MinIO is away", status, body)
	status, body = get(t, hub.base+"/api/v1/designs/big-part/versions/1/archive.zip")
	wantUnavailable(t, "an archive while MinIO is away", status, body)
	status, body = get(t, hub.base+"/readyz")
	var ready struct{ Checks map[string]string }
	json.Unmarshal(body, &ready)
	if status != http.StatusServiceUnavailable || ready.Checks["blobs"] != "unavailable" || ready.Checks["db"] != "ok" {
		t.Errorf("/readyz while MinIO is away: got %d %s, want 503 with blobs unavailable and db ok", status, body)
	}
	second := newMultipart().field("meta", map[string]any{"message": "bigger"}).file("files", "data/big.bin", append(big[:len(big):len(big)], "more"...)).done()
	status, body = uploadOver(t, hub.base, "/api/v1/designs/big-part/versions", ada, second, 0, nil)
	wantUnavailable(t, "an upload while MinIO is away", status, body)

	// MinIO back: the same hub serves the file again.
	minio.Start()
	waitReady(t, hub.base)
	if status, body := get(t, fileURL); status != 200 || !bytes.Equal(body, big) {
		t.Fatalf("the download after MinIO came back: got %d and %d bytes, want 200 and the %d stored", status, len(body), len(big))
	}

	// An upload under way when MinIO goes: once the hub has stored the first 16 MiB part
	// of the file in MinIO and reads on for the second, MinIO is killed; then the client
	// sends the rest.
	secondPart := watched.arm()
	killMidUpload := func() {
		select {
		case <-secondPart:
		case <-time.After(20 * time.Second):
			t.Errorf("the hub read no second part of the upload within 20 s")
		}
		minio.Stop()
	}
	status, body = uploadOver(t, hub.base, "/api/v1/designs/big-part/versions", ada, second, 22<<20, killMidUpload)
	wantUnavailable(t, "an upload under way when MinIO went", status, body)
	var design struct {
		Version struct{ Number int } `json:"version"`
	}
	if code, err := api.call("GET", "/api/v1/designs/big-part", "", nil, &design); code != 200 || design.Version.Number != 1 {
		t.Errorf("after the upload was cut: got %d, latest version %d (%v), want 200 and still version 1", code, design.Version.Number, err)
	}
	if status, body := get(t, hub.base+"/api/v1/designs/big-part/versions/2"); status != http.StatusNotFound {
		t.Errorf("version 2 after the upload was cut: got %d %s, want 404 (no half-made version)", status, body)
	}

	minio.Start()
	waitReady(t, hub.base)
	if status, body := uploadOver(t, hub.base, "/api/v1/designs/big-part/versions", ada, second, 0, nil); status != 201 {
		t.Fatalf("the same upload once MinIO was back: got %d %s, want 201", status, body)
	}
	if status, body := get(t, hub.base+"/api/v1/designs/big-part/versions/2/files/data/big.bin"); status != 200 || len(body) != len(big)+4 {
		t.Fatalf("version 2's file: got %d and %d bytes, want 200 and %d", status, len(body), len(big)+4)
	}
	hub.checkNoServerErrors(t)
}

// TestDatabaseAwayWhileAgentsPoll kills the MongoDB-wire server (FerretDB) under a
// running hub while four agents (the real agent client: it retries 503s with backoff)
// work through 24 jobs, and starts it again on the same port and data. While it is away
// /readyz and an agent's poll answer 503 in the API's error shape (not a 401 that would
// send the agent to enrol again, nor a 500); once it is back the same hub, never
// restarted, finishes the work: every job finished exactly once, none held by two
// machines at a time, none left queued or held, and no answer was a 500.
func TestDatabaseAwayWhileAgentsPoll(t *testing.T) {
	t.Parallel()
	server, uri := externaltest.StartFerretDB(t, "away")
	ctx := context.Background()
	// The hub waits 1 s for the server before it answers 503 (5 s by default).
	db, err := mongo.Open(ctx, uri+"&serverSelectionTimeoutMS=1000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := localblob.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	hub := startFaultHub(t, hubStores{db.Accounts(), db.Catalog(), db.Fabrication()}, blobs, map[string]Pinger{"db": db, "blobs": blobs}, fabrication.Options{LeaseTTL: 20 * time.Second})
	api := httpClient{base: hub.base, c: http.DefaultClient}
	ada := signUpOver(t, api, "ada")
	// The lease rescuer, as cmd/fabhub's cron runs it (every 5 s there): a claim whose
	// answer was lost with the database is given back when its lease runs out.
	rescuerCtx, stopRescuer := context.WithCancel(ctx)
	var rescued atomic.Int64
	rescuerDone := make(chan struct{})
	go func() {
		defer close(rescuerDone)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-rescuerCtx.Done():
				return
			case <-tick.C:
				n, _ := hub.fab.Scheduler.ExpireLeases(rescuerCtx)
				rescued.Add(int64(n))
			}
		}
	}()
	defer func() { stopRescuer(); <-rescuerDone }()
	cube := newMultipart().field("meta", map[string]any{"title": "Cube", "license": "CC0-1.0"}).file("files", "cube.stl", cubeSTL).done()
	if status, body := uploadOver(t, hub.base, "/api/v1/designs", ada, cube, 0, nil); status != 201 {
		t.Fatalf("publish: got %d %s", status, body)
	}
	if code, err := api.call("POST", "/api/v1/labs", ada, map[string]any{"slug": "farm", "name": "Print farm"}, nil); code != 201 {
		t.Fatalf("lab: got %d %v", code, err)
	}
	var jt struct {
		JoinToken struct{ Secret string } `json:"join_token"`
	}
	api.call("POST", "/api/v1/labs/farm/join-tokens", ada, map[string]string{"name": "farm"}, &jt)
	const agents, jobs = 4, 24
	var order struct {
		Order struct{ ID string } `json:"order"`
	}
	if code, err := api.call("POST", "/api/v1/orders", ada, map[string]any{"lab": "farm", "design": "cube", "quantity": jobs}, &order); code != 201 {
		t.Fatalf("order: got %d %v", code, err)
	}
	orderID := order.Order.ID
	tokens := make([]string, agents)
	for a := range tokens {
		var enr struct{ Token string }
		caps := map[string]any{"process": "fdm", "build_volume": []float64{200, 200, 200}, "driver": "sim"}
		if code, err := api.call("POST", "/api/v1/agent/register", "", map[string]any{"join_token": jt.JoinToken.Secret, "name": fmt.Sprint("agent ", a), "capabilities": caps}, &enr); code != 201 {
			t.Fatalf("register: got %d %v", code, err)
		}
		tokens[a] = enr.Token
	}

	var mu sync.Mutex
	holder := map[string]int{}   // job -> agent holding it now
	finished := map[string]int{} // job -> times finished
	var done atomic.Int64
	someDone := make(chan struct{})
	var someDoneOnce sync.Once
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for a, token := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := agent.NewClient(hub.base, token)
			c.MinBackoff, c.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
			for done.Load() < jobs && runCtx.Err() == nil {
				resp, err := c.Poll(runCtx, agentapi.PollRequest{State: agentapi.StateIdle, Jobs: []agentapi.HeldJob{}, WaitSeconds: 1})
				if err != nil {
					if runCtx.Err() == nil {
						t.Errorf("agent %d: poll: %v", a, err)
					}
					return
				}
				if resp == nil || resp.Job == nil {
					continue
				}
				id := resp.Job.ID
				mu.Lock()
				if other, held := holder[id]; held {
					t.Errorf("job %s given to agent %d while agent %d holds it", id, a, other)
				}
				holder[id] = a
				mu.Unlock()
				stale := false
				for _, kind := range []string{agentapi.EventStarted, agentapi.EventFinished} {
					_, err := c.Event(runCtx, id, agentapi.EventRequest{Lease: resp.Lease, Kind: kind})
					if errors.Is(err, agent.ErrStale) {
						// The hub took the job back (it will be given again), or a finish
						// landed whose answer was lost and its retry found the lease gone.
						var j struct {
							Job struct{ State string } `json:"job"`
						}
						api.call("GET", "/api/v1/jobs/"+id, "", nil, &j)
						stale = kind != agentapi.EventFinished || j.Job.State != fabrication.JobDone
						break
					}
					if err != nil {
						if runCtx.Err() == nil {
							t.Errorf("agent %d: %s %s: %v", a, kind, id, err)
						}
						return
					}
				}
				mu.Lock()
				delete(holder, id)
				if !stale {
					finished[id]++
				}
				mu.Unlock()
				if !stale && done.Add(1) >= jobs/4 {
					someDoneOnce.Do(func() { close(someDone) })
				}
			}
		}()
	}

	select {
	case <-someDone:
	case <-runCtx.Done():
		t.Fatalf("no %d jobs done before the server stopped: %d", jobs/4, done.Load())
	}
	server.Stop()
	doneWhenStopped := done.Load()
	status, body := get(t, hub.base+"/readyz")
	var ready struct{ Checks map[string]string }
	json.Unmarshal(body, &ready)
	if status != http.StatusServiceUnavailable || ready.Checks["db"] != "unavailable" || ready.Checks["blobs"] != "ok" {
		t.Errorf("/readyz while the database is away: got %d %s, want 503 with db unavailable and blobs ok", status, body)
	}
	var raw bytes.Buffer
	json.NewEncoder(&raw).Encode(map[string]any{"protocol": agentapi.Protocol, "state": "idle", "jobs": []any{}, "wait_s": 1})
	req, _ := http.NewRequest("POST", hub.base+agentapi.PathPoll, &raw)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tokens[0])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	wantUnavailable(t, "a poll while the database is away", resp.StatusCode, body)
	status, body = get(t, hub.base+"/api/v1/labs/farm")
	wantUnavailable(t, "a lab's page while the database is away", status, body)

	server.Start()
	waitReady(t, hub.base)
	wg.Wait()
	hub.checkNoServerErrors(t)
	if t.Failed() {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	if done.Load() != jobs || len(finished) != jobs {
		var o struct {
			Jobs []fabrication.Job `json:"jobs"`
		}
		api.call("GET", "/api/v1/orders/"+orderID, "", nil, &o)
		for _, j := range o.Jobs {
			if finished[j.ID] == 0 {
				t.Logf("job %s not finished: state %s, machine %s, lease until %v, events %+v", j.ID, j.State, j.MachineID, j.LeaseExpires, j.Events)
			}
		}
		t.Fatalf("got %d finishes of %d distinct jobs, want %d, each once", done.Load(), len(finished), jobs)
	}
	for id, n := range finished {
		if n != 1 {
			t.Errorf("job %s finished %d times, want once", id, n)
		}
	}
	var lab fabrication.LabView
	api.call("GET", "/api/v1/labs/farm", "", nil, &lab)
	if len(lab.Queue) != 0 || len(lab.Active) != 0 {
		t.Errorf("after the run: %d queued, %d active, want none", len(lab.Queue), len(lab.Active))
	}
	// The hub's own record agrees: each job done, and done once.
	var o struct {
		Jobs []fabrication.Job `json:"jobs"`
	}
	api.call("GET", "/api/v1/orders/"+orderID, "", nil, &o)
	for _, j := range o.Jobs {
		dones := 0
		for _, e := range j.Events {
			if e.To == fabrication.JobDone {
				dones++
			}
		}
		if j.State != fabrication.JobDone || dones != 1 {
			t.Errorf("job %s: state %s, done %d times in its log; want done, once", j.ID, j.State, dones)
		}
	}
	if len(o.Jobs) != jobs {
		t.Errorf("the order has %d jobs, want %d", len(o.Jobs), jobs)
	}
	t.Logf("%d of %d jobs were done when the server stopped; all were done after it came back; the lease rescuer took back %d", doneWhenStopped, jobs, rescued.Load())
}
