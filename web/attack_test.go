package web

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// Attacks on sessions and forms, one class each; every case failed before its fix.

// TestLoginCannotBeForgedFromAnotherSite: a text/plain form can be made to look like
// JSON, so JSON endpoints take only application/json, which a browser sends cross-site
// only after a CORS preflight the hub never grants.
func TestLoginCannotBeForgedFromAnotherSite(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	signUp(t, b, "mallory")
	forged := `{"handle":"mallory","password":"correct horse battery","x":"=}`
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		h := map[string]string{"Content-Type": ct}
		if ct == "" {
			h = map[string]string{"Content-Type": "text/plain;charset=UTF-8"}
		}
		r := b.do(t, call{method: "POST", path: "/api/v1/sessions", body: forged, header: h})
		r.want(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
		if len(r.header.Values("Set-Cookie")) > 0 {
			t.Fatalf("a %q login set a cookie", ct)
		}
	}
	// The pages' own forms: refused when the browser says they came from elsewhere.
	form := url.Values{"handle": {"mallory"}, "password": {"correct horse battery"}}.Encode()
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://evil.example"},
		{"Origin": "null"},
		{"Referer": "https://evil.example/login"}, // a browser that sends neither of the others
	} {
		h["Content-Type"] = "application/x-www-form-urlencoded"
		for _, path := range []string{"/login", "/signup"} {
			r := b.do(t, call{method: "POST", path: path, body: form, header: h})
			if r.status != http.StatusForbidden || len(r.header.Values("Set-Cookie")) > 0 {
				t.Fatalf("POST %s with %v: got %d and cookies %v, want 403 and none", path, h, r.status, r.header.Values("Set-Cookie"))
			}
		}
	}
	for _, same := range []map[string]string{
		{"Sec-Fetch-Site": "same-origin", "Origin": "http://example.com"},
		{"Referer": "http://example.com/login"},
	} {
		same["Content-Type"] = "application/x-www-form-urlencoded"
		if r := b.do(t, call{method: "POST", path: "/login", body: form, header: same}); r.status != http.StatusSeeOther {
			t.Fatalf("a same-origin login form with %v: got %d, want 303", same, r.status)
		}
	}
}

// TestSessionCookieCrossSite: a request that changes something, sent from another site
// with the session cookie, is refused even if it carries the CSRF token.
func TestSessionCookieCrossSite(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	signUp(t, b, "ada")
	r := b.do(t, call{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": "ada", "password": "correct horse battery"}})
	r.want(t, 200, "")
	csrf := r.json["csrf_token"].(string)
	ck := (&http.Response{Header: r.header}).Cookies()[0]
	jar := []*http.Cookie{{Name: ck.Name, Value: ck.Value}}
	for _, h := range []map[string]string{
		{csrfHeader: csrf, "Origin": "https://evil.example"},
		{csrfHeader: csrf, "Sec-Fetch-Site": "cross-site"},
		{csrfHeader: csrf, "Sec-Fetch-Site": "same-site"},
		{csrfHeader: csrf, "Referer": "https://evil.example/page"},
	} {
		b.do(t, call{method: "POST", path: "/api/v1/labs", cookies: jar, header: h, body: map[string]string{"slug": "x1", "name": "X"}}).want(t, 403, "cross_site")
	}
	// From the hub's own pages it works, and reading is never refused.
	b.do(t, call{method: "GET", path: "/api/v1/me", cookies: jar, header: map[string]string{"Sec-Fetch-Site": "cross-site"}}).want(t, 200, "")
	b.do(t, call{method: "POST", path: "/api/v1/labs", cookies: jar, header: map[string]string{csrfHeader: csrf, "Origin": "http://example.com"},
		body: map[string]string{"slug": "x2", "name": "X"}}).want(t, 201, "")
}

// TestRedirectsStayOnTheHub: a login's "next" never leaves the hub.
func TestRedirectsStayOnTheHub(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	signUp(t, b, "ada")
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "evil.example", "/\t/evil.example"} {
		form := url.Values{"handle": {"ada"}, "password": {"correct horse battery"}, "next": {next}}.Encode()
		r := b.do(t, call{method: "POST", path: "/login", body: form, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
		loc := r.header.Get("Location")
		if r.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") || strings.ContainsAny(loc, "\t\r\n") {
			t.Fatalf("next=%q: got %d to %q, want a path on the hub", next, r.status, loc)
		}
	}
}

// TestMetricLabelsAreBounded: made-up methods and paths do not grow the metrics.
func TestMetricLabelsAreBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	for i := range 200 {
		b.do(t, call{method: fmt.Sprintf("X%d", i), path: fmt.Sprintf("/api/v1/nothing/%d", i)})
		b.do(t, call{method: "GET", path: fmt.Sprintf("/no/such/page/%d", i)})
	}
	r := b.do(t, call{method: "GET", path: "/metrics"})
	series := 0
	for _, line := range strings.Split(string(r.body), "\n") {
		if strings.HasPrefix(line, "fabhub_http_requests_total{") {
			series++
		}
		if strings.Contains(line, "X17") || strings.Contains(line, "/no/such/page/17") {
			t.Fatalf("a label from the request: %s", line)
		}
	}
	if series == 0 || series > 10 {
		t.Fatalf("got %d request-count series after 400 made-up requests, want a handful", series)
	}
}

// TestHiddenMeansHidden: once a maintainer hides a design, every route that can reach it
// shows only its tombstone (title, author, license, place in the lineage), to anyone.
func TestHiddenMeansHidden(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	admin := login(t, b, "ada") // the first account is the site admin
	owner := login(t, b, "grace")
	publish(t, b, owner, map[string]any{"title": "Secret bracket", "license": "CC-BY-4.0", "tags": []string{"sekrit"}}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/designs/secret-bracket/hide", header: admin}).want(t, 204, "")
	for _, who := range []map[string]string{nil, owner} {
		for _, path := range []string{
			"/api/v1/designs/secret-bracket/versions/1",
			"/api/v1/designs/secret-bracket/versions/1/files/parts/base.stl",
			"/api/v1/designs/secret-bracket/versions/1/archive.zip",
			"/api/v1/designs/secret-bracket/versions/1/okh.toml",
			"/api/v1/designs/secret-bracket/versions/1/bom.csv",
		} {
			r := b.do(t, call{method: "GET", path: path, header: who})
			if r.status < 400 || strings.Contains(string(r.body), "base.stl") || strings.Contains(string(r.body), "608 bearing") {
				t.Errorf("GET %s (as %v) of a hidden design: got %d, %d bytes; want a refusal without its content", path, who != nil, r.status, len(r.body))
			}
		}
		if r := b.do(t, call{method: "GET", path: "/api/v1/designs/secret-bracket/versions", header: who}); len(r.json["versions"].([]any)) != 0 {
			t.Errorf("the versions of a hidden design (as %v): got %s, want none", who != nil, r.body)
		}
		if r := b.do(t, call{method: "GET", path: "/designs/secret-bracket/thumbnail.png", header: who}); !bytes.Equal(r.body, emptyThumb) || strings.Contains(r.header.Get("Cache-Control"), "public") {
			t.Errorf("the thumbnail of a hidden design (as %v): got %d bytes with Cache-Control %q, want the empty picture, kept from shared caches", who != nil, len(r.body), r.header.Get("Cache-Control"))
		}
		for _, path := range []string{"/api/v1/designs/secret-bracket", "/api/v1/designs/secret-bracket/versions", "/designs/secret-bracket", "/api/v1/designs/secret-bracket/lineage"} {
			r := b.do(t, call{method: "GET", path: path, header: who})
			if strings.Contains(string(r.body), "base.stl") || strings.Contains(string(r.body), "608 bearing") || strings.Contains(string(r.body), "Print the base flat") {
				t.Errorf("GET %s (as %v) shows a hidden design's content", path, who != nil)
			}
		}
		for _, q := range []string{"?q=secret", "?tag=sekrit", "?owner=grace"} {
			r := b.do(t, call{method: "GET", path: "/api/v1/designs" + q, header: who})
			if strings.Contains(string(r.body), "secret-bracket") {
				t.Errorf("search %s (as %v) lists a hidden design", q, who != nil)
			}
		}
	}
	// Before a design is hidden, what can be hidden later is kept from shared caches.
	publish(t, b, owner, map[string]any{"title": "Open bracket", "license": "CC-BY-4.0"}).want(t, 201, "")
	for _, path := range []string{"/api/v1/designs/open-bracket/versions/1/archive.zip", "/api/v1/designs/open-bracket/versions/1/files/parts/base.stl",
		"/api/v1/designs/open-bracket/versions/1/okh.toml", "/api/v1/designs/open-bracket/versions/1/bom.csv", "/designs/open-bracket/thumbnail.png"} {
		r := b.do(t, call{method: "GET", path: path})
		if cc := r.header.Get("Cache-Control"); r.status != 200 || strings.Contains(cc, "public") || (!strings.Contains(cc, "private") && !strings.Contains(cc, "no-store")) {
			t.Errorf("GET %s: got %d with Cache-Control %q, want it kept from shared caches", path, r.status, cc)
		}
	}
}

// TestGeneratedFilesCannotBeForged: an upload cannot bring its own ATTRIBUTION.md, BOM
// or manifest into the root of a download, where the hub writes the real ones.
func TestGeneratedFilesCannotBeForged(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	auth := login(t, b, "mallory")
	for _, name := range []string{"ATTRIBUTION.md", "attribution.MD", "bom.csv", "okh.toml"} {
		body := newMultipart().field("meta", map[string]any{"title": "Forged " + name, "license": "CC0-1.0"}).
			file("files", "part.stl", cubeSTL).file("files", name, []byte("Made by mallory alone.")).done()
		r := b.do(t, call{method: "POST", path: "/api/v1/designs", body: body, header: auth})
		r.want(t, 422, "invalid")
		if !strings.Contains(string(r.body), "writes into every download") {
			t.Fatalf("%s: got %s", name, r.body)
		}
	}
	// Deeper in the tree the name is the uploader's to use, and the archive holds each
	// name once.
	body := newMultipart().field("meta", map[string]any{"title": "Docs", "license": "CC0-1.0"}).
		file("files", "part.stl", cubeSTL).file("files", "docs/ATTRIBUTION.md", []byte("notes")).done()
	b.do(t, call{method: "POST", path: "/api/v1/designs", body: body, header: auth}).want(t, 201, "")
	r := b.do(t, call{method: "GET", path: "/api/v1/designs/docs/versions/1/archive.zip"})
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range zr.File {
		if seen[strings.ToLower(f.Name)] {
			t.Fatalf("the archive holds %s twice", f.Name)
		}
		seen[strings.ToLower(f.Name)] = true
	}
	if !seen["docs-v1/attribution.md"] || !seen["docs-v1/docs/attribution.md"] {
		t.Fatalf("archive entries: %v", seen)
	}
}

// TestOrderListsAreBounded: every list in an order has a limit, named in the refusal
// (each job carries the order's tags: an unbounded list was multiplied by the jobs).
func TestOrderListsAreBounded(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	many := func(n int, s string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprint(s, i)
		}
		return out
	}
	for field, body := range map[string]map[string]any{
		"tags":     {"tags": many(51, "t")},
		"files":    {"files": many(201, "f.stl")},
		"bom_refs": {"bom_refs": many(501, "R")},
	} {
		body["lab"], body["design"] = "makerspace", "spool-holder"
		r := f.do(t, call{method: "POST", path: "/api/v1/orders", header: f.maker, body: body})
		r.want(t, 422, "invalid")
		if r.json["error"].(map[string]any)["field"] != field || !strings.Contains(string(r.body), "at most") {
			t.Fatalf("%s: got %s, want the field and its limit", field, r.body)
		}
	}
}

// TestRevocation: a site admin disables an account (its token, its sessions and its
// password stop at once; its designs stay) and enables it again; a person signs out
// everywhere.
func TestRevocation(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	root := login(t, b, "ada") // site admin
	grace := login(t, b, "grace")
	publish(t, b, grace, map[string]any{"title": "Grace's hook", "license": "CC0-1.0"}).want(t, 201, "")
	session := func(handle string) []*http.Cookie {
		r := b.do(t, call{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": handle, "password": "correct horse battery"}})
		r.want(t, 200, "")
		ck := (&http.Response{Header: r.header}).Cookies()[0]
		return []*http.Cookie{{Name: ck.Name, Value: ck.Value}}
	}
	graceSession := session("grace")

	b.do(t, call{method: "POST", path: "/api/v1/users/grace/disable", header: grace}).want(t, 403, "forbidden")
	b.do(t, call{method: "POST", path: "/api/v1/users/ada/disable", header: root}).want(t, 422, "invalid")
	b.do(t, call{method: "POST", path: "/api/v1/users/grace/disable", header: root}).want(t, 200, "")
	b.do(t, call{method: "GET", path: "/api/v1/me", header: grace}).want(t, 401, "unauthenticated")
	b.do(t, call{method: "GET", path: "/api/v1/me", cookies: graceSession}).want(t, 401, "unauthenticated")
	r := b.do(t, call{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": "grace", "password": "correct horse battery"}})
	r.want(t, 401, "unauthenticated")
	if !strings.Contains(string(r.body), "disabled") {
		t.Fatalf("signing in to a disabled account: got %s, want it said", r.body)
	}
	b.do(t, call{method: "GET", path: "/api/v1/designs/grace-s-hook"}).want(t, 200, "")
	b.do(t, call{method: "POST", path: "/api/v1/users/grace/enable", header: root}).want(t, 200, "")
	b.do(t, call{method: "GET", path: "/api/v1/me", header: grace}).want(t, 200, "")
	b.do(t, call{method: "GET", path: "/api/v1/me", cookies: graceSession}).want(t, 401, "unauthenticated") // sessions ended for good

	// Signing out everywhere ends every session, and only that person's.
	one, two, other := session("grace"), session("grace"), session("ada")
	r = b.do(t, call{method: "DELETE", path: "/api/v1/sessions", header: grace})
	r.want(t, 200, "")
	if r.json["ended"] != 2.0 {
		t.Fatalf("ended: got %s, want 2", r.body)
	}
	b.do(t, call{method: "GET", path: "/api/v1/me", cookies: one}).want(t, 401, "unauthenticated")
	b.do(t, call{method: "GET", path: "/api/v1/me", cookies: two}).want(t, 401, "unauthenticated")
	b.do(t, call{method: "GET", path: "/api/v1/me", cookies: other}).want(t, 200, "")
}

// TestMachineRevocation: an operator gives a machine a new token (the old one stops at
// once; a new enrolment code brings the agent back) or retires it for good.
func TestMachineRevocation(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	f.do(t, call{method: "POST", path: "/api/v1/agent/poll", header: f.machine, body: map[string]any{"protocol": agentapi.Protocol, "state": "busy", "jobs": []any{}}}).want(t, 204, "")
	f.do(t, call{method: "POST", path: "/api/v1/machines/" + f.machineID + "/token", header: f.maker}).want(t, 403, "forbidden")
	r := f.do(t, call{method: "POST", path: "/api/v1/machines/" + f.machineID + "/token", header: f.owner})
	r.want(t, 200, "")
	code := r.json["enrollment_code"].(string)
	f.do(t, call{method: "POST", path: "/api/v1/agent/poll", header: f.machine, body: map[string]any{"protocol": agentapi.Protocol, "state": "busy", "jobs": []any{}}}).want(t, 401, "unauthenticated")
	r = f.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": code}})
	r.want(t, 200, "")
	fresh := bearer(r.json["token"].(string))
	f.do(t, call{method: "POST", path: "/api/v1/agent/poll", header: fresh, body: map[string]any{"protocol": agentapi.Protocol, "state": "busy", "jobs": []any{}}}).want(t, 204, "")

	// Retired: the token stops, no work comes, and it cannot be brought back.
	r = f.do(t, call{method: "POST", path: "/api/v1/machines/" + f.machineID + "/token", header: f.owner})
	r.want(t, 200, "")
	spare := r.json["enrollment_code"].(string)
	f.do(t, call{method: "POST", path: "/api/v1/machines/" + f.machineID + "/retire", header: f.owner}).want(t, 200, "")
	f.do(t, call{method: "POST", path: "/api/v1/agent/poll", header: fresh, body: map[string]any{"protocol": agentapi.Protocol, "state": "idle", "jobs": []any{}}}).want(t, 401, "unauthenticated")
	f.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": spare}}).want(t, 403, "forbidden")
	f.do(t, call{method: "PATCH", path: "/api/v1/machines/" + f.machineID, header: f.owner, body: map[string]any{"approved": true}}).want(t, 409, "conflict")
	f.do(t, call{method: "POST", path: "/api/v1/machines/" + f.machineID + "/token", header: f.owner}).want(t, 409, "conflict")
}

// TestMemberRemoval: an owner takes someone out of the lab and their role there ends
// at once; the last owner cannot be removed or demoted.
func TestMemberRemoval(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{ApprovalRequired: true})
	jobs := f.order(t, map[string]any{"files": []string{"parts/base.stl"}})
	id := jobs[0].(map[string]any)["id"].(string)
	f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/members", header: f.owner, body: map[string]string{"handle": "grace", "role": "operator"}}).want(t, 200, "")
	f.do(t, call{method: "DELETE", path: "/api/v1/labs/makerspace/members/ada", header: f.maker}).want(t, 403, "forbidden")
	f.do(t, call{method: "DELETE", path: "/api/v1/labs/makerspace/members/grace", header: f.owner}).want(t, 204, "")
	f.do(t, call{method: "POST", path: "/api/v1/jobs/" + id + "/approve", header: f.maker}).want(t, 403, "forbidden")
	f.do(t, call{method: "DELETE", path: "/api/v1/labs/makerspace/members/grace", header: f.owner}).want(t, 404, "not_found")
	f.do(t, call{method: "DELETE", path: "/api/v1/labs/makerspace/members/ada", header: f.owner}).want(t, 409, "conflict")
	f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/members", header: f.owner, body: map[string]string{"handle": "ada", "role": "member"}}).want(t, 409, "conflict")
}

// TestJoinTokenRevocation: revoking a join token can retire the machines it registered.
func TestJoinTokenRevocation(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	r := f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/join-tokens", header: f.owner, body: map[string]string{"name": "rack"}})
	r.want(t, 201, "")
	jt := r.json["join_token"].(map[string]any)
	caps := map[string]any{"process": "fdm", "build_volume": []float64{220, 220, 250}, "driver": "sim"}
	var tokens []map[string]string
	for _, name := range []string{"r1", "r2"} {
		r := f.do(t, call{method: "POST", path: "/api/v1/agent/register", body: map[string]any{"join_token": jt["secret"], "name": name, "capabilities": caps}})
		r.want(t, 201, "")
		tokens = append(tokens, bearer(r.json["token"].(string)))
	}
	poll := map[string]any{"protocol": agentapi.Protocol, "state": "busy", "jobs": []any{}}
	f.do(t, call{method: "POST", path: "/api/v1/agent/poll", header: tokens[0], body: poll}).want(t, 204, "")
	r = f.do(t, call{method: "DELETE", path: "/api/v1/labs/makerspace/join-tokens/" + jt["id"].(string) + "?retire_machines=true", header: f.owner})
	r.want(t, 200, "")
	if r.json["retired"] != 2.0 {
		t.Fatalf("retired: got %s, want 2", r.body)
	}
	for _, tok := range tokens {
		f.do(t, call{method: "POST", path: "/api/v1/agent/poll", header: tok, body: poll}).want(t, 401, "unauthenticated")
	}
	// The machine enrolled by code, not by the token, works on.
	f.do(t, call{method: "POST", path: "/api/v1/agent/poll", header: f.machine, body: poll}).want(t, 204, "")
}

// trickle is a request body that sends one byte every interval, as a slow-loris does.
type trickle struct {
	left     int
	interval time.Duration
}

func (r *trickle) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.interval)
	r.left--
	p[0] = ' '
	return 1, nil
}

// TestSlowBodiesAreCut: a body that arrives slower than the minimum rate is cut off
// with 408, for JSON and uploads alike, instead of holding its connection.
func TestSlowBodiesAreCut(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MinBodyRate: 1000, BodyRateGrace: 200 * time.Millisecond})
	auth := login(t, b, "ada")
	srv := httptest.NewServer(b.h)
	defer srv.Close()
	for _, c := range []struct{ path, ctype string }{
		{"/api/v1/users", "application/json"},
		{"/api/v1/designs", "multipart/form-data; boundary=x"},
	} {
		req, _ := http.NewRequest("POST", srv.URL+c.path, &trickle{left: 100, interval: 20 * time.Millisecond})
		req.Header.Set("Content-Type", c.ctype)
		req.Header.Set("Authorization", auth["Authorization"])
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "too_slow") {
			t.Fatalf("%s: got %d %s after %s, want 408 too_slow", c.path, resp.StatusCode, body, time.Since(start).Round(time.Millisecond))
		}
	}
}

// TestExpensiveCallsAreBounded: when every place for an expensive call is taken, the
// next gets 503 with Retry-After at once, and the rest of the hub answers as before.
func TestExpensiveCallsAreBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	s := b.server
	cookies, csrf := browserSession(t, b, "ada") // before every place is taken
	for _, g := range s.gates {
		for range cap(g) {
			g <- struct{}{} // every place taken
		}
	}
	defer func() {
		for _, g := range s.gates {
			for len(g) > 0 {
				<-g
			}
		}
	}()
	for _, c := range []call{
		{method: "POST", path: "/api/v1/mesh/check", body: newMultipart().file("file", "cube.stl", cubeSTL).done()},
		{method: "GET", path: "/api/v1/designs?q=x"},
		{method: "GET", path: "/designs/x/thumbnail.png"},
		// every call that checks or sets a password (Argon2id)
		{method: "POST", path: "/api/v1/users", body: map[string]string{"handle": "eve", "email": "eve@example.org", "password": "a long password"}},
		{method: "POST", path: "/api/v1/tokens", body: map[string]string{"handle": "ada", "password": "a guess", "name": "x"}},
		{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": "ada", "password": "a guess"}},
	} {
		r := b.do(t, c)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || r.errorCode() != "busy" {
			t.Fatalf("%s %s with every place taken: got %d %s, want 503 busy with Retry-After", c.method, c.path, r.status, r.body)
		}
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for path, v := range map[string]url.Values{
		"/login":          {"handle": {"ada"}, "password": {"a guess"}},
		"/signup":         {"handle": {"eve"}, "email": {"eve@example.org"}, "password": {"a long password"}},
		"/account/tokens": {"name": {"x"}, "password": {"a guess"}, "csrf_token": {csrf}},
	} {
		c := call{method: "POST", path: path, body: v.Encode(), header: form}
		if v.Has("csrf_token") {
			c.cookies = cookies
		}
		r := b.do(t, c)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("POST %s with every place taken: got %d, want 503 with Retry-After", path, r.status)
		}
	}
	b.do(t, call{method: "GET", path: "/healthz"}).want(t, 200, "")
}

// TestStalledBodiesFreeTheirPlace: a body that stops arriving is cut once the grace
// period passes, so stalled uploads cannot hold every place of an expensive call.
func TestStalledBodiesFreeTheirPlace(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{BodyRateGrace: 300 * time.Millisecond})
	srv := httptest.NewServer(b.h)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for range 2 { // every place of the mesh check
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /api/v1/mesh/check HTTP/1.1\r\nHost: %s\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.stl\"\r\n\r\nsolid", addr)
	}
	waitUntil(t, 10*time.Second, "a mesh check to get a place again", func() bool {
		r := b.do(t, call{method: "POST", path: "/api/v1/mesh/check", body: newMultipart().file("file", "cube.stl", cubeSTL).done()})
		return r.status == 200
	})
}

// TestOldEnrolmentCodesAreVoid: a code handed out before a new one, or by a member
// since removed, cannot take the machine over.
func TestOldEnrolmentCodesAreVoid(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	f.do(t, call{method: "POST", path: "/api/v1/labs/makerspace/members", header: f.owner, body: map[string]string{"handle": "grace", "role": "operator"}}).want(t, 200, "")
	rotate := func(who map[string]string) string {
		r := f.do(t, call{method: "POST", path: "/api/v1/machines/" + f.machineID + "/token", header: who})
		r.want(t, 200, "")
		return r.json["enrollment_code"].(string)
	}
	kept := rotate(f.maker) // grace keeps this one
	newer := rotate(f.owner)
	f.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": kept}}).want(t, 403, "forbidden")
	stolen := rotate(f.maker)
	f.do(t, call{method: "DELETE", path: "/api/v1/labs/makerspace/members/grace", header: f.owner}).want(t, 204, "")
	f.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": stolen}}).want(t, 403, "forbidden")
	f.do(t, call{method: "POST", path: "/api/v1/agent/enroll", body: map[string]string{"code": newer}}).want(t, 403, "forbidden")
}

// TestHiddenDesignsAreNotMade: hiding a design turns down its jobs not yet on a
// machine, and a job already claimed cannot fetch the hidden file.
func TestHiddenDesignsAreNotMade(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	jobs := f.order(t, map[string]any{"files": []string{"parts/base.stl"}, "quantity": 2})
	c, _ := f.poll(t, f.machine)
	if c.id == "" {
		t.Fatal("no job claimed")
	}
	f.do(t, call{method: "POST", path: "/api/v1/designs/spool-holder/hide", header: f.owner}).want(t, 204, "")
	for _, j := range jobs {
		id := j.(map[string]any)["id"].(string)
		if id == c.id {
			continue
		}
		if st := f.jobState(t, id); st["state"] != "rejected" {
			t.Fatalf("a queued job of the hidden design: got %v, want rejected", st["state"])
		}
	}
	r := f.do(t, call{method: "GET", path: c.file, header: merge(f.machine, map[string]string{"X-Fab-Lease": c.lease})})
	r.want(t, 403, "forbidden")
	if bytes.Contains(r.body, cubeSTL[:80]) {
		t.Fatal("the hidden design's file was served")
	}
}

// TestIPv6ClientsCountByPrefix: addresses of one /64 share their limits.
func TestIPv6ClientsCountByPrefix(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{SignupsPerHour: 2})
	for i := range 3 {
		r := b.do(t, call{method: "POST", path: "/api/v1/users", remote: fmt.Sprintf("[2001:db8:1:2::%x]", i+1),
			body: map[string]string{"handle": fmt.Sprint("v6user", i), "email": fmt.Sprintf("v6-%d@example.org", i), "password": "correct horse battery"}})
		if want := map[bool]int{true: 201, false: 429}[i < 2]; r.status != want {
			t.Fatalf("sign-up %d from the same /64: got %d %s, want %d", i, r.status, r.body, want)
		}
	}
	b.do(t, call{method: "POST", path: "/api/v1/users", remote: "[2001:db8:1:3::1]",
		body: map[string]string{"handle": "v6other", "email": "v6o@example.org", "password": "correct horse battery"}}).want(t, 201, "")
}

// TestQuotas: each person's designs a day, labs and jobs a day are bounded by
// configuration; an attempt that fails uses none; site admins have no quotas.
func TestQuotas(t *testing.T) {
	t.Parallel()
	b := setupHub(t, HubConfig{Limits: catalog.Limits{DesignsPerDay: 2}, Fabrication: fabrication.Options{LabsPerUser: 1, JobsPerDay: 3}}, nil)
	admin := login(t, b, "ada")
	grace := login(t, b, "grace")
	bad := newMultipart().field("meta", map[string]any{"title": "No files", "license": "CC0-1.0"}).done()
	b.do(t, call{method: "POST", path: "/api/v1/designs", body: bad, header: grace}).want(t, 422, "invalid") // uses no quota
	for i := range 2 {
		publish(t, b, grace, map[string]any{"title": fmt.Sprint("Part ", i), "license": "CC0-1.0"}).want(t, 201, "")
		if i == 0 { // a fork refused for its taken name uses no quota either
			b.do(t, call{method: "POST", path: "/api/v1/designs/part-0/forks", header: grace, body: map[string]any{"license": "CC0-1.0", "slug": "part-0"}}).want(t, 409, "conflict")
		}
	}
	r := publish(t, b, grace, map[string]any{"title": "Part 3", "license": "CC0-1.0"})
	r.want(t, 429, "rate_limited")
	if r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "quota of 2 new designs") {
		t.Fatalf("over the design quota: got %s", r.body)
	}
	b.do(t, call{method: "POST", path: "/api/v1/designs/part-0/forks", header: grace, body: map[string]any{"license": "CC0-1.0"}}).want(t, 429, "rate_limited")
	publish(t, b, admin, map[string]any{"title": "Admin part", "license": "CC0-1.0"}).want(t, 201, "")

	b.do(t, call{method: "POST", path: "/api/v1/labs", header: grace, body: map[string]string{"slug": "graces", "name": "Grace's"}}).want(t, 201, "")
	b.do(t, call{method: "POST", path: "/api/v1/labs", header: grace, body: map[string]string{"slug": "graces2", "name": "Another"}}).want(t, 429, "rate_limited")

	order := func(n int) reply {
		return b.do(t, call{method: "POST", path: "/api/v1/orders", header: grace, body: map[string]any{"lab": "graces", "design": "part-0", "files": []string{"parts/base.stl"}, "quantity": n}})
	}
	order(2).want(t, 201, "")
	order(2).want(t, 429, "rate_limited")
	order(1).want(t, 201, "")
}

// TestAnalysisBudget: meshes being analysed share a budget of bytes; a request that
// does not fit is answered 503 at once.
func TestAnalysisBudget(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{AnalysisBudget: 8 << 20})
	if !b.server.analysis.sem.TryAcquire(8 << 20) { // a large analysis is under way
		t.Fatal("the budget was not free")
	}
	r := b.do(t, call{method: "POST", path: "/api/v1/mesh/check", body: newMultipart().file("file", "cube.stl", cubeSTL).done()})
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "analysing other meshes") {
		t.Fatalf("with the budget taken: got %d %s, want 503", r.status, r.body)
	}
	b.server.analysis.sem.Release(8 << 20)
	b.do(t, call{method: "POST", path: "/api/v1/mesh/check", body: newMultipart().file("file", "cube.stl", cubeSTL).done()}).want(t, 200, "")
}
