package main

import (
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
	"sync"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

// killableHub is a fabhub process on a fixed address and data dir that the test kills
// with SIGKILL and starts again.
type killableHub struct {
	t          *testing.T
	addr, data string
	cmd        *exec.Cmd
	log        *os.File
}

func (h *killableHub) start() {
	h.t.Helper()
	h.cmd = exec.Command(filepath.Join(binDir, "fabhub"), "-addr", h.addr, "-data", h.data, "-lease-ttl", "6s", "-log-level", "warn")
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + h.addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if i > 300 {
			h.t.Fatal("the hub did not become ready within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *killableHub) kill() {
	h.cmd.Process.Kill()
	h.cmd.Wait()
}

// TestHubKilledUnderLoad kills the hub with SIGKILL five times while 50 agents print,
// orders arrive and designs are uploaded, starting it again each time on the same data.
// At the end every upload that was answered is whole, every design the hub lists is
// whole (an upload the kill cut short left nothing half-made), every job of every
// answered order is done, and no job went onto a printer twice.
func TestHubKilledUnderLoad(t *testing.T) {
	const agents = 50
	h := &killableHub{t: t, addr: freeAddr(t), data: t.TempDir()}
	log, err := os.Create(filepath.Join(t.TempDir(), "fabhub.log"))
	if err != nil {
		t.Fatal(err)
	}
	h.log = log
	h.start()
	t.Cleanup(h.kill)
	base := "http://" + h.addr
	api := hubAPI{t: t, base: base}
	api.call("POST", "/api/v1/users", map[string]string{"handle": "ada", "email": "ada@example.org", "password": "correct horse battery"}, nil)
	var tok struct{ Token struct{ Secret string } }
	api.call("POST", "/api/v1/tokens", map[string]string{"handle": "ada", "password": "correct horse battery", "name": "e2e"}, &tok)
	api.token = tok.Token.Secret

	// upload publishes one design of one mesh; it reports the slug when answered.
	client := &http.Client{Timeout: 20 * time.Second}
	upload := func(title string, mesh []byte) (string, error) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		mw.WriteField("meta", fmt.Sprintf(`{"title":%q,"license":"CC0-1.0"}`, title))
		fw, _ := mw.CreateFormFile("files", "part.stl")
		fw.Write(mesh)
		mw.Close()
		req, _ := http.NewRequest("POST", base+"/api/v1/designs", &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+api.token)
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var created struct{ Design struct{ Slug string } }
		if err := jsonDecode(resp, &created); err != nil || resp.StatusCode != 201 {
			return "", fmt.Errorf("upload: %d %v", resp.StatusCode, err)
		}
		return created.Design.Slug, nil
	}
	if _, err := upload("Cube", meshtest.Binary("cube", meshtest.Cube([3]float32{0, 0, 0}, 20))); err != nil {
		t.Fatal(err)
	}
	if code := api.call("POST", "/api/v1/labs", map[string]any{"slug": "e2e", "name": "E2E lab"}, nil); code != 201 {
		t.Fatalf("lab: %d", code)
	}
	var jt struct {
		JoinToken struct{ Secret string } `json:"join_token"`
	}
	if code := api.call("POST", "/api/v1/labs/e2e/join-tokens", map[string]string{"name": "farm"}, &jt); code != 201 {
		t.Fatalf("join token: %d", code)
	}
	states := make([]string, agents)
	for i := range agents {
		states[i] = filepath.Join(t.TempDir(), fmt.Sprint("agent", i))
		out, err := exec.Command(filepath.Join(binDir, "fabagent"), "register", "--hub", base, "--join-token", jt.JoinToken.Secret,
			"--name", fmt.Sprint("sim ", i), "--state", states[i], "--process", "fdm", "--build-volume", "200x200x200").CombinedOutput()
		if err != nil {
			t.Fatalf("register: %v %s", err, out)
		}
		start(t, "fabagent", "run", "--state", states[i], "--driver", "sim", "--sim-speed", "300", "--sim-seconds", "300", "--log-level", "warn")
	}

	// The load: orders of three cubes and uploads of distinct rings, until stopped.
	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	var orders []string              // answered orders
	uploads := map[string][32]byte{} // answered uploads: slug -> the mesh's hash
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			var order struct{ Order struct{ ID string } }
			if code := callQuiet(client, base, api.token, "POST", "/api/v1/orders", map[string]any{"lab": "e2e", "design": "cube", "quantity": 3}, &order); code == 201 {
				mu.Lock()
				orders = append(orders, order.Order.ID)
				mu.Unlock()
			}
			time.Sleep(150 * time.Millisecond)
		}
	}()
	for w := range 2 {
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				mesh := meshtest.Binary("ring", meshtest.Torus(64, 32, 20+float64(w)+float64(i)/100, 4))
				if slug, err := upload(fmt.Sprintf("Ring %d-%d", w, i), mesh); err == nil {
					mu.Lock()
					uploads[slug] = sha256.Sum256(mesh)
					mu.Unlock()
				}
			}
		}()
	}
	for range 5 {
		time.Sleep(3 * time.Second)
		h.kill()
		time.Sleep(200 * time.Millisecond)
		h.start()
	}
	time.Sleep(2 * time.Second)
	stop()
	wg.Wait()

	// Every job of every answered order is done.
	mu.Lock()
	defer mu.Unlock()
	if len(orders) < 20 || len(uploads) < 20 {
		t.Fatalf("only %d orders and %d uploads were answered: the load did not run", len(orders), len(uploads))
	}
	jobs := map[string]bool{}
	deadline := time.Now().Add(3 * time.Minute)
	for _, id := range orders {
		for {
			var view struct{ Jobs []struct{ ID, State string } }
			api.call("GET", "/api/v1/orders/"+id, nil, &view)
			done := 0
			for _, j := range view.Jobs {
				jobs[j.ID] = true
				if j.State == "done" {
					done++
				}
			}
			if done == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s: %+v, want 3 jobs done", id, view.Jobs)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// No job went onto a printer twice, and every job that is done went onto one.
	starts := map[string]int{}
	for _, s := range states {
		for _, id := range simStarts(t, s) {
			starts[id]++
		}
	}
	for id, n := range starts {
		if n != 1 {
			t.Errorf("job %s was printed %d times", id, n)
		}
	}
	for id := range jobs {
		if starts[id] != 1 {
			t.Errorf("job %s is done but was printed %d times", id, starts[id])
		}
	}

	// Every answered upload is there and whole; every design listed is whole.
	listed := map[string]bool{}
	for cursor := ""; ; {
		var page struct {
			Designs    []struct{ Slug string } `json:"designs"`
			NextCursor string                  `json:"next_cursor"`
		}
		api.call("GET", "/api/v1/designs?owner=ada&limit=100&cursor="+url.QueryEscape(cursor), nil, &page)
		for _, d := range page.Designs {
			listed[d.Slug] = true
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	for slug, sum := range uploads {
		if !listed[slug] {
			t.Errorf("upload %s was answered 201 but the hub does not list it", slug)
		}
		var body []byte
		if code := callRaw(client, base, "GET", "/api/v1/designs/"+slug+"/versions/1/files/part.stl", &body); code != 200 || sha256.Sum256(body) != sum {
			t.Errorf("upload %s: %d, %d bytes hashing to %s, want %s", slug, code, len(body), hexSum(body), hex.EncodeToString(sum[:]))
		}
	}
	for slug := range listed {
		var v struct {
			Version struct {
				Files []struct{ Path, SHA256 string }
			}
		}
		api.call("GET", "/api/v1/designs/"+slug+"/versions/1", nil, &v)
		if len(v.Version.Files) == 0 {
			t.Errorf("design %s is listed with no files", slug)
		}
		for _, f := range v.Version.Files {
			var body []byte
			if code := callRaw(client, base, "GET", "/api/v1/designs/"+slug+"/versions/1/files/"+f.Path, &body); code != 200 || hexSum(body) != f.SHA256 {
				t.Errorf("design %s file %s: %d, hashing to %s, want %s", slug, f.Path, code, hexSum(body), f.SHA256)
			}
		}
	}
	t.Logf("%d orders, %d jobs, %d uploads answered; %d designs listed; 5 hub kills", len(orders), len(jobs), len(uploads), len(listed))
}

// callQuiet is hubAPI.call for goroutines: a failed request (the hub is being killed)
// is status 0, not a test failure.
func callQuiet(c *http.Client, base, token, method, path string, body, out any) int {
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, base+path, bytes.NewReader(j))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if jsonDecode(resp, out) != nil {
		return 0
	}
	return resp.StatusCode
}

// callRaw reads a whole answer into *out.
func callRaw(c *http.Client, base, method, path string, out *[]byte) int {
	req, _ := http.NewRequest(method, base+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if *out, err = io.ReadAll(resp.Body); err != nil {
		return 0
	}
	return resp.StatusCode
}

func jsonDecode(resp *http.Response, out any) error {
	b, err := io.ReadAll(resp.Body)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func hexSum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
