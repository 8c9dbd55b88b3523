package federation

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

func TestParseActivity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Activity
		ok   bool
	}{
		{"a Follow by URLs", `{"id":"https://m.example/1","type":"Follow","actor":"https://m.example/u/a","object":"https://h.example/ap/actor"}`,
			Activity{ID: "https://m.example/1", Type: "Follow", Actor: "https://m.example/u/a", Object: Object{ID: "https://h.example/ap/actor"}}, true},
		{"an Accept embedding the Follow", `{"type":"Accept","actor":{"id":"https://b.example/ap/actor"},"object":{"id":"https://a.example/ap/follows/1","type":"Follow","actor":"https://a.example/ap/actor","object":"https://b.example/ap/actor"}}`,
			Activity{Type: "Accept", Actor: "https://b.example/ap/actor", Object: Object{ID: "https://a.example/ap/follows/1", Type: "Follow", Actor: "https://a.example/ap/actor", Object: "https://b.example/ap/actor"}}, true},
		{"lists take their first", `{"type":["Undo","Extra"],"actor":["https://m.example/u/a"],"object":[{"id":"https://m.example/1","type":"Follow"}]}`,
			Activity{Type: "Undo", Actor: "https://m.example/u/a", Object: Object{ID: "https://m.example/1", Type: "Follow"}}, true},
		{"no type", `{"actor":"https://m.example/u/a"}`, Activity{}, false},
		{"an actor that is not a URL", `{"type":"Follow","actor":"alice"}`, Activity{}, false},
		{"a javascript: actor", `{"type":"Follow","actor":"javascript:alert(1)"}`, Activity{}, false},
		{"not an object", `["Follow"]`, Activity{}, false},
		{"two values", `{"type":"Follow","actor":"https://m.example/u/a"} {}`, Activity{}, false},
	}
	for _, tt := range tests {
		got, err := ParseActivity([]byte(tt.in))
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, storage.ErrInvalid)) {
			t.Errorf("%s: got error %v, want ok=%v (else ErrInvalid)", tt.name, err, tt.ok)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if _, err := ParseActivity(make([]byte, MaxActivityBytes+1)); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("an activity over the limit: got %v, want ErrInvalid", err)
	}
}

func TestBlockedBy(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		host, block string
		want        bool
	}{
		{"bad.example", "bad.example", true},
		{"bad.example:8443", "bad.example", true}, // no port: every port
		{"bad.example:8443", "bad.example:8443", true},
		{"bad.example", "bad.example:8443", false}, // a port: that port only
		{"bad.example:9000", "bad.example:8443", false},
		{"notbad.example", "bad.example", false},
		{"sub.bad.example", "bad.example", false},
		{"[::1]:8080", "[::1]", true},
	} {
		if got := blockedBy(tt.host, tt.block); got != tt.want {
			t.Errorf("blockedBy(%q, %q): got %v, want %v", tt.host, tt.block, got, tt.want)
		}
	}
}

// TestCheckSigned: what the signature library leaves to the hub — the headers the
// signature must cover, the Date window, and the Digest of the body.
func TestCheckSigned(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"type":"Follow"}`)
	digest := "SHA-256=iC6FIqdUfUJ4JLO5P6z5PBkH8sTKDDrgJJ3AeG4iIiI=" // not the body's
	good := func() *http.Request {
		r := httptest.NewRequest("POST", "/ap/inbox", nil)
		r.Header.Set("Date", now.Add(-time.Hour).Format(http.TimeFormat))
		r.Header.Set("Digest", "SHA-256=GYwYnH3BiO6aICFt0ThC5bUIJ4byvqdpWtR8m5fNkww=")
		return r
	}
	all := []string{"(request-target)", "host", "date", "digest"}
	if err := checkDigest(good().Header.Get("Digest"), body); err != nil {
		t.Fatalf("the fixture's digest: %v (fix the fixture)", err)
	}
	for _, tt := range []struct {
		name    string
		edit    func(*http.Request)
		headers []string
		ok      bool
	}{
		{"all there", func(*http.Request) {}, all, true},
		{"digest not signed", func(*http.Request) {}, []string{"(request-target)", "host", "date"}, false},
		{"request line not signed", func(*http.Request) {}, []string{"host", "date", "digest"}, false},
		{"Date 11 h ahead", func(r *http.Request) { r.Header.Set("Date", now.Add(11*time.Hour).Format(http.TimeFormat)) }, all, true},
		{"Date 13 h old", func(r *http.Request) { r.Header.Set("Date", now.Add(-13*time.Hour).Format(http.TimeFormat)) }, all, false},
		{"no Date", func(r *http.Request) { r.Header.Del("Date") }, all, false},
		{"another body's digest", func(r *http.Request) { r.Header.Set("Digest", digest) }, all, false},
		{"no SHA-256 digest", func(r *http.Request) { r.Header.Set("Digest", "MD5=abc") }, all, false},
		{"SHA-256 among others", func(r *http.Request) {
			r.Header.Set("Digest", "MD5=abc, sha-256=GYwYnH3BiO6aICFt0ThC5bUIJ4byvqdpWtR8m5fNkww=")
		}, all, true},
	} {
		r := good()
		tt.edit(r)
		err := checkSigned(r, body, tt.headers, now, 12*time.Hour)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadSignature)) {
			t.Errorf("%s: got %v, want ok=%v (else ErrBadSignature)", tt.name, err, tt.ok)
		}
	}
}

func TestSignatureParams(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("Signature", `keyId="https://m.example/users/a#main-key",algorithm="rsa-sha256",headers="(request-target) host date digest content-type",signature="YWJj"`)
	keyID, headers, ok := signatureParams(h)
	if !ok || keyID != "https://m.example/users/a#main-key" || strings.Join(headers, " ") != "(request-target) host date digest content-type" {
		t.Fatalf("got %q %v %v, want the keyId and five headers", keyID, headers, ok)
	}
	if _, _, ok := signatureParams(http.Header{}); ok {
		t.Fatal("no Signature header: got ok, want not")
	}
}

// TestHandleOf: an actor's handle is its id's last path segment as sent, kept to a
// handle's characters: an id that decodes to a line break cannot write lines into
// ATTRIBUTION.md.
func TestHandleOf(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://a.example/people/ada":                                   "@ada@a.example",
		"https://A.example:8443/users/Ada_L.":                            "@Ada_L.@a.example:8443",
		"https://e.example/people/mallory%0A%0A%23%20Not%20the%20author": "@mallory0A0A2320Not20the20author@e.example",
		"https://e.example/":                                             "@actor@e.example",
		"https://e.example/people/%2E%2E":                                "@2E2E@e.example",
	} {
		if got := handleOf(in); got != want {
			t.Errorf("handleOf(%q): got %q, want %q", in, got, want)
		}
	}
}
