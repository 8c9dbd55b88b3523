package netguard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

func TestCheckURL(t *testing.T) {
	t.Parallel()
	g := New([]string{"127.0.0.1", "Receiver.internal", "10.9.0.0/16"})
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://example.org/hook", true},
		{"http://93.184.215.14:8080/x", true},
		{"http://127.0.0.1:9000/hook", true}, // allowed
		{"http://receiver.internal/hook", true},
		{"ftp://example.org/hook", false},
		{"example.org/hook", false},
		{"https:///nohost", false},
		{"https://user:pw@example.org/", false},
		{"http://localhost:8080/", false},
		{"http://127.0.0.2/", false},
		{"http://10.1.2.3/", false},
		{"http://10.9.200.1/", true}, // in an allowed prefix
		{"http://192.168.0.10/", false},
		{"http://169.254.169.254/latest/meta-data", false},
		{"http://[::1]/", false},
		{"http://[::ffff:10.0.0.1]/", false},
		{"http://100.64.0.1/", false},
		{"http://0.0.0.0/", false},
	}
	for _, tt := range tests {
		err := g.CheckURL(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q): got %v, want ok=%v", tt.url, err, tt.ok)
		}
		if err != nil && !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("CheckURL(%q): got %v, want an error of kind storage.ErrInvalid", tt.url, err)
		}
	}
}

func TestPublic(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2001:4860:4860::8888": true,
		"127.0.0.1": false, "10.0.0.1": false, "172.16.5.4": false, "fd00::1": false, "fe80::1": false,
		"::ffff:127.0.0.1": false, "224.0.0.1": false, "255.255.255.255": false,
	} {
		if got := public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("public(%s): got %v, want %v", addr, got, want)
		}
	}
}

// TestClientRefusesPrivateAtDial: the address dialled is checked, whatever the URL
// said, so a name that resolves to a private address is refused at delivery time too.
func TestClientRefusesPrivateAtDial(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/"} {
		_, err := New(nil).Client(time.Second).Post(u, "application/json", nil)
		if err == nil || !errors.Is(err, ErrPrivate) {
			t.Errorf("POST %s without an allowlist: got %v, want %v", u, err, ErrPrivate)
		}
	}
	resp, err := New([]string{"127.0.0.1"}).Client(time.Second).Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatalf("POST %s with 127.0.0.1 allowed: got %v, want an answer", srv.URL, err)
	}
	resp.Body.Close()
}

// TestClientAllowsPrefix: a CIDR in the allowlist lets the dial through, as a single
// address does.
func TestClientAllowsPrefix(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	resp, err := New([]string{"127.0.0.0/8"}).Client(time.Second).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET %s with 127.0.0.0/8 allowed: got %v, want an answer", srv.URL, err)
	}
	resp.Body.Close()
}
