package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type labFixture struct {
	bundle
	owner, maker map[string]string // bearer headers
	machine      map[string]string // the machine token's header
	machineID    string
	clock        *fakeClock
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// newLab: ada owns lab "makerspace" with one FDM machine enrolled; grace is a maker
// who published a spool holder (a 20 mm cube and a 76 mm ring).
func newLab(t *testing.T, policy fabrication.Policy) labFixture {
	t.Helper()
	return newLabWith(t, policy, Config{PollWait: 200 * time.Millisecond, PollRecheck: 20 * time.Millisecond})
}

// newLabWith is newLab with the web settings given.
func newLabWith(t *testing.T, policy fabrication.Policy, cfg Config) labFixture {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)}
	b := setupAll(t, cfg, catalog.Limits{}, fabrication.Options{LeaseTTL: time.Minute, Clock: clock.Now})
	f := labFixture{bundle: b, owner: login(t, b, "ada"), maker: login(t, b, "grace"), clock: clock}
	publish(t, b, f.maker, map[string]any{"title": "Spool holder", "license": "CERN-OHL-S-2.0"}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/labs", header: f.owner, body: map[string]any{
		"slug": "makerspace", "name": "Makerspace", "location": "Berlin", "timezone": "Europe/Berlin", "policy": policy}}).want(t, 201, "")
	f.machineID, f.machine = f.addMachine(t, "makerspace", "Prusa MK4", 250, 210, 220)
	return f
}

func (f labFixture) addMachine(t *testing.T, lab, name string, x, y, z float64) (string, map[string]string) {
	t.Helper()
	r := f.do(t, call{method: "POST", path: "/api/v1/labs/" + lab + "/machines", header: f.owner, body: map[string]any{
		"name": name, "process": "fdm", "build_volume": map[string]float64{"x": x, "y": y, "z": z}, "nozzle": 0.4, "materials": []string{"PLA", "PETG"}, "driver": "sim"}})
	r.want(t, 201, "")
	code := r.json["enrollment_code"].(string)
	r = f.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": code}})
	r.want(t, 200, "")
	return r.json["machine_id"].(string), bearer(r.json["token"].(string))
}

func (f labFixture) order(t *testing.T, body map[string]any) []any {
	t.Helper()
	body["lab"] = "makerspace"
	body["design"] = "spool-holder"
	r := f.do(t, call{method: "POST", path: "/api/v1/orders", header: f.maker, body: body})
	r.want(t, 201, "")
	return r.json["jobs"].([]any)
}

type claimed struct{ id, lease, file string }

func (f labFixture) poll(t *testing.T, machine map[string]string, held ...map[string]any) (claimed, reply) {
	t.Helper()
	if held == nil {
		held = []map[string]any{}
	}
	r := f.do(t, call{method: "POST", path: "/api/v1/agent/poll", header: machine, body: map[string]any{"protocol": agentapi.Protocol, "state": "idle", "jobs": held, "wait_s": 1}})
	if r.status == http.StatusNoContent {
		return claimed{}, r
	}
	r.want(t, 200, "")
	job, _ := r.json["job"].(map[string]any)
	if job == nil {
		return claimed{}, r
	}
	return claimed{id: job["id"].(string), lease: r.json["lease"].(string), file: r.json["file_url"].(string)}, r
}

func (f labFixture) event(t *testing.T, machine map[string]string, c claimed, kind string, extra map[string]any) reply {
	t.Helper()
	body := map[string]any{"lease": c.lease, "kind": kind}
	for k, v := range extra {
		body[k] = v
	}
	return f.do(t, call{method: "POST", path: "/api/v1/agent/jobs/" + c.id + "/events", header: machine, body: body})
}

func (f labFixture) jobState(t *testing.T, id string) map[string]any {
	t.Helper()
	r := f.do(t, call{method: "GET", path: "/api/v1/jobs/" + id})
	r.want(t, 200, "")
	return r.json["job"].(map[string]any)
}

func TestEnrollmentAndTokens(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	r := f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/machines", header: f.owner, body: map[string]any{
		"name": "Laser", "process": "laser", "build_volume": map[string]float64{"x": 600, "y": 400, "z": 0}}})
	r.want(t, 201, "")
	code := r.json["enrollment_code"].(string)
	f.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": strings.ToLower(code)}}).want(t, 200, "")
	f.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": code}}).want(t, 403, "forbidden")
	f.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": "AAAA-BBBB"}}).want(t, 403, "forbidden")
	// Only owners and operators add machines; machine and personal tokens do not mix.
	f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/machines", header: f.maker, body: map[string]any{
		"name": "Mine", "process": "fdm", "build_volume": map[string]float64{"x": 1, "y": 1, "z": 1}}}).want(t, 403, "forbidden")
	f.do(t, call{method: "GET", path: "/api/v1/me", header: f.machine}).want(t, 401, "unauthenticated")
	f.do(t, call{method: "POST", path: "/api/v1/agent/poll", header: f.owner, body: map[string]any{"protocol": agentapi.Protocol}}).want(t, 401, "unauthenticated")
	f.do(t, call{method: "POST", path: "/api/v1/agent/poll", header: f.machine, body: map[string]any{"protocol": 99}}).want(t, 426, "unsupported_protocol")

	// A join token registers machines; the lab's policy can hold them for approval.
	r = f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/join-tokens", header: f.owner, body: map[string]string{"name": "rack"}})
	r.want(t, 201, "")
	join := r.json["join_token"].(map[string]any)["secret"].(string)
	caps := map[string]any{"process": "fdm", "build_volume": []float64{220, 220, 250}, "materials": []string{"PLA"}, "driver": "sim"}
	r = f.do(t, call{method: "POST", path: "/api/v1/agent/register", body: map[string]any{"join_token": join, "name": "Ender 1", "capabilities": caps}})
	r.want(t, 201, "")
	if r.json["approved"] != true || !strings.HasPrefix(r.json["token"].(string), "fab_m_") {
		t.Fatalf("register: got %s", r.body)
	}
	tokens := f.do(t, call{method: "GET", path: "/api/v1/labs/makerspace/join-tokens", header: f.owner})
	id := tokens.json["join_tokens"].([]any)[0].(map[string]any)["id"].(string)
	f.do(t, call{method: "DELETE", path: "/api/v1/labs/makerspace/join-tokens/" + id, header: f.owner}).want(t, 204, "")
	f.do(t, call{method: "POST", path: "/api/v1/agent/register", body: map[string]any{"join_token": join, "name": "Ender 2", "capabilities": caps}}).want(t, 403, "forbidden")
	if strings.Contains(f.logs.String(), join) || strings.Contains(f.logs.String(), code) {
		t.Fatal("a join token or enrolment code reached the log")
	}
}

func TestOrderToDone(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	jobs := f.order(t, map[string]any{"files": []string{"parts/base.stl"}, "quantity": 2, "material": "PETG"})
	if len(jobs) != 2 {
		t.Fatalf("got %d jobs, want 2", len(jobs))
	}
	c, _ := f.poll(t, f.machine)
	if c.id == "" {
		t.Fatal("no job offered to an idle machine that fits")
	}
	// The file, to the lease holder only.
	r := f.do(t, call{method: "GET", path: c.file, header: merge(f.machine, map[string]string{"X-Fab-Lease": c.lease})})
	r.want(t, 200, "")
	if string(r.body) != string(cubeSTL) {
		t.Fatalf("file: got %d bytes, want the cube", len(r.body))
	}
	f.do(t, call{method: "GET", path: c.file, header: merge(f.machine, map[string]string{"X-Fab-Lease": "fab_l_wrong"})}).want(t, 409, "stale_lease")
	// While it holds a job the machine gets no second one.
	if second, _ := f.poll(t, f.machine, map[string]any{"id": c.id, "lease": c.lease, "state": "starting"}); second.id != "" {
		t.Fatalf("a busy machine got a second job %s", second.id)
	}
	f.event(t, f.machine, c, "started", nil).want(t, 200, "")
	r = f.event(t, f.machine, c, "progress", map[string]any{"progress": 40, "message": "layer 40/100", "estimate": map[string]float64{"seconds": 1800, "filament_mm": 2500}})
	r.want(t, 200, "")
	if r.json["cancel"] != false || r.json["lease_expires_at"] == nil {
		t.Fatalf("progress reply: got %s", r.body)
	}
	if j := f.jobState(t, c.id); j["state"] != "printing" || j["progress"] != 40.0 || j["estimate"].(map[string]any)["seconds"] != 1800.0 {
		t.Fatalf("printing: got %v", j)
	}
	f.event(t, f.machine, c, "progress", map[string]any{"progress": 140}).want(t, 422, "invalid")
	f.event(t, f.machine, c, "finished", nil).want(t, 200, "")
	j := f.jobState(t, c.id)
	if j["state"] != "done" {
		t.Fatalf("after finished: got %v", j["state"])
	}
	var kinds []string
	for _, e := range j["events"].([]any) {
		kinds = append(kinds, e.(map[string]any)["kind"].(string))
	}
	if got := strings.Join(kinds, ","); got != "queued,assigned,printing,progress,done" {
		t.Fatalf("event log: got %s", got)
	}
	f.event(t, f.machine, c, "progress", nil).want(t, 409, "stale_lease") // the lease ended with the job
	next, _ := f.poll(t, f.machine)
	if next.id == "" || next.id == c.id {
		t.Fatalf("the second copy was not offered: %+v", next)
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestOtherLabsMachineIsForbidden(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	f.do(t, call{method: "POST", path: "/api/v1/labs", header: f.maker, body: map[string]any{"slug": "garage", "name": "Garage"}}).want(t, 201, "")
	r := f.do(t, call{method: "POST", path: "/api/v1/labs/garage/machines", header: f.maker, body: map[string]any{
		"name": "Garage printer", "process": "fdm", "build_volume": map[string]float64{"x": 300, "y": 300, "z": 300}, "materials": []string{"PLA"}}})
	code := r.json["enrollment_code"].(string)
	r = f.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": code}})
	other := bearer(r.json["token"].(string))
	f.order(t, map[string]any{"files": []string{"parts/base.stl"}})
	c, _ := f.poll(t, f.machine)
	f.event(t, other, c, "started", nil).want(t, 403, "forbidden")
	f.do(t, call{method: "GET", path: c.file, header: merge(other, map[string]string{"X-Fab-Lease": c.lease})}).want(t, 403, "forbidden")
	// A second machine of the same lab with someone else's lease: stale.
	_, second := f.addMachine(t, "makerspace", "Prusa 2", 250, 210, 220)
	f.event(t, second, c, "started", nil).want(t, 409, "stale_lease")
}

func TestLeaseExpiryNeverPrintsTwice(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	ids := f.order(t, map[string]any{"files": []string{"parts/base.stl"}, "quantity": 3})
	ctx := context.Background()

	// Claimed but never started: the lease runs out and the job goes back to the queue;
	// the old lease is stale from then on.
	a, _ := f.poll(t, f.machine)
	f.clock.Add(61 * time.Second)
	if n, err := f.fab.Scheduler.ExpireLeases(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireLeases: got %d, %v", n, err)
	}
	if s := f.jobState(t, a.id)["state"]; s != "queued" {
		t.Fatalf("unstarted job after expiry: got %v, want queued", s)
	}
	f.event(t, f.machine, a, "started", nil).want(t, 409, "stale_lease")

	// Printing when the lease runs out: unknown, never queued again by itself.
	b, _ := f.poll(t, f.machine)
	f.event(t, f.machine, b, "started", nil).want(t, 200, "")
	f.clock.Add(61 * time.Second)
	if n, _ := f.fab.Scheduler.ExpireLeases(ctx); n != 1 {
		t.Fatalf("ExpireLeases while printing: got %d, want 1", n)
	}
	if s := f.jobState(t, b.id)["state"]; s != "unknown" {
		t.Fatalf("printing job after expiry: got %v, want unknown", s)
	}
	f.clock.Add(time.Hour)
	f.fab.Scheduler.ExpireLeases(ctx)
	if s := f.jobState(t, b.id)["state"]; s != "unknown" {
		t.Fatalf("an hour later: got %v, want still unknown", s)
	}
	// While unknown the machine is occupied: nothing new is offered.
	if c, _ := f.poll(t, f.machine); c.id != "" {
		t.Fatalf("a machine with an unknown print got job %s", c.id)
	}
	// The agent comes back and reports the print finished: done, not printed again.
	f.event(t, f.machine, b, "finished", nil).want(t, 200, "")
	if s := f.jobState(t, b.id)["state"]; s != "done" {
		t.Fatalf("after the agent's report: got %v, want done", s)
	}

	// An operator resolves another unknown job.
	c, _ := f.poll(t, f.machine)
	f.event(t, f.machine, c, "started", nil).want(t, 200, "")
	f.clock.Add(2 * time.Minute)
	f.fab.Scheduler.ExpireLeases(ctx)
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + c.id + "/resolve", header: f.maker, body: map[string]string{"outcome": "requeue"}}).want(t, 403, "forbidden")
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + c.id + "/resolve", header: f.owner, body: map[string]string{"outcome": "sideways"}}).want(t, 422, "invalid")
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + c.id + "/resolve", header: f.owner, body: map[string]string{"outcome": "failed"}}).want(t, 200, "")
	states := map[string]int{}
	for _, j := range ids {
		states[f.jobState(t, j.(map[string]any)["id"].(string))["state"].(string)]++
	}
	if states["done"] != 1 || states["failed"] != 1 || states["queued"] != 1 {
		t.Fatalf("got states %v", states)
	}
}

func TestCancelReachesTheAgent(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	f.order(t, map[string]any{"files": []string{"parts/base.stl"}})
	c, _ := f.poll(t, f.machine)
	f.event(t, f.machine, c, "started", nil).want(t, 200, "")
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + c.id + "/cancel", header: f.owner}).want(t, 200, "") // an operator may
	r := f.event(t, f.machine, c, "progress", map[string]any{"progress": 10})
	r.want(t, 200, "")
	if r.json["cancel"] != true {
		t.Fatalf("the next event after cancel: got %s, want cancel true", r.body)
	}
	f.event(t, f.machine, c, "failed", map[string]any{"message": "stopped: canceled"}).want(t, 200, "")
	if s := f.jobState(t, c.id)["state"]; s != "canceled" {
		t.Fatalf("got %v, want canceled", s)
	}
	// The machine is free again.
	f.order(t, map[string]any{"files": []string{"parts/base.stl"}})
	if next, _ := f.poll(t, f.machine); next.id == "" {
		t.Fatal("the machine stayed busy after the agent let go of a canceled job")
	}
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + c.id + "/cancel", header: f.maker}).want(t, 409, "conflict")
}

func TestTooLargeStaysQueuedWithReason(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	// A printer too small for the 76 mm ring but fine for the 20 mm cube.
	small, smallToken := f.addMachine(t, "makerspace", "Mini", 50, 50, 50)
	_ = small
	f.do(t, call{method: "PATCH", path: "/api/v1/machines/" + f.machineID, header: f.owner, body: map[string]any{"maintenance": true}}).want(t, 200, "")
	jobs := f.order(t, map[string]any{"files": []string{"parts/ring.stl"}})
	id := jobs[0].(map[string]any)["id"].(string)
	r := f.do(t, call{method: "GET", path: "/api/v1/jobs/" + id})
	blocked, _ := r.json["job"].(map[string]any)["blocked"].(string)
	if !strings.Contains(blocked, "no machine in lab makerspace fits 76x76x16 mm") {
		t.Fatalf("got blocked %q", blocked)
	}
	if c, _ := f.poll(t, smallToken); c.id != "" {
		t.Fatalf("a machine too small was given the job")
	}
	lab := f.do(t, call{method: "GET", path: "/api/v1/labs/makerspace"})
	if !strings.Contains(string(lab.body), "fits 76x76x16 mm") {
		t.Fatalf("the lab's queue does not say why: %s", lab.body)
	}
	// Out of maintenance, the big printer takes it.
	f.do(t, call{method: "PATCH", path: "/api/v1/machines/" + f.machineID, header: f.owner, body: map[string]any{"maintenance": false}}).want(t, 200, "")
	if c, _ := f.poll(t, f.machine); c.id != id {
		t.Fatalf("got %q, want the ring job", c.id)
	}
}

func TestApprovalPolicyAndKits(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{ApprovalRequired: true, Submit: "public"})
	// The BOM makes a kit: 1 base + 2 rings per kit, two kits.
	jobs := f.order(t, map[string]any{"quantity": 2})
	if len(jobs) != 6 {
		t.Fatalf("got %d jobs for two kits, want 6", len(jobs))
	}
	if s := jobs[0].(map[string]any)["state"]; s != "pending_approval" {
		t.Fatalf("got %v, want pending_approval", s)
	}
	if c, _ := f.poll(t, f.machine); c.id != "" {
		t.Fatal("a pending job was offered")
	}
	first := jobs[0].(map[string]any)["id"].(string)
	second := jobs[1].(map[string]any)["id"].(string)
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + first + "/approve", header: f.maker}).want(t, 403, "forbidden")
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + first + "/approve", header: f.owner}).want(t, 200, "")
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + second + "/reject", header: f.owner, body: map[string]string{}}).want(t, 422, "invalid")
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + second + "/reject", header: f.owner, body: map[string]string{"reason": "PETG only this week"}}).want(t, 200, "")
	if c, _ := f.poll(t, f.machine); c.id != first {
		t.Fatalf("got %q, want the approved job", c.id)
	}
	for _, tc := range []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"quantity": 1000}, "invalid"},
		{map[string]any{"files": []string{"parts/none.stl"}}, "invalid"},
		{map[string]any{"bom_refs": []string{"S1"}}, "invalid"}, // a purchased line cannot be printed
		{map[string]any{"priority": 50}, "invalid"},             // only operators raise priority
		{map[string]any{"process": "weaving"}, "invalid"},
	} {
		tc.body["lab"], tc.body["design"] = "makerspace", "spool-holder"
		f.do(t, call{method: "POST", path: "/api/v1/orders", header: f.maker, body: tc.body}).want(t, 422, tc.code)
	}
	f.do(t, call{method: "POST", path: "/api/v1/orders", header: f.maker, body: map[string]any{"lab": "nowhere", "design": "spool-holder"}}).want(t, 422, "invalid")
	f.do(t, call{method: "POST", path: "/api/v1/orders", body: map[string]any{"lab": "makerspace", "design": "spool-holder"}}).want(t, 401, "unauthenticated")
}

func TestMembersOnlyLab(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{Submit: "members"})
	f.do(t, call{method: "POST", path: "/api/v1/orders", header: f.maker, body: map[string]any{"lab": "makerspace", "design": "spool-holder"}}).want(t, 403, "forbidden")
	f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/members", header: f.maker, body: map[string]string{"handle": "grace", "role": "member"}}).want(t, 403, "forbidden")
	f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/members", header: f.owner, body: map[string]string{"handle": "nobody", "role": "member"}}).want(t, 422, "invalid")
	f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/members", header: f.owner, body: map[string]string{"handle": "grace", "role": "member"}}).want(t, 200, "")
	f.do(t, call{method: "POST", path: "/api/v1/orders", header: f.maker, body: map[string]any{"lab": "makerspace", "design": "spool-holder"}}).want(t, 201, "")
}

func TestRetryableFailureRequeuesUpToLimit(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	jobs := f.order(t, map[string]any{"files": []string{"parts/base.stl"}})
	id := jobs[0].(map[string]any)["id"].(string)
	for attempt := 1; attempt <= 3; attempt++ {
		c, _ := f.poll(t, f.machine)
		if c.id != id {
			t.Fatalf("attempt %d: got %q", attempt, c.id)
		}
		f.event(t, f.machine, c, "failed", map[string]any{"message": "nozzle clog", "retryable": true}).want(t, 200, "")
	}
	j := f.jobState(t, id)
	if j["state"] != "failed" || j["attempts"] != 3.0 {
		t.Fatalf("after 3 retryable failures: got %v after %v attempts, want failed", j["state"], j["attempts"])
	}
}

func TestEventStream(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "/api/v1/events?lab=makerspace", nil)
	rec := newStreamRecorder()
	done := make(chan struct{})
	go func() { f.h.ServeHTTP(rec, req); close(done) }()
	<-rec.started
	f.order(t, map[string]any{"files": []string{"parts/base.stl"}})
	got := rec.waitFor(t, "event: job")
	if !strings.Contains(got, `"state":"queued"`) {
		t.Fatalf("stream: got %q", got)
	}
	cancel()
	<-done
	f.do(t, call{method: "GET", path: "/api/v1/events?lab=nowhere"}).want(t, 404, "not_found")
}

// streamRecorder is an http.ResponseWriter for streaming responses.
type streamRecorder struct {
	mu      sync.Mutex
	header  http.Header
	buf     strings.Builder
	started chan struct{}
	once    sync.Once
	wrote   chan struct{}
}

func newStreamRecorder() *streamRecorder {
	return &streamRecorder{header: http.Header{}, started: make(chan struct{}), wrote: make(chan struct{}, 100)}
}

func (r *streamRecorder) Header() http.Header { return r.header }
func (r *streamRecorder) WriteHeader(int)     {}
func (r *streamRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.Write(p)
	return len(p), nil
}
func (r *streamRecorder) Flush() {
	r.once.Do(func() { close(r.started) })
	select {
	case r.wrote <- struct{}{}:
	default:
	}
}

func (r *streamRecorder) waitFor(t *testing.T, s string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		got := r.buf.String()
		r.mu.Unlock()
		if strings.Contains(got, s) {
			return got
		}
		select {
		case <-r.wrote:
		case <-timeout:
			t.Fatalf("no %q in the stream within 10 s: %q", s, got)
		}
	}
}

var _ = fmt.Sprint

// A slicer estimate over the lab's maximum job hours fails the job (no retry) and tells
// the agent to stop.
func TestMaxJobHoursEnforced(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{MaxJobHours: 2})
	f.order(t, map[string]any{"files": []string{"parts/base.stl"}})
	c, _ := f.poll(t, f.machine)
	if c.id == "" {
		t.Fatal("no job claimed")
	}
	r := f.event(t, f.machine, c, "started", map[string]any{"estimate": map[string]any{"seconds": 3 * 3600, "filament_mm": 9000}})
	r.want(t, 200, "")
	if r.json["cancel"] != true {
		t.Fatalf("a 3 h estimate in a 2 h lab: got %s, want cancel: true", r.body)
	}
	j := f.jobState(t, c.id)
	if j["state"] != "failed" || !strings.Contains(j["message"].(string), "allows jobs of up to 2 h") {
		t.Fatalf("got %v: %v, want failed with the limit named", j["state"], j["message"])
	}
	// Within the limit a job goes on.
	f.order(t, map[string]any{"files": []string{"parts/base.stl"}})
	c, _ = f.poll(t, f.machine)
	r = f.event(t, f.machine, c, "started", map[string]any{"estimate": map[string]any{"seconds": 3600, "filament_mm": 3000}})
	if r.status != 200 || r.json["cancel"] == true || f.jobState(t, c.id)["state"] != "printing" {
		t.Fatalf("a 1 h estimate: got %d %s, want printing", r.status, r.body)
	}
}

// TestBusyPrinterGetsNoJob: an agent whose printer is taken by a print of its own polls
// as "busy" and gets nothing; one that found its printer taken after the claim hands
// the job back as never printed, and the next claim comes with the next attempt.
func TestBusyPrinterGetsNoJob(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	f.order(t, map[string]any{"files": []string{"parts/base.stl"}})
	poll := func(state string, held ...map[string]any) reply {
		if held == nil {
			held = []map[string]any{}
		}
		return f.do(t, call{method: "POST", path: "/api/v1/agent/poll", header: f.machine,
			body: map[string]any{"protocol": agentapi.Protocol, "state": state, "jobs": held, "wait_s": 0}})
	}
	if r := poll("busy"); r.status != http.StatusNoContent {
		t.Fatalf("a busy printer: got %d %s, want 204 and no job", r.status, r.body)
	}
	r := poll("idle")
	r.want(t, 200, "")
	job := r.json["job"].(map[string]any)
	c := claimed{id: job["id"].(string), lease: r.json["lease"].(string)}
	if job["attempt"] != 1.0 {
		t.Fatalf("first claim: got attempt %v, want 1", job["attempt"])
	}
	f.event(t, f.machine, c, "started", nil).want(t, 200, "")
	r = poll("busy", map[string]any{"id": c.id, "lease": c.lease, "state": "gone", "message": "octoprint is printing benchy.gcode"})
	r.want(t, 200, "")
	if drop, _ := r.json["drop"].([]any); len(drop) != 1 || drop[0] != c.id || r.json["job"] != nil {
		t.Fatalf("hand back: got %s, want the job dropped and no new one", r.body)
	}
	j := f.jobState(t, c.id)
	events := j["events"].([]any)
	last := events[len(events)-1].(map[string]any)["message"].(string)
	if j["state"] != "queued" || !strings.Contains(last, "benchy.gcode") || strings.Contains(last, "failed") {
		t.Fatalf("after the hand back: got %v with %q, want queued, not failed, with the agent's reason", j["state"], last)
	}
	r = poll("idle")
	r.want(t, 200, "")
	if job := r.json["job"].(map[string]any); job["id"] != c.id || job["attempt"] != 2.0 {
		t.Fatalf("second claim: got %v, want the same job at attempt 2", job)
	}
	// Hand-backs used claims, not prints: a failure after two of them is the first.
	c.lease = r.json["lease"].(string)
	poll("busy", map[string]any{"id": c.id, "lease": c.lease, "state": "gone", "message": "busy again"}).want(t, 200, "")
	r = poll("idle")
	r.want(t, 200, "")
	c.lease = r.json["lease"].(string)
	f.event(t, f.machine, c, "started", nil).want(t, 200, "")
	f.event(t, f.machine, c, "failed", map[string]any{"message": "clogged nozzle", "retryable": true}).want(t, 200, "")
	if j := f.jobState(t, c.id); j["state"] != "queued" || j["attempts"] != 3.0 || j["failures"] != 1.0 {
		t.Fatalf("after two hand-backs and a failure: got %v after %v claims and %v failures, want queued, 3, 1", j["state"], j["attempts"], j["failures"])
	}
}

// TestLabPolicyChange: a lab's owner changes its rules (here: to charge machine time),
// new orders follow them, and nobody else may change them.
func TestLabPolicyChange(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	signUp(t, b, "rootie") // the first account is the site admin
	owner, other := login(t, b, "lina"), login(t, b, "uma")
	b.do(t, call{method: "POST", path: "/api/v1/labs", header: owner, body: map[string]any{"slug": "town", "name": "Town"}}).want(t, 201, "")
	publish(t, b, owner, map[string]any{"title": "Alpha", "license": "CC0-1.0"}).want(t, 201, "")
	paid := map[string]any{"submit": "public", "credits": "required", "minutes_per_cm3": 3}
	b.do(t, call{method: "PUT", path: "/api/v1/labs/town/policy", header: other, body: paid}).want(t, 403, "forbidden")
	b.do(t, call{method: "PUT", path: "/api/v1/labs/town/policy", header: owner, body: map[string]any{"credits": "sometimes"}}).want(t, 422, "invalid")
	b.do(t, call{method: "PUT", path: "/api/v1/labs/town/policy", header: owner, body: map[string]any{"minutes_per_cm3": -1}}).want(t, 422, "invalid")
	b.do(t, call{method: "PUT", path: "/api/v1/labs/nowhere/policy", header: owner, body: paid}).want(t, 404, "not_found")
	r := b.do(t, call{method: "PUT", path: "/api/v1/labs/town/policy", header: owner, body: paid})
	r.want(t, 200, "")
	if p := r.json["policy"].(map[string]any); p["credits"] != "required" || p["minutes_per_cm3"] != 3.0 {
		t.Fatalf("policy after the change: %v", p)
	}
	// A new order now holds machine time on its requester's account.
	r = b.do(t, call{method: "POST", path: "/api/v1/orders", header: other, body: map[string]any{"lab": "town", "design": "alpha", "files": []string{"parts/base.stl"}}})
	r.want(t, 201, "")
	held := r.json["jobs"].([]any)[0].(map[string]any)["hold_minutes"].(float64)
	a := b.do(t, call{method: "GET", path: "/api/v1/ledger/accounts/user:uma"})
	a.want(t, 200, "")
	if held < 1 || a.json["held"].(float64) != held || a.json["available"].(float64) != -held {
		t.Fatalf("hold %v; uma's account %v", held, a.json)
	}
}

// TestStartRecordsWhatACrashLost: the records of free labs' makes are written just
// after the job, from a queue in memory; jobs saved done whose records a crashed hub
// never wrote get them when a hub starts on the store (Hub.Run calls RecordLost).
func TestStartRecordsWhatACrashLost(t *testing.T) {
	t.Parallel()
	b := setupHub(t, HubConfig{}, nil)
	admin := login(t, b, "ada")
	publish(t, b, admin, map[string]any{"title": "Cable clip", "license": "MIT"}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/labs", header: admin, body: map[string]any{"slug": "free", "name": "Free"}}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/labs/free/machines", header: admin, body: map[string]any{
		"name": "Prusa", "process": "fdm", "build_volume": map[string]float64{"x": 250, "y": 210, "z": 220}, "materials": []string{"PLA"}, "driver": "sim"}}).want(t, 201, "")
	r := b.do(t, call{method: "POST", path: "/api/v1/orders", header: admin, body: map[string]any{"lab": "free", "design": "cable-clip", "files": []string{"parts/base.stl"}, "quantity": 3}})
	r.want(t, 201, "")
	ctx := context.Background()
	var ids []string
	for _, j := range r.json["jobs"].([]any) {
		id := j.(map[string]any)["id"].(string)
		job, err := b.db.Fabrication().Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		end := time.Now()
		started := end.Add(-90 * time.Second)
		job.State, job.StartedAt, job.FinishedAt, job.UpdatedAt = fabrication.JobDone, &started, &end, end
		if err := b.db.Fabrication().SaveJob(ctx, job, job.Rev); err != nil { // and the hub gone
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if _, ok, _ := b.fab.Ledger.JobEntry(ctx, id); ok {
			t.Fatalf("job %s has a record no one wrote", id)
		}
	}
	startAgain(t, b, HubConfig{})
	eventually(t, "the started hub to record the makes", func() bool {
		for _, id := range ids {
			if _, ok, err := b.fab.Ledger.JobEntry(ctx, id); err != nil || !ok {
				return false
			}
		}
		return true
	})
}
