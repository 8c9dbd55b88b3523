package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/fabrication/agent"
)

// runCLI runs fabagent's run() in-process and returns its error's one-line text.
func runCLI(t *testing.T, args ...string) error {
	t.Helper()
	var out, errs bytes.Buffer
	return run(context.Background(), args, func(string) string { return "" }, &out, &errs)
}

func TestCLIHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"help", "-h", "--help"} {
		var out, errs bytes.Buffer
		err := run(context.Background(), []string{arg}, func(string) string { return "" }, &out, &errs)
		if err != nil || !strings.HasPrefix(out.String(), "usage:") || !strings.Contains(out.String(), "fabagent run") {
			t.Errorf("fabagent %s: got %v and %q, want the usage on stdout", arg, err, out.String())
		}
	}
}

func TestCLIErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o600)
		return p
	}
	enrolled := t.TempDir()
	os.WriteFile(filepath.Join(enrolled, "token"), []byte("fab_m_revoked\n"), 0o600)
	loose := t.TempDir()
	os.WriteFile(filepath.Join(loose, "token"), []byte("fab_m_x\n"), 0o644)
	os.Chmod(filepath.Join(loose, "token"), 0o644) // past the umask
	cases := []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"fly"}, `unknown command "fly"`},
		{[]string{"enroll", "--hub", "http://127.0.0.1:1"}, "enroll needs --hub and --code"},
		{[]string{"register", "--hub", "http://127.0.0.1:1"}, "register needs --hub and --join-token"},
		{[]string{"run", "--driver", "laser"}, `driver "laser"`},
		{[]string{"run", "--driver", "octoprint"}, "octoprint needs --octoprint-url and --api-key"},
		{[]string{"run", "--driver", "moonraker", "--moonraker-url", "printer.local"}, "not an http(s) URL"},
		{[]string{"run", "--driver", "prusalink"}, "prusalink needs --prusalink-url"},
		{[]string{"run", "--driver", "prusalink", "--prusalink-url", "http://mk4.local"}, "needs an API key, or a user and password"},
		{[]string{"run", "--driver", "prusalink", "--prusalink-url", "http://mk4.local", "--printer-user", "maker"}, "needs both a user and a password"},
		{[]string{"run", "--driver", "prusalink", "--prusalink-url", "http://mk4.local", "--api-key", "k", "--prusalink-storage", "sdcard"}, "read-only"},
		{[]string{"run", "--driver", "command", "--command", "lasersend"}, "put {file}"},
		{[]string{"run", "--sim-speed", "0"}, "sim needs --sim-speed > 0"},
		{[]string{"run", "--slicer", "slic3r"}, `slicer "slic3r"`},
		{[]string{"run", "--slicer", "cura"}, "needs --cura-definition"},
		{[]string{"run", "--config", write("bad-key.toml", "hub = \"http://x\"\nprinter = \"ender\"\n")}, `unknown key "printer"`},
		{[]string{"run", "--config", write("bad-toml.toml", "hub = \n")}, "bad-toml.toml:1:"},
		{[]string{"run", "--config", write("bad-type.toml", "sim-speed = \"fast\"\n")}, `"sim-speed"`},
		{[]string{"run", "--config", filepath.Join(dir, "missing.toml")}, "config:"},
		{[]string{"run", "--state", t.TempDir()}, "no machine token"},
		{[]string{"run", "--state", enrolled, "--hub", "http://127.0.0.1:1"}, "does not answer"},
		{[]string{"run", "--log-level", "loud"}, `log level "loud"`},
		{[]string{"run", "extra"}, `unexpected argument "extra"`},
		{[]string{"enroll", "--hub", "ftp://hub.example", "--code", "X"}, "not an http(s) URL"},
		{[]string{"enroll", "--hub", "http://hub.example", "--code", "X", "--require-https"}, "plain http and --require-https"},
		{[]string{"run", "--state", loose}, "can be read by other users (mode 0644): chmod 600"},
		{[]string{"run", "--state", enrolled, "--hub", "http://192.0.2.9:8080", "--require-https"}, "plain http and --require-https"},
	}
	for _, c := range cases {
		err := runCLI(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("fabagent %v: got %v, want an error containing %q", c.args, err, c.want)
			continue
		}
		if line := oneLine(err); strings.Contains(line, "\n") {
			t.Errorf("fabagent %v: %q is not one line", c.args, line)
		}
	}
}

// A revoked machine token ends the agent with one line saying so.
func TestRevokedToken(t *testing.T) {
	t.Parallel()
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Write([]byte(`{"status":"ok"}`))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":{"code":"unauthorized","message":"unknown machine token"}}`))
	}))
	defer hub.Close()
	state := t.TempDir()
	os.WriteFile(filepath.Join(state, "token"), []byte("fab_m_revoked\n"), 0o600)
	err := runCLI(t, "run", "--hub", hub.URL, "--state", state)
	if !errors.Is(err, agent.ErrUnauthorized) || strings.Contains(oneLine(err), "\n") {
		t.Fatalf("got %v, want the one-line ErrUnauthorized", err)
	}
}

func TestConfigFileAndFlags(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "agent.toml")
	os.WriteFile(p, []byte(`
hub = "http://hub.local:8080"
driver = "moonraker"
moonraker-url = "http://printer.local:7125"
materials = ["PLA", "PETG"]
build-volume = "250x210x220"
nozzle = 0.6
sim-speed = 50
`), 0o600)
	c, err := parseConfig("run", []string{"--config", p, "--driver", "sim"}, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	caps := c.capabilities()
	if c.Hub != "http://hub.local:8080" || c.Driver != "sim" || c.MoonrakerURL != "http://printer.local:7125" || c.SimSpeed != 50 {
		t.Errorf("got %+v, want the file's values with --driver from the command line winning", c)
	}
	if strings.Join(caps.Materials, ",") != "PLA,PETG" || caps.BuildVolume != [3]float64{250, 210, 220} || caps.Nozzle != 0.6 {
		t.Errorf("capabilities: got %+v", caps)
	}
}

// The example config in docs/ must stay valid.
func TestExampleConfigParses(t *testing.T) {
	t.Parallel()
	if _, err := parseConfig("run", []string{"--config", "../../docs/fabagent.toml"}, func(string) string { return "" }, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
}

// The agent must cross-compile without cgo for a Raspberry Pi and stay small.
func TestCrossCompiles(t *testing.T) {
	t.Parallel()
	for _, target := range []struct{ goarch, goarm string }{{"arm64", ""}, {"arm", "7"}, {"amd64", ""}} {
		out := filepath.Join(t.TempDir(), "fabagent-"+target.goarch)
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+target.goarch, "GOARM="+target.goarm, "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build for %s: %v\n%s", target.goarch, err, b)
		}
		fi, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 20<<20 {
			t.Errorf("linux/%s binary: got %.1f MB, want under 20 MB", target.goarch, float64(fi.Size())/(1<<20))
		}
		t.Logf("linux/%s: %.1f MB", target.goarch, float64(fi.Size())/(1<<20))
	}
	// Only the agent contract and runtime: no catalog, storage, web or database code.
	// catalog/mesh is the one exception: the agent reads a 3MF to slice it, and that
	// package is a leaf (the standard library and hschendel/stl), which the banned list
	// still checks, as anything it imported would be listed here too.
	deps, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range strings.Fields(string(deps)) {
		if d == "github.com/fabcommons/fabcommons/catalog/mesh" {
			continue
		}
		for _, banned := range []string{"/catalog", "/storage", "/web", "gin-gonic", "mongo-driver", "modernc.org/sqlite", "minio-go"} {
			if strings.Contains(d, banned) {
				t.Errorf("fabagent depends on %s", d)
			}
		}
	}
}
