package web

import (
	"bytes"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/fabrication"
)

// browserSession signs up through the HTML form and returns the session cookie and the
// CSRF token the pages embed.
func browserSession(t *testing.T, b bundle, handle string) ([]*http.Cookie, string) {
	t.Helper()
	form := url.Values{"handle": {handle}, "email": {handle + "@example.org"}, "password": {"correct horse battery"}}
	r := b.do(t, call{method: "POST", path: "/signup", body: form.Encode(), header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/account" {
		t.Fatalf("sign-up form: got %d to %q, want 303 to /account; %s", r.status, r.header.Get("Location"), r.body)
	}
	cookies := (&http.Response{Header: r.header}).Cookies()
	page := b.do(t, call{method: "GET", path: "/account", cookies: cookies})
	m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindSubmatch(page.body)
	if m == nil {
		t.Fatalf("no CSRF token on the account page: %s", page.body)
	}
	return cookies, string(m[1])
}

var scriptTag = regexp.MustCompile(`<script[^>]*>`)

// checkPage asserts a page is HTML with the strict CSP and no inline script.
func checkPage(t *testing.T, r reply, path string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: got %d, want 200; %s", path, r.status, r.body)
	}
	csp := r.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("GET %s: CSP %q, want script-src 'self' and nothing unsafe", path, csp)
	}
	for _, tag := range scriptTag.FindAll(r.body, -1) {
		if !strings.Contains(string(tag), "src=") {
			t.Errorf("GET %s: an inline script: %s", path, tag)
		}
	}
}

const xssTitle = `<script>alert(1)</script><img src=x onerror=alert(2)>`

// TestPagesEscapeAHostileTitle: a design titled with markup shows as text everywhere its
// title appears: its page, search, a fork's lineage, the lab's queue, the order.
func TestPagesEscapeAHostileTitle(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	r := publish(t, f.bundle, f.maker, map[string]any{"title": xssTitle, "license": "CC-BY-4.0", "summary": xssTitle, "tags": []string{"xss"}})
	r.want(t, 201, "")
	slug := r.json["design"].(map[string]any)["slug"].(string)
	fork := f.do(t, call{method: "POST", path: "/api/v1/designs/" + slug + "/forks", header: f.owner, body: map[string]any{"license": "CC-BY-4.0", "title": "Fork of it"}})
	fork.want(t, 201, "")
	forkSlug := fork.json["design"].(map[string]any)["slug"].(string)
	order := f.do(t, call{method: "POST", path: "/api/v1/orders", header: f.maker, body: map[string]any{"lab": "makerspace", "design": slug, "quantity": 1}})
	order.want(t, 201, "")
	orderID := order.json["order"].(map[string]any)["id"].(string)
	cookies, _ := browserSession(t, f.bundle, "viewer")

	for _, path := range []string{"/", "/search?q=script", "/search?tag=xss", "/designs/" + slug, "/designs/" + forkSlug, "/labs/makerspace", "/orders/" + orderID, "/designs/" + slug + "/fork", "/designs/" + slug + "/make?lab=makerspace"} {
		r := f.do(t, call{method: "GET", path: path, cookies: cookies})
		checkPage(t, r, path)
		body := string(r.body)
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
			t.Errorf("GET %s: the title came out as markup", path)
		}
		if path != "/labs/makerspace" && !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") && !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/scrip…") {
			t.Errorf("GET %s: the title is not shown as text", path)
		}
	}
}

func TestFormPostsNeedTheirCSRFToken(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	cookies, token := browserSession(t, b, "ada")
	form := func(v url.Values) call {
		return call{method: "POST", path: "/account/tokens", body: v.Encode(), cookies: cookies,
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}
	}
	r := b.do(t, form(url.Values{"name": {"laptop"}}))
	if r.status != http.StatusForbidden || !strings.Contains(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "CSRF") {
		t.Fatalf("a form post without its token: got %d %s, want a 403 page naming CSRF", r.status, r.header.Get("Content-Type"))
	}
	if r := b.do(t, form(url.Values{"name": {"laptop"}, "csrf_token": {"wrong"}})); r.status != http.StatusForbidden {
		t.Fatalf("a wrong token: got %d, want 403", r.status)
	}
	// A session alone does not mint a token: the password is asked again.
	if r := b.do(t, form(url.Values{"name": {"laptop"}, "csrf_token": {token}, "password": {"not the password"}})); r.status != http.StatusUnprocessableEntity || strings.Contains(string(r.body), "fab_p_") {
		t.Fatalf("a wrong password: got %d, want 422 and no token", r.status)
	}
	r = b.do(t, form(url.Values{"name": {"laptop"}, "csrf_token": {token}, "password": {"correct horse battery"}}))
	if r.status != http.StatusCreated || !strings.Contains(string(r.body), "fab_p_") {
		t.Fatalf("with its token: got %d, want 201 and the new token shown once; %s", r.status, r.body)
	}
	// Log out is a form post too.
	if r := b.do(t, call{method: "POST", path: "/logout", cookies: cookies, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}); r.status != http.StatusForbidden {
		t.Fatalf("log out without the token: got %d, want 403", r.status)
	}
}

func TestPagesForEveryone(t *testing.T) {
	t.Parallel()
	f := newLab(t, fabrication.Policy{})
	cookies, _ := browserSession(t, f.bundle, "ada2")
	for _, path := range []string{"/", "/search", "/login", "/signup", "/labs", "/labs/makerspace", "/designs/spool-holder", "/designs/spool-holder?v=1"} {
		checkPage(t, f.do(t, call{method: "GET", path: path}), path)
	}
	for _, path := range []string{"/account", "/designs/new", "/designs/spool-holder/fork", "/designs/spool-holder/make?lab=makerspace"} {
		if r := f.do(t, call{method: "GET", path: path}); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login?next=") {
			t.Errorf("GET %s signed out: got %d to %q, want a redirect to log in", path, r.status, r.header.Get("Location"))
		}
		checkPage(t, f.do(t, call{method: "GET", path: path, cookies: cookies}), path)
	}
	if r := f.do(t, call{method: "GET", path: "/admin", cookies: cookies}); r.status != http.StatusForbidden {
		t.Errorf("/admin for a non-admin: got %d, want 403", r.status)
	}
	r := f.do(t, call{method: "GET", path: "/designs/no-such-design"})
	if r.status != http.StatusNotFound || !strings.Contains(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("a missing design: got %d %s, want a 404 page", r.status, r.header.Get("Content-Type"))
	}
	if r := f.do(t, call{method: "GET", path: "/login?next=//evil.example/x"}); !strings.Contains(string(r.body), `name="next" value="/"`) {
		t.Errorf("an off-site next= must become /")
	}
	if r := f.do(t, call{method: "GET", path: "/assets/vendor/three/LICENSE"}); r.status != http.StatusOK || !strings.Contains(string(r.body), "MIT") {
		t.Errorf("three.js's license is not served with it: %d", r.status)
	}

	// Cards show a drawing of the design's first mesh.
	r = f.do(t, call{method: "GET", path: "/designs/spool-holder/thumbnail.png"})
	img, err := png.Decode(bytes.NewReader(r.body))
	if r.status != http.StatusOK || err != nil {
		t.Fatalf("thumbnail: got %d, %v", r.status, err)
	}
	drawn := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			if _, _, _, a := img.At(x, y).RGBA(); a != 0 {
				drawn++
			}
		}
	}
	if img.Bounds().Dx() != thumbW || drawn < thumbW*thumbH/20 {
		t.Fatalf("thumbnail: %v with %d drawn pixels, want the mesh drawn at %dx%d", img.Bounds(), drawn, thumbW, thumbH)
	}
	if r2 := f.do(t, call{method: "GET", path: "/designs/spool-holder/thumbnail.png", header: map[string]string{"If-None-Match": r.header.Get("ETag")}}); r2.status != http.StatusNotModified {
		t.Errorf("thumbnail revalidation: got %d, want 304", r2.status)
	}
	if home := f.do(t, call{method: "GET", path: "/"}); !strings.Contains(string(home.body), `src="/designs/spool-holder/thumbnail.png"`) {
		t.Error("the home page's card has no thumbnail")
	}
}

// TestFlagsReachTheMaintainers: a person reports a design from its page; maintainers
// see the report on /admin and close it; others may not see reports.
func TestFlagsReachTheMaintainers(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	admin, adminCSRF := browserSession(t, b, "boss") // the first account is the site admin
	maker := login(t, b, "maker")
	publish(t, b, maker, map[string]any{"title": "Bracket", "license": "CC-BY-4.0"}).want(t, 201, "")
	reporter, csrf := browserSession(t, b, "reporter")
	formPost := func(path string, cookies []*http.Cookie, v url.Values) reply {
		return b.do(t, call{method: "POST", path: path, body: v.Encode(), cookies: cookies, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	}
	reason := "copied from a <b>paid</b> model"
	for range 2 { // the second report from the same person changes nothing
		r := formPost("/designs/bracket/flag", reporter, url.Values{"reason": {reason}, "csrf_token": {csrf}})
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/designs/bracket?reported=1" {
			t.Fatalf("report: got %d to %q", r.status, r.header.Get("Location"))
		}
	}
	b.do(t, call{method: "POST", path: "/api/v1/designs/bracket/flag", header: maker, body: map[string]string{"reason": " "}}).want(t, 422, "invalid")
	b.do(t, call{method: "POST", path: "/api/v1/designs/bracket/flag", header: maker, body: map[string]string{"reason": "spam"}}).want(t, 204, "")
	b.do(t, call{method: "GET", path: "/api/v1/flags", header: maker}).want(t, 403, "forbidden")

	page := b.do(t, call{method: "GET", path: "/admin", cookies: admin})
	checkPage(t, page, "/admin")
	if !strings.Contains(string(page.body), "copied from a &lt;b&gt;paid&lt;/b&gt; model") || !strings.Contains(string(page.body), "spam") {
		t.Fatalf("/admin does not list both reports: %s", page.body)
	}
	r := b.do(t, call{method: "GET", path: "/api/v1/flags", cookies: admin})
	r.want(t, 200, "")
	if ds := r.json["designs"].([]any); len(ds) != 1 || len(ds[0].(map[string]any)["flags"].([]any)) != 2 {
		t.Fatalf("flags: got %s, want one design with two reports", r.body)
	}
	if r := formPost("/admin/designs/bracket/dismiss", admin, url.Values{"csrf_token": {adminCSRF}, "back": {"/admin"}}); r.status != http.StatusSeeOther {
		t.Fatalf("dismiss: got %d %s", r.status, r.body)
	}
	r = b.do(t, call{method: "GET", path: "/api/v1/flags", cookies: admin})
	if ds, _ := r.json["designs"].([]any); len(ds) != 0 {
		t.Fatalf("after dismissing: got %s, want no reports", r.body)
	}
	if r := formPost("/admin/designs/bracket/hide", reporter, url.Values{"csrf_token": {csrf}}); r.status != http.StatusForbidden {
		t.Fatalf("a non-maintainer hiding: got %d, want 403", r.status)
	}
}
