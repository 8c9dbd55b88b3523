package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

// receiver is a real HTTP endpoint for deliveries. It answers 500 to its first
// failFirst requests, then 200, and hands every request it got to the test.
type receiver struct {
	url       string
	got       chan received
	failFirst atomic.Int32
}

type received struct {
	header http.Header
	body   []byte
	status int // what the receiver answered
}

func newReceiver(t *testing.T, failFirst int32) *receiver {
	t.Helper()
	r := &receiver{got: make(chan received, 64)}
	r.failFirst.Store(failFirst)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		status := http.StatusOK
		if r.failFirst.Add(-1) >= 0 {
			status = http.StatusInternalServerError
		}
		w.WriteHeader(status)
		r.got <- received{header: req.Header.Clone(), body: body, status: status}
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/hook"
	return r
}

// next waits for the receiver's next request.
func (r *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case got := <-r.got:
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got nothing in 10 s")
		return received{}
	}
}

// check verifies a delivery as a receiver should (headers, signature, timestamp) and
// returns its payload.
func (got received) check(t *testing.T, secret, event string, now time.Time) map[string]any {
	t.Helper()
	if err := webhook.Verify(secret, got.header, got.body, now, time.Minute); err != nil {
		t.Fatalf("verify the delivery: %v; headers %v", err, got.header)
	}
	if h := got.header.Get(webhook.HeaderEvent); h != event {
		t.Fatalf("got %s %q, want %q", webhook.HeaderEvent, h, event)
	}
	if h, want := got.header.Get(webhook.HeaderTimestamp), strconv.FormatInt(now.Unix(), 10); h != want {
		t.Fatalf("got %s %s, want %s (the hub's clock)", webhook.HeaderTimestamp, h, want)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("got Content-Type %q, want application/json", ct)
	}
	var p map[string]any
	if err := json.Unmarshal(got.body, &p); err != nil {
		t.Fatalf("the body is not JSON: %v: %s", err, got.body)
	}
	if p["event"] != event || p["id"] != got.header.Get(webhook.HeaderDelivery) || p["id"] == "" {
		t.Fatalf("got payload %s with %s %q, want event %s and the delivery's id", got.body, webhook.HeaderDelivery, got.header.Get(webhook.HeaderDelivery), event)
	}
	return p
}

// newHookLab is newLab on a hub whose webhooks use the fixture's clock, allow receivers
// on 127.0.0.1 and look for due deliveries every 10 ms.
func newHookLab(t *testing.T, policy fabrication.Policy) labFixture {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)}
	b := setupHub(t, HubConfig{
		Web:         Config{PollWait: 200 * time.Millisecond, PollRecheck: 20 * time.Millisecond},
		Fabrication: fabrication.Options{LeaseTTL: time.Minute, Clock: clock.Now},
		Webhooks:    webhook.Options{AllowHosts: []string{"127.0.0.1"}, PollEvery: 10 * time.Millisecond, Clock: clock.Now},
	}, nil)
	f := labFixture{bundle: b, owner: login(t, b, "ada"), maker: login(t, b, "grace"), clock: clock}
	publish(t, b, f.maker, map[string]any{"title": "Spool holder", "license": "CERN-OHL-S-2.0"}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/labs", header: f.owner, body: map[string]any{
		"slug": "makerspace", "name": "Makerspace", "policy": policy}}).want(t, 201, "")
	f.machineID, f.machine = f.addMachine(t, "makerspace", "Prusa MK4", 250, 210, 220)
	return f
}

// addHook registers a hook and returns its id and secret.
func (f labFixture) addHook(t *testing.T, who map[string]string, body map[string]any) (string, string) {
	t.Helper()
	r := f.do(t, call{method: "POST", path: "/api/v1/webhooks", header: who, body: body})
	r.want(t, 201, "")
	hook := r.json["webhook"].(map[string]any)
	secret, _ := r.json["secret"].(string)
	if hook["id"] == "" || len(secret) < 40 || hook["secret"] != nil {
		t.Fatalf("got %s, want the hook without its secret, and the secret beside it", r.body)
	}
	return hook["id"].(string), secret
}

// waitDelivery waits until the hook's latest delivery is in state (and has made
// attempts), and returns it.
func (f labFixture) waitDelivery(t *testing.T, who map[string]string, hookID, state string, attempts float64) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	// The outcome is recorded just after the receiver answered, with no signal the test
	// can wait on: ask again every few milliseconds.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		r := f.do(t, call{method: "GET", path: "/api/v1/webhooks/" + hookID + "/deliveries", header: who})
		r.want(t, 200, "")
		ds := r.json["deliveries"].([]any)
		if len(ds) > 0 {
			d := ds[0].(map[string]any)
			if d["state"] == state && d["attempts"] == attempts {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("the latest delivery: got %v, want state %s after %v attempts", d, state, attempts)
			}
		} else if time.Now().After(deadline) {
			t.Fatal("no delivery recorded in 10 s")
		}
		<-tick.C
	}
}

// TestWebhookJobEvents: a lab's hook hears that a job awaits approval; when an operator
// rejects it, the lab's hook and the requester's own hook hear that the order was
// refused. Each delivery carries the documented headers and a signature that verifies
// with the secret shown at registration, and the owner sees it delivered.
func TestWebhookJobEvents(t *testing.T) {
	t.Parallel()
	f := newHookLab(t, fabrication.Policy{ApprovalRequired: true})
	labRecv, makerRecv := newReceiver(t, 0), newReceiver(t, 0)
	labHook, labSecret := f.addHook(t, f.owner, map[string]any{"url": labRecv.url, "lab": "makerspace",
		"events": []string{webhook.JobAwaitingApproval, webhook.OrderRefused}})
	makerHook, makerSecret := f.addHook(t, f.maker, map[string]any{"url": makerRecv.url,
		"events": []string{webhook.OrderRefused, webhook.JobAwaitingApproval}})

	jobs := f.order(t, map[string]any{"files": []string{"parts/base.stl"}, "quantity": 1})
	jobID := jobs[0].(map[string]any)["id"].(string)
	p := labRecv.next(t).check(t, labSecret, webhook.JobAwaitingApproval, f.clock.Now())
	if job := p["data"].(map[string]any)["job"].(map[string]any); job["id"] != jobID || job["state"] != "pending_approval" {
		t.Fatalf("got data %v, want job %s pending approval", p["data"], jobID)
	}
	f.waitDelivery(t, f.owner, labHook, webhook.Delivered, 1)

	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + jobID + "/reject", header: f.owner, body: map[string]string{"reason": "no PETG this week"}}).want(t, 200, "")
	p = labRecv.next(t).check(t, labSecret, webhook.OrderRefused, f.clock.Now())
	if job := p["data"].(map[string]any)["job"].(map[string]any); job["id"] != jobID || job["state"] != "rejected" {
		t.Fatalf("got data %v, want job %s rejected", p["data"], jobID)
	}
	// The requester's first delivery is the refusal: awaiting approval is for the lab's
	// operators only, even when a personal hook asks for it.
	makerRecv.next(t).check(t, makerSecret, webhook.OrderRefused, f.clock.Now())
	d := f.waitDelivery(t, f.maker, makerHook, webhook.Delivered, 1)
	if d["last_status"] != float64(200) || d["event"] != webhook.OrderRefused {
		t.Fatalf("the requester's delivery: got %v, want order.refused delivered with 200", d)
	}
	// Someone else's hook is not there for them: not its deliveries, not a test, not a delete.
	for _, c := range []call{
		{method: "GET", path: "/api/v1/webhooks/" + labHook + "/deliveries", header: f.maker},
		{method: "POST", path: "/api/v1/webhooks/" + labHook + "/test", header: f.maker},
		{method: "DELETE", path: "/api/v1/webhooks/" + labHook, header: f.maker},
	} {
		f.do(t, c).want(t, 404, "not_found")
	}
	r := f.do(t, call{method: "GET", path: "/api/v1/webhooks", header: f.maker})
	r.want(t, 200, "")
	if hooks := r.json["webhooks"].([]any); len(hooks) != 1 || hooks[0].(map[string]any)["id"] != makerHook || hooks[0].(map[string]any)["secret"] != nil {
		t.Fatalf("grace's hooks: got %s, want her one hook, without its secret", r.body)
	}
	select {
	case extra := <-makerRecv.got:
		t.Fatalf("grace's receiver got a second delivery %s, want only the refusal", extra.body)
	default:
	}
	// Her account page shows the hook and the delivery's outcome, not the secret.
	page := f.do(t, call{method: "GET", path: "/account", header: f.maker})
	page.want(t, 200, "")
	for _, want := range []string{makerRecv.url, "<code>order.refused</code></td><td>delivered", "/api/v1/webhooks/" + makerHook + "/test"} {
		if !strings.Contains(string(page.body), want) {
			t.Fatalf("the account page lacks %q", want)
		}
	}
	if strings.Contains(string(page.body), makerSecret) {
		t.Fatal("the account page shows the hook's secret")
	}
}

// TestWebhookRetriesWithBackoff: a receiver that fails twice and then recovers gets the
// same delivery three times, 30 s and then 2 min apart by the hub's clock, each attempt
// signed anew; the owner sees each failure and then the success.
func TestWebhookRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	f := newHookLab(t, fabrication.Policy{})
	recv := newReceiver(t, 2)
	hook, secret := f.addHook(t, f.maker, map[string]any{"url": recv.url, "events": []string{webhook.JobDone}})
	t0 := f.clock.Now()

	r := f.do(t, call{method: "POST", path: "/api/v1/webhooks/" + hook + "/test", header: f.maker})
	r.want(t, 202, "")
	id := r.json["delivery"].(map[string]any)["id"].(string)

	first := recv.next(t)
	first.check(t, secret, webhook.Ping, t0)
	d := f.waitDelivery(t, f.maker, hook, webhook.Pending, 1)
	if d["last_status"] != float64(500) || d["next_attempt_at"] != t0.Add(30*time.Second).Format(time.RFC3339) {
		t.Fatalf("after the first failure: got %v, want last_status 500, next attempt at %s", d, t0.Add(30*time.Second).Format(time.RFC3339))
	}

	f.clock.Add(30 * time.Second)
	second := recv.next(t)
	second.check(t, secret, webhook.Ping, t0.Add(30*time.Second))
	d = f.waitDelivery(t, f.maker, hook, webhook.Pending, 2)
	if want := t0.Add(150 * time.Second).Format(time.RFC3339); d["next_attempt_at"] != want {
		t.Fatalf("after the second failure: got next attempt at %v, want %s (2 min later)", d["next_attempt_at"], want)
	}

	f.clock.Add(2 * time.Minute)
	third := recv.next(t)
	third.check(t, secret, webhook.Ping, t0.Add(150*time.Second))
	d = f.waitDelivery(t, f.maker, hook, webhook.Delivered, 3)
	if d["last_status"] != float64(200) || d["last_error"] != nil {
		t.Fatalf("after the recovery: got %v, want delivered with 200 and no error", d)
	}
	for i, got := range []received{first, second, third} {
		if got.header.Get(webhook.HeaderDelivery) != id || string(got.body) != string(first.body) {
			t.Fatalf("attempt %d: got delivery %s body %s, want %s with the first attempt's body", i+1, got.header.Get(webhook.HeaderDelivery), got.body, id)
		}
	}
	if first.header.Get(webhook.HeaderSignature) == second.header.Get(webhook.HeaderSignature) {
		t.Fatal("two attempts at different times carry the same signature; the timestamp is not signed")
	}

	// Thirty days on the delivery is still listed; a day later it is pruned.
	f.clock.Add(30 * 24 * time.Hour)
	time.Sleep(50 * time.Millisecond) // a few of the service's rounds
	f.waitDelivery(t, f.maker, hook, webhook.Delivered, 3)
	f.clock.Add(25 * time.Hour)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r := f.do(t, call{method: "GET", path: "/api/v1/webhooks/" + hook + "/deliveries", header: f.maker})
		if len(r.json["deliveries"].([]any)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("31 days after it was delivered the delivery is still listed: %s", r.body)
		}
	}
}

// TestWebhookDeleteStopsDeliveries: once a hook is deleted, a delivery that was waiting
// for its retry is never sent.
func TestWebhookDeleteStopsDeliveries(t *testing.T) {
	t.Parallel()
	f := newHookLab(t, fabrication.Policy{})
	recv := newReceiver(t, 100)
	hook, _ := f.addHook(t, f.maker, map[string]any{"url": recv.url, "events": []string{webhook.JobDone}})
	f.do(t, call{method: "POST", path: "/api/v1/webhooks/" + hook + "/test", header: f.maker}).want(t, 202, "")
	if got := recv.next(t); got.status != 500 {
		t.Fatalf("got the receiver answering %d, want 500", got.status)
	}
	f.waitDelivery(t, f.maker, hook, webhook.Pending, 1)

	f.do(t, call{method: "DELETE", path: "/api/v1/webhooks/" + hook, header: f.maker}).want(t, 204, "")
	f.do(t, call{method: "GET", path: "/api/v1/webhooks/" + hook + "/deliveries", header: f.maker}).want(t, 404, "not_found")
	f.do(t, call{method: "DELETE", path: "/api/v1/webhooks/" + hook, header: f.maker}).want(t, 404, "not_found")
	f.clock.Add(24 * time.Hour)
	if n, err := f.hub.Webhooks.DeliverDue(context.Background()); err != nil || n != 0 {
		t.Fatalf("a day after the delete: got %d deliveries tried, %v; want 0", n, err)
	}
	select {
	case got := <-recv.got:
		t.Fatalf("the receiver got %s after its hook was deleted", got.body)
	default:
	}
}

// TestWebhookRefusals: every bad registration is a clear 4xx, and receivers on private
// addresses are refused unless allowed.
func TestWebhookRefusals(t *testing.T) {
	t.Parallel()
	f := newHookLab(t, fabrication.Policy{})
	ok := []string{webhook.JobDone}
	for _, tt := range []struct {
		name   string
		who    map[string]string
		body   map[string]any
		status int
		code   string
	}{
		{"no url", f.maker, map[string]any{"events": ok}, 422, "invalid"},
		{"not http", f.maker, map[string]any{"url": "ftp://example.org/x", "events": ok}, 422, "invalid"},
		{"loopback not allowed", f.maker, map[string]any{"url": "http://127.0.0.2:9/x", "events": ok}, 422, "invalid"},
		{"localhost", f.maker, map[string]any{"url": "http://localhost:9/x", "events": ok}, 422, "invalid"},
		{"private network", f.maker, map[string]any{"url": "http://10.0.0.7/x", "events": ok}, 422, "invalid"},
		{"cloud metadata", f.maker, map[string]any{"url": "http://169.254.169.254/latest/meta-data/", "events": ok}, 422, "invalid"},
		{"no events", f.maker, map[string]any{"url": "https://example.org/x"}, 422, "invalid"},
		{"unknown event", f.maker, map[string]any{"url": "https://example.org/x", "events": []string{"job.exploded"}}, 422, "invalid"},
		{"ping is not subscribable", f.maker, map[string]any{"url": "https://example.org/x", "events": []string{webhook.Ping}}, 422, "invalid"},
		{"a lab one does not run", f.maker, map[string]any{"url": "https://example.org/x", "events": ok, "lab": "makerspace"}, 403, "forbidden"},
		{"no such lab", f.owner, map[string]any{"url": "https://example.org/x", "events": ok, "lab": "nowhere"}, 404, "not_found"},
		{"events not a list", f.maker, map[string]any{"url": "https://example.org/x", "events": "job.done"}, 400, "malformed_json"},
	} {
		r := f.do(t, call{method: "POST", path: "/api/v1/webhooks", header: tt.who, body: tt.body})
		if r.status != tt.status || r.errorCode() != tt.code {
			t.Errorf("%s: got %d %q, want %d %q; body %s", tt.name, r.status, r.errorCode(), tt.status, tt.code, r.body)
		}
	}
	r := f.do(t, call{method: "POST", path: "/api/v1/webhooks", header: f.maker, body: map[string]any{"url": "http://10.0.0.7/x", "events": ok}})
	if r.json["error"].(map[string]any)["field"] != "url" {
		t.Errorf("a private URL: got %s, want the error to name the field url", r.body)
	}
	// At most 20 hooks a person.
	for range 20 {
		f.addHook(t, f.maker, map[string]any{"url": "https://example.org/x", "events": ok})
	}
	f.do(t, call{method: "POST", path: "/api/v1/webhooks", header: f.maker, body: map[string]any{"url": "https://example.org/x", "events": ok}}).want(t, 409, "conflict")
	// A lab's owner may register for the lab.
	f.addHook(t, f.owner, map[string]any{"url": "https://example.org/lab", "events": []string{webhook.MachineOffline}, "lab": "makerspace"})
}

// TestWebhookDeliveriesSurviveARestartAndOneReplicaSends: a delivery queued by a hub
// that stops before sending it is sent by the hub that starts next on the same
// database; of two hubs on that database, one sends it while the other, holding off
// for the lease, sends nothing; and the request that queued it did not wait for it.
func TestWebhookDeliveriesSurviveARestartAndOneReplicaSends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fab.db")
	blobs, err := localblob.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	openHub := func() (*Hub, *sqlite.DB) {
		db, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		hub, err := NewHub(HubConfig{Accounts: account.Options{Argon2: cheapArgon}, Webhooks: webhook.Options{AllowHosts: []string{"127.0.0.1"}}},
			Stores{Accounts: db.Accounts(), Catalog: db.Catalog(), Fabrication: db.Fabrication(), Blobs: blobs,
				Webhooks: db.Webhooks(), Leases: db.Leases()})
		if err != nil {
			t.Fatal(err)
		}
		return hub, db
	}

	// The receiver holds its first request until released, and answers others at once.
	entered, release := make(chan string, 4), make(chan struct{})
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- r.Header.Get(webhook.HeaderDelivery)
		if requests.Add(1) == 1 {
			<-release
		}
	}))
	defer srv.Close()
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	defer letGo() // before srv.Close, which waits for the held request

	// The first hub queues a test delivery and stops without running its deliveries.
	first, firstDB := openHub()
	b := bundle{h: first.Handler}
	grace := login(t, b, "grace")
	hook, _ := labFixture{bundle: b}.addHook(t, grace, map[string]any{"url": srv.URL, "events": []string{webhook.JobDone}})
	r := b.do(t, call{method: "POST", path: "/api/v1/webhooks/" + hook + "/test", header: grace})
	r.want(t, 202, "") // answered while nothing delivers: the request never waits for a receiver
	id := r.json["delivery"].(map[string]any)["id"].(string)
	firstDB.Close()

	// Two hubs start on the database.
	a, aDB := openHub()
	defer aDB.Close()
	c, cDB := openHub()
	defer cDB.Close()
	sent := make(chan int, 1)
	go func() {
		n, err := a.Webhooks.DeliverDue(context.Background())
		if err != nil {
			t.Error(err)
		}
		sent <- n
	}()
	select {
	case got := <-entered:
		if got != id {
			t.Fatalf("the receiver got delivery %s, want %s (queued before the restart)", got, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery queued before the restart was not sent")
	}
	// While a's attempt is on the wire, c holds off: it does not send it again.
	if n, err := c.Webhooks.DeliverDue(context.Background()); err != nil || n != 0 {
		t.Fatalf("the second hub, while the first delivers: got %d tried, %v; want 0, nil", n, err)
	}
	letGo()
	if n := <-sent; n != 1 {
		t.Fatalf("the first hub tried %d deliveries, want 1", n)
	}
	select {
	case again := <-entered:
		t.Fatalf("the receiver got delivery %s a second time", again)
	default:
	}
	r = bundle{h: c.Handler}.do(t, call{method: "GET", path: "/api/v1/webhooks/" + hook + "/deliveries", header: grace})
	r.want(t, 200, "")
	if d := r.json["deliveries"].([]any)[0].(map[string]any); d["state"] != webhook.Delivered || d["attempts"] != float64(1) {
		t.Fatalf("seen from the other hub: got %v, want delivered after 1 attempt", d)
	}
}

// TestWebhookDesignReported: a report reaches the design's owner's hook and a site
// admin's hook for the whole hub, without naming who reported it. Only a site admin
// may register a hook for the whole hub, and only for what maintainers act on.
func TestWebhookDesignReported(t *testing.T) {
	t.Parallel()
	f := newHookLab(t, fabrication.Policy{}) // ada (the first account) is the site admin
	grace, eve := f.maker, login(t, f.bundle, "eve")
	f.do(t, call{method: "POST", path: "/api/v1/webhooks", header: grace,
		body: map[string]any{"url": "http://127.0.0.1:1/x", "events": []string{webhook.DesignReported}, "hub": true}}).want(t, 403, "forbidden")
	f.do(t, call{method: "POST", path: "/api/v1/webhooks", header: f.owner,
		body: map[string]any{"url": "http://127.0.0.1:1/x", "events": []string{webhook.JobDone}, "hub": true}}).want(t, 422, "invalid")
	f.do(t, call{method: "POST", path: "/api/v1/webhooks", header: f.owner,
		body: map[string]any{"url": "http://127.0.0.1:1/x", "events": []string{webhook.DesignReported}, "hub": true, "lab": "makerspace"}}).want(t, 422, "invalid")

	hubRecv, ownerRecv := newReceiver(t, 0), newReceiver(t, 0)
	hubHook, hubSecret := f.addHook(t, f.owner, map[string]any{"url": hubRecv.url, "events": []string{webhook.DesignReported}, "hub": true})
	_, ownerSecret := f.addHook(t, grace, map[string]any{"url": ownerRecv.url, "events": []string{webhook.DesignReported}})
	publish(t, f.bundle, grace, map[string]any{"title": "Grace's hinge", "license": "CC-BY-4.0"}).want(t, 201, "")

	f.do(t, call{method: "POST", path: "/api/v1/designs/grace-s-hinge/flag", header: eve, body: map[string]string{"reason": "not a hinge"}}).want(t, 204, "")
	for recv, secret := range map[*receiver]string{hubRecv: hubSecret, ownerRecv: ownerSecret} {
		got := recv.next(t)
		data := got.check(t, secret, webhook.DesignReported, f.clock.Now())["data"].(map[string]any)
		if strings.Contains(string(got.body), `"eve"`) || data["design"].(map[string]any)["slug"] != "grace-s-hinge" || data["reason"] != "not a hinge" {
			t.Fatalf("the report's delivery: %s, want the design and the reason without the reporter", got.body)
		}
	}
	f.waitDelivery(t, f.owner, hubHook, webhook.Delivered, 1)
	r := f.do(t, call{method: "GET", path: "/api/v1/webhooks", header: f.owner})
	if hooks := r.json["webhooks"].([]any); len(hooks) != 1 || hooks[0].(map[string]any)["hub"] != true {
		t.Fatalf("ada's hooks: got %s, want her hook for the whole hub", r.body)
	}
}
