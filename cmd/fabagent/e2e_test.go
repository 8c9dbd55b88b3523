package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
	"github.com/fabcommons/fabcommons/fabrication/agent"
	"github.com/fabcommons/fabcommons/fabrication/agent/protocoltest"
	"github.com/fabcommons/fabcommons/storage/externaltest"
)

var binDir string

// TestMain builds fabhub and fabagent once for the end-to-end test.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fabagent-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for _, cmd := range []string{"fabhub", "fabagent"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "../"+cmd).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", cmd, err, out)
			os.Exit(2)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type hubAPI struct {
	t     *testing.T
	base  string
	token string
}

func (h hubAPI) call(method, path string, body any, out any) int {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, h.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func start(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	log, _ := os.Create(filepath.Join(t.TempDir(), name+".log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	return cmd
}

// startHub starts a fabhub process with extra flags and waits until it is ready.
func startHub(t *testing.T, args ...string) string {
	t.Helper()
	addr := freeAddr(t)
	start(t, "fabhub", append([]string{"-addr", addr, "-lease-ttl", "6s", "-log-level", "warn"}, args...)...)
	base := "http://" + addr
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/readyz"); err == nil && resp.StatusCode == 200 {
			break
		}
		if i > 100 {
			t.Fatal("the hub did not become ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return base
}

// newHub starts a real fabhub with a user, a published 20 mm cube and a lab "e2e".
func newHub(t *testing.T, args ...string) (hubAPI, string) {
	t.Helper()
	if len(args) == 0 {
		args = []string{"-data", t.TempDir()}
	}
	base := startHub(t, args...)
	api := hubAPI{t: t, base: base}
	api.call("POST", "/api/v1/users", map[string]string{"handle": "ada", "email": "ada@example.org", "password": "correct horse battery"}, nil)
	var tok struct{ Token struct{ Secret string } }
	api.call("POST", "/api/v1/tokens", map[string]string{"handle": "ada", "password": "correct horse battery", "name": "e2e"}, &tok)
	api.token = tok.Token.Secret

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("meta", `{"title":"Cube","license":"CC0-1.0"}`)
	fw, _ := mw.CreateFormFile("files", "cube.stl")
	fw.Write(meshtest.Binary("cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 20)))
	mw.Close()
	req, _ := http.NewRequest("POST", base+"/api/v1/designs", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+api.token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("publish: %v %v", resp, err)
	}
	if code := api.call("POST", "/api/v1/labs", map[string]any{"slug": "e2e", "name": "E2E lab"}, nil); code != 201 {
		t.Fatalf("lab: %d", code)
	}
	return api, base
}

// waitFor polls cond (a real process does the work; there is no signal to wait on)
// until it holds or the time is up.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s did not happen", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEndToEnd: a real hub and three agents make an order of 10 jobs; one agent is
// killed with SIGKILL mid-print and started again, and no job is printed twice.
func TestEndToEnd(t *testing.T) {
	api, base := newHub(t)

	type agentProc struct {
		state string
		cmd   *exec.Cmd
	}
	var agents []*agentProc
	runArgs := func(state string) []string {
		return []string{"run", "--state", state, "--driver", "sim", "--sim-speed", "100", "--sim-seconds", "300", "--log-level", "warn"}
	}
	for i := range 3 {
		var m struct {
			EnrollmentCode string `json:"enrollment_code"`
		}
		api.call("POST", "/api/v1/labs/e2e/machines", map[string]any{"name": fmt.Sprint("sim ", i), "process": "fdm",
			"build_volume": map[string]float64{"x": 200, "y": 200, "z": 200}}, &m)
		state := filepath.Join(t.TempDir(), fmt.Sprint("agent", i))
		out, err := exec.Command(filepath.Join(binDir, "fabagent"), "enroll", "--hub", base, "--code", m.EnrollmentCode, "--state", state).CombinedOutput()
		if err != nil {
			t.Fatalf("enroll: %v %s", err, out)
		}
		if fi, err := os.Stat(filepath.Join(state, "token")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("token file: %v %v, want mode 0600", fi, err)
		}
		agents = append(agents, &agentProc{state: state, cmd: start(t, "fabagent", runArgs(state)...)})
	}
	// A second use of a code is refused with a one-line message.
	out, err := exec.Command(filepath.Join(binDir, "fabagent"), "enroll", "--hub", base, "--code", "AAAA-BBBB-CCCC-DDDD", "--state", t.TempDir()).CombinedOutput()
	if err == nil || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || !strings.Contains(string(out), "fabagent: join http") {
		t.Fatalf("a bad code: got %v %q, want one line", err, out)
	}

	var order struct {
		Order struct{ ID string }
		Jobs  []struct{ ID string }
	}
	if code := api.call("POST", "/api/v1/orders", map[string]any{"lab": "e2e", "design": "cube", "quantity": 10}, &order); code != 201 {
		t.Fatalf("order: %d", code)
	}

	// Kill an agent in the middle of a print, then start it again.
	deadline := time.Now().Add(30 * time.Second)
	var victim *agentProc
	var victimJob string
	for victim == nil && time.Now().Before(deadline) {
		for _, a := range agents {
			j, err := agent.OpenJournal(a.state)
			if err == nil && j.Held != nil && j.Held.Phase == agent.PhasePrinting {
				victim, victimJob = a, j.Held.Job.ID
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if victim == nil {
		t.Fatal("no agent started printing within 30 s")
	}
	victim.cmd.Process.Kill()
	victim.cmd.Wait()
	time.Sleep(500 * time.Millisecond)
	victim.cmd = start(t, "fabagent", runArgs(victim.state)...)

	// Every job reaches done.
	deadline = time.Now().Add(2 * time.Minute)
	for {
		var view struct {
			Jobs []struct{ ID, State string }
		}
		api.call("GET", "/api/v1/orders/"+order.Order.ID, nil, &view)
		done := 0
		for _, j := range view.Jobs {
			if j.State == "done" {
				done++
			}
		}
		if done == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes %d of 10 jobs are done: %+v", done, view.Jobs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Each job went onto a (simulated) printer exactly once.
	starts := map[string]int{}
	for _, a := range agents {
		for _, id := range simStarts(t, a.state) {
			starts[id]++
		}
	}
	if len(starts) != 10 {
		t.Fatalf("got %d distinct jobs printed, want 10", len(starts))
	}
	for id, n := range starts {
		if n != 1 {
			t.Fatalf("job %s was printed %d times", id, n)
		}
	}
	var victimView struct {
		Job struct {
			Attempts int
			State    string
		}
	}
	api.call("GET", "/api/v1/jobs/"+victimJob, nil, &victimView)
	if victimView.Job.State != "done" || victimView.Job.Attempts != 1 {
		t.Fatalf("the killed agent's job: got %+v, want done on its first attempt", victimView.Job)
	}
}

// simStarts lists the job of every print a sim printer started, from its log of
// "<job> <attempt>" lines.
func simStarts(t *testing.T, state string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "sim-starts.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var jobs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			jobs = append(jobs, f[0])
		}
	}
	return jobs
}

// curaFlags finds CuraEngine and Cura's definitions (installed by scripts/test.sh); the
// test skips without them and says why, and fails under CI=true.
func curaFlags(t *testing.T) []string {
	res := os.Getenv("FAB_TEST_CURA_RESOURCES")
	_, err := exec.LookPath("CuraEngine")
	if res == "" || err != nil {
		why := "CuraEngine or FAB_TEST_CURA_RESOURCES missing (scripts/test.sh installs cura-engine and extracts Cura's definitions)"
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	return []string{"--slicer", "cura", "--cura-definition", "creality_ender3",
		"--cura-search-path", filepath.Join(res, "definitions") + ":" + filepath.Join(res, "extruders")}
}

// TestMoonrakerAgent: an agent joins with the lab's join token, takes the design's STL,
// slices it with CuraEngine, uploads the G-code to a Moonraker (protocol test server)
// with its checksum, is stopped with SIGTERM mid-print (it says so and exits), comes
// back, and reports the print done with the slicer's estimate on the job.
func TestMoonrakerAgent(t *testing.T) {
	cura := curaFlags(t)
	api, base := newHub(t)
	printer := protocoltest.NewMoonraker("moon-key")
	defer printer.Close()
	var jt struct {
		JoinToken struct{ Secret string } `json:"join_token"`
	}
	if code := api.call("POST", "/api/v1/labs/e2e/join-tokens", map[string]any{"name": "shelf"}, &jt); code != 201 {
		t.Fatalf("join token: %d", code)
	}
	config := filepath.Join(t.TempDir(), "fabagent.toml")
	os.WriteFile(config, []byte(fmt.Sprintf("hub = %q\ndriver = \"moonraker\"\nmoonraker-url = %q\napi-key = \"moon-key\"\nmaterials = [\"PLA\", \"PETG\"]\nbuild-volume = \"220x220x250\"\nlog-level = \"info\"\n", base, printer.URL)), 0o600)
	state := t.TempDir()
	args := append([]string{"run", "--config", config, "--state", state, "--join-token", jt.JoinToken.Secret, "--name", "voron"}, cura...)
	agentCmd := start(t, "fabagent", args...)

	var order struct {
		Jobs []struct{ ID string }
	}
	if code := api.call("POST", "/api/v1/orders", map[string]any{"lab": "e2e", "design": "cube", "quantity": 1}, &order); code != 201 || len(order.Jobs) != 1 {
		t.Fatalf("order: %d %+v", code, order)
	}
	job := order.Jobs[0].ID
	waitFor(t, 30*time.Second, "the G-code reaching Moonraker", func() bool {
		_, ok := printer.Uploaded("fab-" + job + "-a1.gcode")
		return ok
	})
	gcode, _ := printer.Uploaded("fab-" + job + "-a1.gcode")
	if !bytes.Contains(gcode, []byte("G1 ")) || bytes.HasPrefix(gcode, []byte("solid")) {
		t.Fatalf("the printer got %d bytes that are not G-code", len(gcode))
	}
	printer.Advance(0.3)

	agentCmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- agentCmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM the agent exited with %v, want 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the agent did not exit within 15 s of SIGTERM")
	}
	type jobView struct {
		Job struct {
			State    string
			Estimate *struct {
				Seconds    float64 `json:"seconds"`
				FilamentMM float64 `json:"filament_mm"`
			}
			Events []struct{ Message string }
		}
	}
	var v jobView
	api.call("GET", "/api/v1/jobs/"+job, nil, &v)
	said := false
	for _, e := range v.Job.Events {
		said = said || strings.Contains(e.Message, "agent stopping")
	}
	if v.Job.State != "printing" || !said {
		t.Fatalf("after SIGTERM: job %s with events %+v, want printing and the agent's farewell", v.Job.State, v.Job.Events)
	}

	start(t, "fabagent", args...)
	printer.Complete()
	waitFor(t, 30*time.Second, "the job reaching done", func() bool {
		api.call("GET", "/api/v1/jobs/"+job, nil, &v)
		return v.Job.State == "done"
	})
	if v.Job.Estimate == nil || v.Job.Estimate.Seconds <= 0 || v.Job.Estimate.FilamentMM <= 0 {
		t.Fatalf("the job's estimate: got %+v, want CuraEngine's print time and filament", v.Job.Estimate)
	}
	if printer.Cancels() != 0 {
		t.Fatalf("the printer saw %d cancels, want 0", printer.Cancels())
	}
	t.Logf("sliced estimate on the hub: %.0f s, %.0f mm", v.Job.Estimate.Seconds, v.Job.Estimate.FilamentMM)
}

// TestDemoLabScript runs what docker-compose's demo-setup runs, against a real hub, and
// joins an agent with the token it leaves.
func TestDemoLabScript(t *testing.T) {
	for _, tool := range []string{"curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing; scripts/test.sh installs it", tool)
			}
			t.Skipf("%s is missing; scripts/test.sh installs it", tool)
		}
	}
	_, base := newHub(t)
	out := filepath.Join(t.TempDir(), "join-token")
	script := exec.Command("sh", "../../scripts/demo-lab.sh", base, out)
	script.Env = append(os.Environ(), "FAB_DEMO_PASSWORD=demo password for tests")
	if b, err := script.CombinedOutput(); err != nil {
		t.Fatalf("demo-lab.sh: %v\n%s", err, b)
	}
	token, err := os.ReadFile(out)
	if err != nil || !strings.HasPrefix(string(token), "fab_") {
		t.Fatalf("the join token file: %q, %v", token, err)
	}
	again := exec.Command("sh", "../../scripts/demo-lab.sh", base, out)
	again.Env = script.Env
	if b, err := again.CombinedOutput(); err != nil {
		t.Fatalf("a second run: %v\n%s", err, b)
	}
	state := t.TempDir()
	b, err := exec.Command(filepath.Join(binDir, "fabagent"), "register", "--hub", base, "--join-token", strings.TrimSpace(string(token)), "--name", "sim-1", "--state", state).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "joined lab demo") {
		t.Fatalf("register: %v %s", err, b)
	}
}

// TestTwoHubProcesses: two fabhub processes share one database (a SQLite file; the
// MongoDB-wire server), each with three sim agents; an order of 30 jobs is made with
// every job printed exactly once.
func TestTwoHubProcesses(t *testing.T) {
	for _, backend := range []string{"sqlite", "mongodb"} {
		t.Run(backend, func(t *testing.T) {
			data := t.TempDir()
			args := []string{"-data", data}
			if backend == "mongodb" {
				args = append(args, "-db", externaltest.MongoDBURIFor(t, externaltest.UniqueName("twohubs_")))
			}
			api, first := newHub(t, args...)
			second := startHub(t, args...) // same data dir: same SQLite file (or the same MongoDB database) and blob folder
			var states []string
			for i := range 6 {
				var m struct {
					EnrollmentCode string `json:"enrollment_code"`
				}
				api.call("POST", "/api/v1/labs/e2e/machines", map[string]any{"name": fmt.Sprint("sim ", i), "process": "fdm",
					"build_volume": map[string]float64{"x": 200, "y": 200, "z": 200}}, &m)
				hub := first
				if i%2 == 1 {
					hub = second
				}
				state := filepath.Join(t.TempDir(), fmt.Sprint("agent", i))
				if out, err := exec.Command(filepath.Join(binDir, "fabagent"), "enroll", "--hub", hub, "--code", m.EnrollmentCode, "--state", state).CombinedOutput(); err != nil {
					t.Fatalf("enroll: %v %s", err, out)
				}
				start(t, "fabagent", "run", "--state", state, "--hub", hub, "--driver", "sim", "--sim-speed", "300", "--sim-seconds", "150", "--log-level", "warn")
				states = append(states, state)
			}
			var order struct {
				Order struct{ ID string }
			}
			if code := api.call("POST", "/api/v1/orders", map[string]any{"lab": "e2e", "design": "cube", "quantity": 30}, &order); code != 201 {
				t.Fatalf("order: %d", code)
			}
			waitFor(t, 3*time.Minute, "all 30 jobs done", func() bool {
				var view struct{ Jobs []struct{ State string } }
				api.call("GET", "/api/v1/orders/"+order.Order.ID, nil, &view)
				done := 0
				for _, j := range view.Jobs {
					if j.State == "done" {
						done++
					}
				}
				return done == 30
			})
			starts := map[string]int{}
			perAgent := []int{}
			for _, st := range states {
				ids := simStarts(t, st)
				perAgent = append(perAgent, len(ids))
				for _, id := range ids {
					starts[id]++
				}
			}
			for id, n := range starts {
				if n != 1 {
					t.Fatalf("job %s was printed %d times", id, n)
				}
			}
			if len(starts) != 30 {
				t.Fatalf("%d distinct jobs printed, want 30", len(starts))
			}
			t.Logf("jobs per agent (hubs alternate): %v", perAgent)
		})
	}
}

// TestCreditsEndToEnd: a lab that requires credits, a sim agent, and a requester who
// can afford two jobs but not three. The third is refused; two print and are paid from
// the hub's own record of the print; a print that fails costs nothing; the ledger
// verifies.
func TestCreditsEndToEnd(t *testing.T) {
	api, base := newHub(t, "-data", t.TempDir(), "-credit-floor", "0")
	// ada (the first account, so a site admin) opens a lab where a cm³ takes a minute:
	// the 20 mm cube holds 8 minutes.
	if code := api.call("POST", "/api/v1/labs", map[string]any{"slug": "paid", "name": "Paid lab",
		"policy": map[string]any{"credits": "required", "minutes_per_cm3": 1}}, nil); code != 201 {
		t.Fatalf("lab: %d", code)
	}
	bob := hubAPI{t: t, base: base}
	bob.call("POST", "/api/v1/users", map[string]string{"handle": "bob", "email": "bob@example.org", "password": "correct horse battery"}, nil)
	var tok struct{ Token struct{ Secret string } }
	bob.call("POST", "/api/v1/tokens", map[string]string{"handle": "bob", "password": "correct horse battery", "name": "e2e"}, &tok)
	bob.token = tok.Token.Secret
	// The lab may go 1,000 minutes below zero; its owner grants bob 20.
	if code := api.call("PUT", "/api/v1/ledger/accounts/lab:paid/floor", map[string]int{"floor": -1000}, nil); code != 200 {
		t.Fatalf("floor: %d", code)
	}
	if code := api.call("POST", "/api/v1/ledger/transfers", map[string]any{"from": "lab:paid", "to": "user:bob", "minutes": 20, "memo": "welcome"}, nil); code != 201 {
		t.Fatalf("grant: %d", code)
	}
	account := func(name string) (a struct{ Balance, Held, Available, Floor, Given, Used int64 }) {
		if code := api.call("GET", "/api/v1/ledger/accounts/"+name, nil, &a); code != 200 {
			t.Fatalf("account %s: %d", name, code)
		}
		return a
	}
	order := func(wantCode int) []string {
		var out struct {
			Jobs  []struct{ ID string }
			Error struct{ Code, Message string }
		}
		if code := bob.call("POST", "/api/v1/orders", map[string]any{"lab": "paid", "design": "cube"}, &out); code != wantCode {
			t.Fatalf("order: got %d %+v, want %d", code, out.Error, wantCode)
		}
		if wantCode == 409 && (out.Error.Code != "insufficient_credit" || !strings.Contains(out.Error.Message, "needs 8")) {
			t.Fatalf("a third order: got %+v", out.Error)
		}
		ids := []string{}
		for _, j := range out.Jobs {
			ids = append(ids, j.ID)
		}
		return ids
	}
	var q struct {
		Minutes, Available int64
		Fits               bool
	}
	if code := bob.call("POST", "/api/v1/orders/quote", map[string]any{"lab": "paid", "design": "cube"}, &q); code != 200 || q.Minutes != 8 || q.Available != 20 || !q.Fits {
		t.Fatalf("quote: %d %+v", code, q)
	}
	jobs := append(order(201), order(201)...)
	order(409)
	if a := account("user:bob"); a.Balance != 20 || a.Held != 16 || a.Available != 4 {
		t.Fatalf("bob with two jobs held: %+v", a)
	}

	agentFor := func(name string, failRate string) *exec.Cmd {
		var m struct {
			EnrollmentCode string `json:"enrollment_code"`
		}
		api.call("POST", "/api/v1/labs/paid/machines", map[string]any{"name": name, "process": "fdm",
			"build_volume": map[string]float64{"x": 200, "y": 200, "z": 200}}, &m)
		state := filepath.Join(t.TempDir(), name)
		if out, err := exec.Command(filepath.Join(binDir, "fabagent"), "enroll", "--hub", base, "--code", m.EnrollmentCode, "--state", state).CombinedOutput(); err != nil {
			t.Fatalf("enroll: %v %s", err, out)
		}
		return start(t, "fabagent", "run", "--state", state, "--driver", "sim", "--sim-speed", "100", "--sim-seconds", "300",
			"--sim-fail-rate", failRate, "--log-level", "warn")
	}
	jobState := func(id string) string {
		var v struct{ Job struct{ State string } }
		api.call("GET", "/api/v1/jobs/"+id, nil, &v)
		return v.Job.State
	}
	good := agentFor("good", "0")
	waitFor(t, time.Minute, "both jobs done", func() bool { return jobState(jobs[0]) == "done" && jobState(jobs[1]) == "done" })
	good.Process.Signal(syscall.SIGTERM)
	good.Wait()
	// A job's settlement is written by the ledger's batch, just after the job is done.
	waitFor(t, time.Minute, "both prints settled", func() bool { return account("user:bob").Held == 0 })
	// Each print took seconds: a started minute counts whole, so each cost 1 minute.
	if a := account("user:bob"); a.Balance != 18 || a.Held != 0 || a.Available != 18 || a.Used != 2 {
		t.Fatalf("bob after two prints: %+v", a)
	}
	if a := account("lab:paid"); a.Balance != -18 || a.Given != 2 || a.Floor != -1000 {
		t.Fatalf("the lab after two prints: %+v", a)
	}

	// A print that fails (on every try) costs nothing, and lets its hold go.
	failing := order(201)
	agentFor("flaky", "1")
	waitFor(t, time.Minute, "the flaky job failed", func() bool { return jobState(failing[0]) == "failed" })
	waitFor(t, 10*time.Second, "its hold released", func() bool { return account("user:bob").Held == 0 })
	if a := account("user:bob"); a.Balance != 18 || a.Available != 18 || a.Used != 2 {
		t.Fatalf("bob after a failed print: %+v", a)
	}
	var v struct {
		OK           bool
		ChainOK      bool `json:"chain_ok"`
		Sum, Checked int64
	}
	if code := api.call("GET", "/api/v1/ledger/verify", nil, &v); code != 200 || !v.OK || !v.ChainOK || v.Sum != 0 || v.Checked < 7 {
		t.Fatalf("verify: %d %+v", code, v)
	}
	var moves struct {
		Transfers []struct {
			Kind    string
			Minutes int64
			Job     string
		}
	}
	api.call("GET", "/api/v1/ledger/transfers?account=user:bob", nil, &moves)
	if len(moves.Transfers) != 3 || moves.Transfers[0].Kind != "settle" || moves.Transfers[0].Minutes != 1 || moves.Transfers[2].Kind != "grant" {
		t.Fatalf("bob's transfers: %+v", moves.Transfers)
	}
}
