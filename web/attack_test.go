package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
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
	} {
		h["Content-Type"] = "application/x-www-form-urlencoded"
		for _, path := range []string{"/login", "/signup"} {
			r := b.do(t, call{method: "POST", path: path, body: form, header: h})
			if r.status != http.StatusForbidden || len(r.header.Values("Set-Cookie")) > 0 {
				t.Fatalf("POST %s with %v: got %d and cookies %v, want 403 and none", path, h, r.status, r.header.Values("Set-Cookie"))
			}
		}
	}
	same := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin", "Origin": "http://example.com"}
	if r := b.do(t, call{method: "POST", path: "/login", body: form, header: same}); r.status != http.StatusSeeOther {
		t.Fatalf("a same-origin login form: got %d, want 303", r.status)
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
