package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

// cheapArgon keeps tests fast; the hashing code path is the production one.
var cheapArgon = account.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1}

type bundle struct {
	h       http.Handler
	logs    *syncBuffer
	blobDir string
	fab     fabrication.Fabrication
	server  *Server
	hub     *Hub
	db      *sqlite.DB // the hub's store, for what a test does behind the hub's back
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type failingPinger struct{}

func (failingPinger) Ping(context.Context) error { return errors.New("down") }

func setup(t *testing.T, cfg Config, extra ...func(*gin.Engine)) bundle {
	t.Helper()
	return setupWithLimits(t, cfg, catalog.Limits{}, extra...)
}

func setupWithLimits(t *testing.T, cfg Config, limits catalog.Limits, extra ...func(*gin.Engine)) bundle {
	t.Helper()
	return setupAll(t, cfg, limits, fabrication.Options{}, extra...)
}

// setupAll builds the whole hub on real embedded storage in a temp dir.
func setupAll(t *testing.T, cfg Config, limits catalog.Limits, fo fabrication.Options, extra ...func(*gin.Engine)) bundle {
	t.Helper()
	return setupHub(t, HubConfig{Web: cfg, Limits: limits, Fabrication: fo, Accounts: account.Options{Argon2: cheapArgon, FailuresPerKey: 5}}, nil, extra...)
}

// setupHub builds a hub with NewHub, as cmd/fabhub does, on a SQLite file and a blob
// folder in a temp dir. ready, when not nil, replaces what /readyz checks.
func setupHub(t *testing.T, hc HubConfig, ready map[string]Pinger, extra ...func(*gin.Engine)) bundle {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "fab.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := localblob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	hc.Log = slog.New(slog.NewTextHandler(logs, nil))
	if hc.Accounts.Argon2 == (account.Argon2Params{}) {
		hc.Accounts.Argon2 = cheapArgon
	}
	if ready == nil {
		ready = map[string]Pinger{"db": db}
	}
	hub, err := NewHub(hc, Stores{Accounts: db.Accounts(), Catalog: db.Catalog(), Fabrication: db.Fabrication(), Blobs: blobs, Quotas: db.Quotas(),
		Webhooks: db.Webhooks(), Leases: db.Leases(), Federation: db.Federation(), Ready: ready})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); hub.Run(ctx) }()
	t.Cleanup(func() { stop(); <-ran }) // before the database closes (cleanups run last first)
	for _, f := range extra {
		f(hub.Handler.(*gin.Engine))
	}
	return bundle{h: hub.Handler, logs: logs, blobDir: filepath.Join(dir, "blobs"), fab: hub.Fab, server: hub.server, hub: hub, db: db}
}

// startAgain starts and runs a second hub on b's store and blobs, as a restart would
// (until the test ends), and returns its log.
func startAgain(t *testing.T, b bundle, hc HubConfig) *syncBuffer {
	t.Helper()
	logs := &syncBuffer{}
	hc.Log = slog.New(slog.NewTextHandler(logs, nil))
	hc.Accounts.Argon2 = cheapArgon
	blobs, err := localblob.Open(b.blobDir)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := NewHub(hc, Stores{Accounts: b.db.Accounts(), Catalog: b.db.Catalog(), Fabrication: b.db.Fabrication(), Blobs: blobs,
		Quotas: b.db.Quotas(), Webhooks: b.db.Webhooks(), Leases: b.db.Leases(), Federation: b.db.Federation()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); hub.Run(ctx) }()
	t.Cleanup(func() { stop(); <-ran })
	return logs
}

type call struct {
	method, path string
	body         any
	header       map[string]string
	cookies      []*http.Cookie
	remote       string // the client's address (default 192.0.2.1)
}

type reply struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (b bundle) do(t *testing.T, c call) reply {
	t.Helper()
	var body io.Reader
	switch v := c.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(v)
	case io.Reader:
		body = v
	default:
		j, _ := json.Marshal(v)
		body = bytes.NewReader(j)
	}
	req := httptest.NewRequest(c.method, c.path, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if mp, ok := c.body.(*multipartBody); ok {
		req = httptest.NewRequest(c.method, c.path, bytes.NewReader(mp.buf.Bytes()))
		req.Header.Set("Content-Type", mp.contentType)
	}
	req.RemoteAddr = "192.0.2.1:1234"
	if c.remote != "" {
		req.RemoteAddr = c.remote + ":1234"
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	for _, ck := range c.cookies {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	r := reply{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	json.Unmarshal(r.body, &r.json)
	return r
}

// errorCode returns error.code of a JSON error reply, or "" when the shape is wrong.
func (r reply) errorCode() string {
	e, _ := r.json["error"].(map[string]any)
	code, _ := e["code"].(string)
	if msg, _ := e["message"].(string); msg == "" {
		return ""
	}
	return code
}

func (r reply) want(t *testing.T, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got status %d, want %d; body %s", r.status, status, r.body)
	}
	if code != "" && r.errorCode() != code {
		t.Fatalf("got error code %q, want %q; body %s", r.errorCode(), code, r.body)
	}
}

func signUp(t *testing.T, b bundle, handle string) {
	t.Helper()
	b.do(t, call{method: "POST", path: "/api/v1/users", body: map[string]string{
		"handle": handle, "email": handle + "@example.org", "password": "correct horse battery"}}).want(t, 201, "")
}

func TestSignUp(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	r := b.do(t, call{method: "POST", path: "/api/v1/users", body: map[string]string{
		"handle": "Ada", "email": "ada@example.org", "password": "correct horse battery"}})
	r.want(t, 201, "")
	user := r.json["user"].(map[string]any)
	if user["handle"] != "ada" || user["admin"] != true {
		t.Fatalf("got user %v, want handle ada, admin true", user)
	}
	if strings.Contains(string(r.body), "argon2") || strings.Contains(string(r.body), "password") {
		t.Fatalf("reply leaks the password hash: %s", r.body)
	}
	r = b.do(t, call{method: "POST", path: "/api/v1/users", body: map[string]string{
		"handle": "grace", "email": "grace@example.org", "password": "correct horse battery"}})
	r.want(t, 201, "")
	if r.json["user"].(map[string]any)["admin"] != false {
		t.Fatalf("second account: got admin true, want false")
	}
	b.do(t, call{method: "POST", path: "/api/v1/users", body: map[string]string{
		"handle": "ADA", "email": "other@example.org", "password": "correct horse battery"}}).want(t, 409, "conflict")
}

func TestSignUpRefusesBadFields(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	for _, tc := range []struct {
		handle, email, password, field string
	}{
		{"a", "a@example.org", "correct horse battery", "handle"},
		{"-ada", "a@example.org", "correct horse battery", "handle"},
		{"ada--b", "a@example.org", "correct horse battery", "handle"},
		{"ada/../x", "a@example.org", "correct horse battery", "handle"},
		{"admin", "a@example.org", "correct horse battery", "handle"},
		{"ada", "not an email", "correct horse battery", "email"},
		{"ada", "Ada <ada@example.org>", "correct horse battery", "email"},
		{"ada", "ada@example.org", "short", "password"},
		{"ada", "ada@example.org", strings.Repeat("p", 1025), "password"},
	} {
		r := b.do(t, call{method: "POST", path: "/api/v1/users", body: map[string]string{
			"handle": tc.handle, "email": tc.email, "password": tc.password}})
		r.want(t, 422, "invalid")
		if got := r.json["error"].(map[string]any)["field"]; got != tc.field {
			t.Errorf("%+v: got field %v, want %s", tc, got, tc.field)
		}
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MaxBodyBytes: 4096}, func(r *gin.Engine) {
		r.GET("/api/v1/test-panic", func(*gin.Context) { panic("boom") })
	})
	big := `{"handle":"` + strings.Repeat("x", 5000) + `"}`
	b.do(t, call{method: "POST", path: "/api/v1/users", body: big}).want(t, 413, "too_large")
	// No Content-Length (a streamed body): the limit holds while reading.
	b.do(t, call{method: "POST", path: "/api/v1/users", body: io.MultiReader(strings.NewReader(big))}).want(t, 413, "too_large")
	b.do(t, call{method: "POST", path: "/api/v1/users", body: `{"handle":`}).want(t, 400, "malformed_json")
	b.do(t, call{method: "POST", path: "/api/v1/users", body: `not json`}).want(t, 400, "malformed_json")
	b.do(t, call{method: "POST", path: "/api/v1/users", body: ``}).want(t, 400, "malformed_json")
	b.do(t, call{method: "POST", path: "/api/v1/users", body: `{"handle":5}`}).want(t, 400, "malformed_json")
	b.do(t, call{method: "POST", path: "/api/v1/users", body: `{"handel":"ada"}`}).want(t, 400, "malformed_json")
	b.do(t, call{method: "GET", path: "/api/v1/no-such-thing"}).want(t, 404, "not_found")
	b.do(t, call{method: "PUT", path: "/api/v1/me"}).want(t, 405, "method_not_allowed")
	r := b.do(t, call{method: "GET", path: "/api/v1/test-panic"})
	r.want(t, 500, "internal")
	if !strings.Contains(b.logs.String(), "boom") {
		t.Errorf("the panic was not logged")
	}
	// The server keeps serving after all of that.
	b.do(t, call{method: "GET", path: "/healthz"}).want(t, 200, "")
}

func TestLoginFailuresLookAlikeAndAreThrottled(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	signUp(t, b, "ada")
	wrong := b.do(t, call{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": "ada", "password": "wrong password!"}})
	unknown := b.do(t, call{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": "nobody", "password": "wrong password!"}})
	wrong.want(t, 401, "unauthenticated")
	unknown.want(t, 401, "unauthenticated")
	if !bytes.Equal(wrong.body, unknown.body) {
		t.Fatalf("wrong password and unknown handle differ:\n%s\n%s", wrong.body, unknown.body)
	}
	// FailuresPerKey is 5 in setup: the next failures from this client are refused.
	var last reply
	for range 5 {
		last = b.do(t, call{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": "ada", "password": "still wrong!!"}})
	}
	last.want(t, 429, "rate_limited")
	if last.header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	// Even the right password waits out the window, from that client.
	b.do(t, call{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": "ada", "password": "correct horse battery"}}).want(t, 429, "rate_limited")
	// But someone else's failures do not lock ada out of her own client.
	b.do(t, call{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": "ada", "password": "correct horse battery"}, remote: "198.51.100.7"}).want(t, 200, "")
}

func TestTokens(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	signUp(t, b, "ada")
	r := b.do(t, call{method: "POST", path: "/api/v1/tokens", body: map[string]string{"handle": "ada", "password": "correct horse battery", "name": "ci"}})
	r.want(t, 201, "")
	tok := r.json["token"].(map[string]any)
	secret, _ := tok["secret"].(string)
	if !strings.HasPrefix(secret, "fab_p_") || tok["id"] == "" {
		t.Fatalf("got token %v", tok)
	}
	bearer := map[string]string{"Authorization": "Bearer " + secret}
	r = b.do(t, call{method: "GET", path: "/api/v1/me", header: bearer})
	r.want(t, 200, "")
	if r.json["user"].(map[string]any)["handle"] != "ada" {
		t.Fatalf("me: got %s", r.body)
	}
	r = b.do(t, call{method: "GET", path: "/api/v1/tokens", header: bearer})
	r.want(t, 200, "")
	if strings.Contains(string(r.body), secret) || !strings.Contains(string(r.body), `"ci"`) {
		t.Fatalf("list: got %s", r.body)
	}
	// A bearer POST needs no CSRF token: no cookie, nothing a browser sends by itself.
	b.do(t, call{method: "DELETE", path: "/api/v1/tokens/" + tok["id"].(string), header: bearer}).want(t, 204, "")
	b.do(t, call{method: "GET", path: "/api/v1/me", header: bearer}).want(t, 401, "unauthenticated")
	b.do(t, call{method: "GET", path: "/api/v1/me", header: map[string]string{"Authorization": "Basic abc"}}).want(t, 401, "unauthenticated")
	b.do(t, call{method: "GET", path: "/api/v1/me"}).want(t, 401, "unauthenticated")
	b.do(t, call{method: "POST", path: "/api/v1/tokens", body: map[string]string{"handle": "ada", "password": "correct horse battery", "name": ""}}).want(t, 422, "invalid")
	if logs := b.logs.String(); strings.Contains(logs, secret) || strings.Contains(logs, "correct horse") {
		t.Fatalf("a secret reached the log:\n%s", logs)
	}
}

func TestSessionCookieAndCSRF(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{SecureCookies: true})
	signUp(t, b, "ada")
	r := b.do(t, call{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": "ada", "password": "correct horse battery"}})
	r.want(t, 200, "")
	csrf, _ := r.json["csrf_token"].(string)
	cookies := (&http.Response{Header: r.header}).Cookies()
	if len(cookies) != 1 || csrf == "" {
		t.Fatalf("got cookies %v and csrf %q", cookies, csrf)
	}
	ck := cookies[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || !ck.Secure || ck.Name != "__Host-fab_session" || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("got cookie %+v, want __Host-fab_session, HttpOnly, SameSite=Lax, Secure, Path=/", ck)
	}
	jar := []*http.Cookie{{Name: ck.Name, Value: ck.Value}}
	// Over https only the __Host- cookie counts: one planted without the prefix (from a
	// sibling subdomain) is not a session.
	b.do(t, call{method: "GET", path: "/api/v1/me", cookies: []*http.Cookie{{Name: "fab_session", Value: ck.Value}}}).want(t, 401, "unauthenticated")
	r = b.do(t, call{method: "GET", path: "/api/v1/me", cookies: jar})
	r.want(t, 200, "")
	if r.json["csrf_token"] != csrf {
		t.Fatalf("me: got csrf %v, want %s", r.json["csrf_token"], csrf)
	}
	// Unsafe requests with the cookie but without (or with a wrong) CSRF token.
	b.do(t, call{method: "DELETE", path: "/api/v1/sessions/current", cookies: jar}).want(t, 403, "csrf")
	b.do(t, call{method: "DELETE", path: "/api/v1/sessions/current", cookies: jar, header: map[string]string{csrfHeader: "forged"}}).want(t, 403, "csrf")
	b.do(t, call{method: "POST", path: "/api/v1/users", cookies: jar, body: map[string]string{}}).want(t, 403, "csrf")
	b.do(t, call{method: "GET", path: "/api/v1/me", cookies: jar}).want(t, 200, "")
	b.do(t, call{method: "DELETE", path: "/api/v1/sessions/current", cookies: jar, header: map[string]string{csrfHeader: csrf}}).want(t, 204, "")
	b.do(t, call{method: "GET", path: "/api/v1/me", cookies: jar}).want(t, 401, "unauthenticated")
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	b.do(t, call{method: "GET", path: "/healthz"}).want(t, 200, "")
	b.do(t, call{method: "GET", path: "/readyz"}).want(t, 200, "")
	r := b.do(t, call{method: "GET", path: "/metrics"})
	r.want(t, 200, "")
	if !strings.Contains(string(r.body), `fabhub_http_requests_total{method="GET",route="/readyz",status="200"} 1`) {
		t.Fatalf("metrics lack the request counter:\n%.2000s", r.body)
	}
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics content type %q, want Prometheus text", r.header.Get("Content-Type"))
	}
	if id := r.header.Get("X-Request-ID"); len(id) < 8 {
		t.Fatalf("got request id %q", id)
	}

	down := setupHub(t, HubConfig{}, map[string]Pinger{"blobs": failingPinger{}})
	r = down.do(t, call{method: "GET", path: "/readyz"})
	r.want(t, 503, "not_ready")
	if r.json["checks"].(map[string]any)["blobs"] != "unavailable" {
		t.Fatalf("got %s", r.body)
	}
}

func TestRequestIDIsEchoedWhenSane(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	r := b.do(t, call{method: "GET", path: "/healthz", header: map[string]string{"X-Request-ID": "abcdef123456"}})
	if got := r.header.Get("X-Request-ID"); got != "abcdef123456" {
		t.Fatalf("got %q, want the caller's id", got)
	}
	r = b.do(t, call{method: "GET", path: "/healthz", header: map[string]string{"X-Request-ID": "evil\"id with spaces"}})
	if got := r.header.Get("X-Request-ID"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("got %q, want a fresh id", got)
	}
}

func TestSessionExpires(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := setupHub(t, HubConfig{Clock: clock, Accounts: account.Options{SessionTTL: time.Hour}}, nil)
	signUp(t, b, "ada")
	r := b.do(t, call{method: "POST", path: "/api/v1/sessions", body: map[string]string{"handle": "ada", "password": "correct horse battery"}})
	r.want(t, 200, "")
	ck := (&http.Response{Header: r.header}).Cookies()[0]
	jar := []*http.Cookie{{Name: ck.Name, Value: ck.Value}}
	b.do(t, call{method: "GET", path: "/api/v1/me", cookies: jar}).want(t, 200, "")
	mu.Lock()
	now = now.Add(61 * time.Minute)
	mu.Unlock()
	b.do(t, call{method: "GET", path: "/api/v1/me", cookies: jar}).want(t, 401, "unauthenticated")
}
