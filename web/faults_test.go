package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agent"
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
