package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain runs the test binary as fabhub itself when FAB_TEST_RUN_FABHUB is set, so a
// test can start a hub in a process of its own without building one.
func TestMain(m *testing.M) {
	if os.Getenv("FAB_TEST_RUN_FABHUB") != "" {
		main()
		return
	}
	os.Exit(m.Run())
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseConfig(t *testing.T) {
	t.Parallel()
	c, err := parseConfig(nil, envOf(nil))
	if err != nil || c.Addr != ":8080" || c.DataDir != "./data" || c.DB != "" || c.Blobs != "" || c.CreditFloor != -600 {
		t.Fatalf("defaults: got %+v, %v", c, err)
	}
	c, err = parseConfig([]string{"-addr", "127.0.0.1:9000"}, envOf(map[string]string{"FAB_ADDR": ":7000", "FAB_DATA": "/srv/fab", "FAB_LOG_LEVEL": "debug"}))
	if err != nil || c.Addr != "127.0.0.1:9000" || c.DataDir != "/srv/fab" || c.LogLevel.String() != "DEBUG" {
		t.Fatalf("flag over env: got %+v, %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"FAB_DB": "postgres://x"}, "want empty (SQLite) or a mongodb:// URI"},
		{nil, map[string]string{"FAB_BLOBS": "ftp://x"}, "want empty (local) or an s3:// URL"},
		{nil, map[string]string{"FAB_LOG_LEVEL": "loud"}, "log level"},
		{nil, map[string]string{"FAB_MAX_BODY": "ten"}, "max body"},
		{nil, map[string]string{"FAB_QUOTA_LABS": "ten"}, "quota labs"},
		{[]string{"-quota-jobs-per-day", "0"}, nil, "quota jobs per day"},
		{nil, map[string]string{"FAB_CREDIT_FLOOR": "60"}, "credit floor"},
		{[]string{"-credit-floor", "-1.5"}, nil, "credit floor"},
		{[]string{"serve", "extra"}, nil, "unexpected argument"},
		{nil, map[string]string{"FAB_DB": "mysql://root:hunter2@db/x"}, "xxxxx"},
	} {
		_, err := parseConfig(tc.args, envOf(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%v %v: got %v, want an error containing %q and no secret", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestConfigLogMasksSecrets(t *testing.T) {
	t.Parallel()
	c, err := parseConfig(nil, envOf(map[string]string{
		"FAB_DB":    "mongodb://fab:db-secret-1@mongo:27017/fabcommons",
		"FAB_BLOBS": "s3://minio:blob-secret-2@minio:9000/fab?tls=false",
	}))
	if err != nil {
		t.Fatal(err)
	}
	logged := c.LogValue().String()
	if strings.Contains(logged, "db-secret-1") || strings.Contains(logged, "blob-secret-2") || !strings.Contains(logged, "mongo:27017") {
		t.Fatalf("got %s, want hosts shown and secrets masked", logged)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRunServesAndShutsDown starts the hub on an empty data dir, as a newcomer's first
// `go run ./cmd/fabhub` does, checks health, readiness and metrics, then stops it.
func TestRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", addr, "-data", dir, "-log-level", "warn"}, envOf(nil), io.Discard, io.Discard)
	}()

	base := "http://" + addr
	var resp *http.Response
	var err error
	for range 200 {
		if resp, err = http.Get(base + "/healthz"); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("fabhub stopped early: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatalf("healthz never answered: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: got %d, want 200", resp.StatusCode)
	}
	for path, want := range map[string]string{"/readyz": `"status":"ready"`, "/metrics": "# TYPE go_goroutines gauge"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: got %d %.300s, want 200 with %q", path, resp.StatusCode, body, want)
		}
	}
	for _, f := range []string{"fabcommons.db", "blobs"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data dir lacks %s: %v", f, err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("fabhub did not stop within 30 s of its context ending")
	}
}

func TestRunRefusesBadStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "not-a-dir")
	os.WriteFile(file, []byte("x"), 0o600)
	err := run(ctx, []string{"-addr", freeAddr(t), "-data", file}, envOf(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "data dir") {
		t.Fatalf("data dir is a file: got %v", err)
	}
}
