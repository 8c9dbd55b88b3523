package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitStatus polls the driver until the job leaves printing (the command runs in the
// background; there is no signal to wait on but its exit file).
func waitStatus(t *testing.T, d Driver, job string) Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := d.Status(context.Background(), Print{Job: job, Attempt: 1})
		if err != nil {
			t.Fatal(err)
		}
		if st.State != PrinterPrinting || time.Now().After(deadline) {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCommandDriver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	// A file name a shell would trip over: it must reach the command as one argument.
	file := filepath.Join(dir, "it's a $(touch pwned) file.gcode")
	os.WriteFile(file, []byte("G1 X1\n"), 0o600)
	out := filepath.Join(dir, "copied")

	d, err := NewCommand("cp {file} "+out, dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Status(ctx, Print{Job: "a", Attempt: 1}); st.State != PrinterGone {
		t.Fatalf("before start: got %+v, want gone", st)
	}
	if err := d.Start(ctx, Print{Job: "a", Attempt: 1}, file); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, d, "a"); st.State != PrinterFinished {
		t.Fatalf("got %+v, want finished", st)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "G1 X1\n" {
		t.Fatalf("the command got the wrong file: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("the file name was run by the shell")
	}
	if err := d.Start(ctx, Print{Job: "a", Attempt: 1}, file); err == nil {
		t.Fatal("starting the same job again: got no error")
	}
	// A new driver (a restarted agent) still knows how it ended.
	d2, _ := NewCommand("true {file}", dir)
	if st, _ := d2.Status(ctx, Print{Job: "a", Attempt: 1}); st.State != PrinterFinished {
		t.Fatalf("after a restart: got %+v, want finished", st)
	}

	fail, _ := NewCommand("echo 'laser door open' >&2; exit 3; : {file}", dir)
	fail.Start(ctx, Print{Job: "b", Attempt: 1}, file)
	if st := waitStatus(t, fail, "b"); st.State != PrinterFailed || !strings.Contains(st.Message, "status 3") || !strings.Contains(st.Message, "laser door open") {
		t.Fatalf("got %+v, want failed with status 3 and the command's last line", st)
	}

	long, _ := NewCommand("sleep 30; : {file}", dir)
	long.Start(ctx, Print{Job: "c", Attempt: 1}, file)
	if st, _ := long.Status(ctx, Print{Job: "c", Attempt: 1}); st.State != PrinterPrinting {
		t.Fatalf("got %+v, want printing while the command runs", st)
	}
	if err := long.Cancel(ctx, Print{Job: "c", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if st := waitStatus(t, long, "c"); st.State != PrinterFailed || (st.Message != "canceled" || !st.Canceled) {
		t.Fatalf("after cancel: got %+v, want failed: canceled", st)
	}
}

func TestCommandTemplateChecked(t *testing.T) {
	t.Parallel()
	for _, tmpl := range []string{"", "  ", "lasersend --port /dev/ttyUSB0"} {
		if _, err := NewCommand(tmpl, t.TempDir()); err == nil {
			t.Errorf("NewCommand(%q): got no error", tmpl)
		}
	}
}
