package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

// hubProcess is a fabhub running in a process of its own (this test binary, see
// TestMain), as a hub being backed up runs beside the `fabhub backup` that copies it.
type hubProcess struct {
	base    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has exited
	waitErr error         // how it exited, once exited is closed
}

// startHubProcess starts a hub on dataDir, with env added to its environment, and
// waits until it says it is listening. It is stopped with SIGINT, as an operator stops
// it, when the test ends or by stop.
func startHubProcess(t *testing.T, dataDir string, env ...string) *hubProcess {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-addr", addr, "-data", dataDir, "-log-level", "info")
	cmd.Env = append(append(os.Environ(), "FAB_TEST_RUN_FABHUB=1"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &hubProcess{base: "http://" + addr, cmd: cmd, exited: make(chan struct{})}
	listening := make(chan struct{})
	var logMu sync.Mutex
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if !said && strings.Contains(sc.Text(), "fabhub listening") {
				said = true
				close(listening)
			}
		}
		h.waitErr = cmd.Wait() // after the pipe is read to its end, as Wait wants
		close(h.exited)
	}()
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			logMu.Lock()
			t.Logf("hub on %s logged:\n%s", dataDir, log.String())
			logMu.Unlock()
		}
	})
	select {
	case <-listening:
	case <-h.exited:
		t.Fatalf("the hub stopped before it listened: %v", h.waitErr)
	case <-time.After(30 * time.Second):
		t.Fatal("the hub did not listen within 30 s")
	}
	return h
}

// stop asks the hub to shut down and waits for it; stopping twice is harmless.
func (h *hubProcess) stop() {
	select {
	case <-h.exited:
	default:
		h.cmd.Process.Signal(os.Interrupt)
		<-h.exited
	}
}

// call sends a JSON request with a token (if any) and decodes a JSON answer into out.
func (h *hubProcess) call(t *testing.T, method, path, token string, body, out any) int {
	t.Helper()
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, h.base+path, bytes.NewReader(j))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// hubClient calls a hub's API with a personal token.
type hubClient struct {
	base, token string
}

func (c hubClient) do(req *http.Request, wantStatus int, out any) error {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != wantStatus {
		return fmt.Errorf("%s %s: got %d %.300s, want %d", req.Method, req.URL.Path, resp.StatusCode, body, wantStatus)
	}
	if out == nil {
		return nil
	}
	if b, ok := out.(*[]byte); ok {
		*b = body
		return nil
	}
	return json.Unmarshal(body, out)
}

func (c hubClient) postJSON(path string, body any, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", c.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, http.StatusCreated, out)
}

func (c hubClient) get(path string, out any) error {
	req, _ := http.NewRequest("GET", c.base+path, nil)
	return c.do(req, http.StatusOK, out)
}

// upload posts meta and files (path -> bytes) as multipart to path.
func (c hubClient) upload(path string, meta any, files map[string][]byte, out any) error {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	m, _ := json.Marshal(meta)
	mw.WriteField("meta", string(m))
	for name, data := range files {
		fw, _ := mw.CreateFormFile("files", name)
		fw.Write(data)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", c.base+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.do(req, http.StatusCreated, out)
}

func signUp(base string) (hubClient, error) {
	c := hubClient{base: base}
	if err := c.postJSON("/api/v1/users", map[string]string{"handle": "ada", "email": "ada@example.org", "password": "correct horse battery"}, nil); err != nil {
		return c, err
	}
	var tok struct{ Token struct{ Secret string } }
	err := c.postJSON("/api/v1/tokens", map[string]string{"handle": "ada", "password": "correct horse battery", "name": "backup test"}, &tok)
	c.token = tok.Token.Secret
	return c, err
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// published is a design the load finished publishing: its files' hashes by version
// and path, and whether its upload began after the database was copied.
type published struct {
	slug      string
	files     map[int]map[string]string
	afterCopy bool
}

// load publishes designs (two meshes each, distinct bytes) and adds second versions,
// from several clients at once, until stopped.
type load struct {
	client hubClient
	mu     sync.Mutex
	done   []*published
	signal chan struct{} // a send after each finished upload, dropped if one is pending
	copied atomic.Bool   // set once the database copy is taken
	errs   chan error
}

func (l *load) finished() []*published {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*published(nil), l.done...)
}

// waitFor waits until at least n designs are finished.
func (l *load) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for len(l.finished()) < n {
		select {
		case <-l.signal:
		case err := <-l.errs:
			t.Fatalf("load: %v", err)
		case <-deadline:
			t.Fatalf("only %d designs published within 60 s, want %d", len(l.finished()), n)
		}
	}
}

func (l *load) run(ctx context.Context, worker int) {
	for i := 0; ctx.Err() == nil; i++ {
		afterCopy := l.copied.Load()
		side := 10 + float32(worker) + float32(i)/64
		files := map[string][]byte{
			"cube.stl":       meshtest.Binary("cube", meshtest.Cube(stl.Vec3{0, 0, 0}, side)),
			"parts/ring.stl": meshtest.Binary("ring", meshtest.Torus(48, 24, 20+float64(worker)+float64(i)/64, 4)),
		}
		var created struct{ Design struct{ Slug string } }
		meta := map[string]any{"title": fmt.Sprintf("Part %d-%d", worker, i), "license": "CERN-OHL-S-2.0", "tags": []string{"load"}}
		if err := l.client.upload("/api/v1/designs", meta, files, &created); err != nil {
			l.fail(ctx, err)
			return
		}
		p := &published{slug: created.Design.Slug, afterCopy: afterCopy, files: map[int]map[string]string{1: {}}}
		for name, data := range files {
			p.files[1][name] = sha(data)
		}
		if i%3 == 0 {
			extra := meshtest.Binary("bracket", meshtest.Cube(stl.Vec3{1, 2, 3}, side+100))
			if err := l.client.upload("/api/v1/designs/"+p.slug+"/versions", map[string]any{"message": "a bracket"}, map[string][]byte{"bracket.stl": extra}, nil); err != nil {
				l.fail(ctx, err)
				return
			}
			p.files[2] = map[string]string{"bracket.stl": sha(extra)}
			for name, key := range p.files[1] {
				p.files[2][name] = key
			}
		}
		l.mu.Lock()
		l.done = append(l.done, p)
		l.mu.Unlock()
		select {
		case l.signal <- struct{}{}:
		default:
		}
	}
}

func (l *load) fail(ctx context.Context, err error) {
	if ctx.Err() == nil { // a request cut short by the end of the load is no failure
		l.errs <- err
	}
}

// TestBackupDuringLoad backs up a hub while clients publish designs and versions, then
// starts a new hub on the copy: every design it lists has every file of every version,
// byte for byte, and every design published before the backup began is there. Designs
// are committed between the database copy and the blob copy on purpose: had the blobs
// been copied first, their files would be missing from the copy.
func TestBackupDuringLoad(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	data := filepath.Join(root, "data")
	hub := startHubProcess(t, data)
	client, err := signUp(hub.base)
	if err != nil {
		t.Fatal(err)
	}

	l := &load{client: client, signal: make(chan struct{}, 1), errs: make(chan error, 8)}
	ctx, stopLoad := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	for w := range 3 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			l.run(ctx, w)
		}()
	}
	defer func() {
		stopLoad()
		workers.Wait()
	}()
	l.waitFor(t, 12)
	before := l.finished()

	dest := filepath.Join(root, "backup")
	var inGap int
	sum, err := backupData(context.Background(), data, dest, backupOptions{betweenCopies: func() {
		l.copied.Store(true)
		n := len(l.finished())
		l.waitFor(t, n+6) // at least 3 of them begun and committed in the gap
		inGap = len(l.finished()) - n
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(sum)
	l.waitFor(t, len(l.finished())+3) // the load goes on after the backup
	stopLoad()
	workers.Wait()
	select {
	case err := <-l.errs:
		t.Fatalf("load: %v", err)
	default:
	}
	all := l.finished()
	hub.stop()
	if entries, _ := os.ReadDir(root); len(entries) != 2 {
		t.Errorf("beside the backup: got %v, want only data and backup (no partial folder)", entries)
	}

	restored := startHubProcess(t, dest)
	rc := hubClient{base: restored.base}
	published := map[string]*published{}
	for _, p := range all {
		published[p.slug] = p
	}
	listed := map[string]bool{}
	downloaded := 0
	for cursor := ""; ; {
		var page struct {
			Designs []struct {
				Slug          string `json:"slug"`
				LatestVersion int    `json:"latest_version"`
			} `json:"designs"`
			NextCursor string `json:"next_cursor"`
		}
		if err := rc.get("/api/v1/designs?limit=100&cursor="+url.QueryEscape(cursor), &page); err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Designs {
			listed[d.Slug] = true
			switch p := published[d.Slug]; {
			case p == nil:
				t.Errorf("the copy lists %s, which the load did not publish", d.Slug)
			case p.afterCopy:
				t.Errorf("the copy lists %s, whose upload began after the database was copied", d.Slug)
			default:
				downloaded += checkCopiedDesign(t, rc, p)
			}
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}

	for _, p := range before {
		if !listed[p.slug] {
			t.Errorf("design %s, published before the backup began, is not in the copy", p.slug)
		}
	}
	t.Logf("%d designs published before the backup, %d finished between the two copies, %d in the copy (%d files downloaded), %d in all",
		len(before), inGap, len(listed), downloaded, len(all))
	if downloaded < 2*len(before) {
		t.Fatalf("downloaded %d files from the copy, want at least %d", downloaded, 2*len(before))
	}
	if len(listed) < len(before) || len(all) <= len(listed) {
		t.Fatalf("got %d designs in the copy of %d published, want at least the %d published before and fewer than all",
			len(listed), len(all), len(before))
	}
}

type copiedFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// checkCopiedDesign downloads every file of every version of p from the hub and checks
// it against the hash and size the hub's database gives it, and those against what the
// load published: the same files, with a second version missing only if it was added
// after the copy. It returns how many files it downloaded.
func checkCopiedDesign(t *testing.T, c hubClient, p *published) int {
	t.Helper()
	var list struct {
		Versions []struct {
			Number int `json:"number"`
		} `json:"versions"`
	}
	if err := c.get("/api/v1/designs/"+p.slug+"/versions", &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Versions) == 0 || len(list.Versions) > len(p.files) {
		t.Errorf("design %s: got %d versions, want 1 to %d", p.slug, len(list.Versions), len(p.files))
	}
	downloaded := 0
	for _, lv := range list.Versions {
		var v struct {
			Version struct {
				Files []copiedFile `json:"files"`
			} `json:"version"`
		}
		if err := c.get(fmt.Sprintf("/api/v1/designs/%s/versions/%d", p.slug, lv.Number), &v); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, f := range v.Version.Files {
			got[f.Path] = f.SHA256
			var body []byte
			if err := c.get(fmt.Sprintf("/api/v1/designs/%s/versions/%d/files/%s", p.slug, lv.Number, f.Path), &body); err != nil {
				t.Errorf("design %s version %d: %v", p.slug, lv.Number, err)
				continue
			}
			downloaded++
			if sum := sha(body); sum != f.SHA256 || int64(len(body)) != f.Size {
				t.Errorf("design %s version %d %s: got %d bytes hashing to %s, want %d bytes, %s",
					p.slug, lv.Number, f.Path, len(body), sum, f.Size, f.SHA256)
			}
		}
		if want := p.files[lv.Number]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("design %s version %d: got files %v, want %v", p.slug, lv.Number, got, want)
		}
	}
	return downloaded
}

// embeddedHub makes a data dir as a hub leaves it, with one blob, without running one.
func embeddedHub(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	os.Mkdir(data, 0o750)
	db, err := sqlite.Open(ctx, filepath.Join(data, "fabcommons.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	blobs, err := localblob.Open(filepath.Join(data, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.Put(ctx, strings.NewReader("a part"), 1<<20, ""); err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBackupCommand(t *testing.T) {
	t.Parallel()
	data := embeddedHub(t)
	dest := filepath.Join(t.TempDir(), "empty")
	os.Mkdir(dest, 0o750) // an empty folder may be the destination
	var out, errs strings.Builder
	if err := run(context.Background(), []string{"backup", "-data", data, dest}, envOf(nil), &out, &errs); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "backed up "+data+" to "+dest+": database ") ||
		!strings.Contains(out.String(), "1 blobs") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("got stdout %q, want one line of summary", out.String())
	}
	if errs.Len() != 0 {
		t.Errorf("got stderr %q, want nothing (it is not a terminal)", errs.String())
	}
	for _, f := range []string{"fabcommons.db", "blobs/sha256", "blobs/tmp"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("the copy lacks %s: %v", f, err)
		}
	}
}

// TestBackupRefuses: each bad input gets one line saying what is wrong, and leaves
// nothing behind.
func TestBackupRefuses(t *testing.T) {
	t.Parallel()
	data := embeddedHub(t)
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	os.Mkdir(full, 0o750)
	os.WriteFile(filepath.Join(full, "notes.txt"), []byte("keep me"), 0o600)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep me"), 0o600)
	link := filepath.Join(dir, "link")
	os.Mkdir(filepath.Join(dir, "empty"), 0o750)
	os.Symlink(filepath.Join(dir, "empty"), link)
	fresh := filepath.Join(dir, "fresh")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no destination", []string{"-data", data}, nil, "usage: fabhub backup"},
		{"two destinations", []string{"-data", data, fresh, fresh + "2"}, nil, "usage: fabhub backup"},
		{"a flag after the destination", []string{fresh, "-data", data}, nil, "usage: fabhub backup"},
		{"destination not empty", []string{"-data", data, full}, nil, "exists and is not empty"},
		{"destination a file", []string{"-data", data, file}, nil, "exists and is not a folder"},
		{"destination a link", []string{"-data", data, link}, nil, "exists and is not a folder"},
		{"no parent", []string{"-data", data, filepath.Join(dir, "nowhere", "b")}, nil, "is not a folder: make it first"},
		{"inside the data dir", []string{"-data", data, filepath.Join(data, "backup")}, nil, "is inside the data dir"},
		{"no hub there", []string{"-data", dir, fresh}, nil, "is not a hub's data dir (no fabcommons.db in it)"},
		{"MongoDB", []string{fresh}, map[string]string{"FAB_DATA": data, "FAB_DB": "mongodb://fab:db-secret@mongo:27017/fab"}, "keeps its database in MongoDB (-db, FAB_DB): back it up with mongodump"},
		{"S3", []string{"-data", data, fresh}, map[string]string{"FAB_BLOBS": "s3://minio:blob-secret@minio:9000/fab"}, "keeps its blobs in S3 (-blobs, FAB_BLOBS): back it up with your S3 tooling"},
		{"both", []string{"-data", data, fresh}, map[string]string{"FAB_DB": "mongodb://mongo/fab", "FAB_BLOBS": "s3://k:s@minio:9000/fab"}, "MongoDB (-db, FAB_DB) and its blobs in S3 (-blobs, FAB_BLOBS): back them up with mongodump and your S3"},
		{"bad config", []string{"-data", data, "-max-body", "ten", fresh}, nil, "max body"},
	} {
		var out, errs strings.Builder
		err := run(context.Background(), append([]string{"backup"}, tc.args...), envOf(tc.env), &out, &errs)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: got %v, want one line containing %q and no secret", tc.name, err, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("%s: got stdout %q, want nothing", tc.name, out.String())
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "empty file full link" {
		t.Errorf("got %s beside the refused backups, want only what was there before", got)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "notes.txt")); string(b) != "keep me" {
		t.Errorf("a refused destination changed")
	}
	if entries, _ := os.ReadDir(data); len(entries) != 2 {
		t.Errorf("got %d entries in the data dir, want 2 (a refused backup writes nothing there)", len(entries))
	}
}
