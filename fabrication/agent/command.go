package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Command drives a machine through a command: a laser cutter's sender, a CNC streamer,
// a script. The template's {file} becomes the job's file; the exit status is the
// outcome (0 finished, anything else failed). The command runs under sh in its own
// process group, and the shell writes the exit status to a file, so an agent that is
// killed and restarted still learns how a run ended, and a run is never started twice.
type Command struct {
	Template string
	Dir      string // state dir: cmd-<job>.pid, .exit and .log live here
}

// NewCommand checks the template and returns the driver.
func NewCommand(template, stateDir string) (*Command, error) {
	if strings.TrimSpace(template) == "" {
		return nil, errors.New("command driver needs --command, e.g. 'lasersend --port /dev/ttyUSB0 {file}'")
	}
	if !strings.Contains(template, "{file}") {
		return nil, fmt.Errorf("command %q: put {file} where the job's file goes", template)
	}
	return &Command{Template: template, Dir: stateDir}, nil
}

func (c *Command) path(p Print, ext string) string {
	return filepath.Join(c.Dir, "cmd-"+p.Key()+ext)
}

// Ready: a command is run whenever asked; the machine behind it is the operator's to
// keep free.
func (c *Command) Ready(ctx context.Context) error { return nil }

// Start runs the command. The file path never goes through the shell's parser: {file}
// becomes "$FAB_FILE", which the shell expands as one word.
func (c *Command) Start(ctx context.Context, p Print, file string) error {
	if _, err := os.Stat(c.path(p, ".pid")); err == nil {
		return fmt.Errorf("command driver: %s was already started", p.Key())
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	exitFile := c.path(p, ".exit")
	script := "(" + strings.ReplaceAll(c.Template, "{file}", `"$FAB_FILE"`) + `); s=$?; echo $s > "$FAB_EXIT.tmp" && mv "$FAB_EXIT.tmp" "$FAB_EXIT"`
	logf, err := os.OpenFile(c.path(p, ".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// Not tied to ctx: the run must outlive this agent process, like a print outlives
	// OctoPrint's client.
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), "FAB_FILE="+abs, "FAB_JOB="+p.Job, "FAB_EXIT="+exitFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("command driver: %w", err)
	}
	go cmd.Wait() // reap; the outcome is read from the exit file
	return writeFileAtomic(c.path(p, ".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
}

func (c *Command) Status(ctx context.Context, p Print) (Status, error) {
	pidb, err := os.ReadFile(c.path(p, ".pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return Status{State: PrinterGone}, nil
	}
	if err != nil {
		return Status{}, err
	}
	if b, err := os.ReadFile(c.path(p, ".exit")); err == nil {
		code := strings.TrimSpace(string(b))
		if code == "0" {
			return Status{State: PrinterFinished, Progress: 100}, nil
		}
		if _, err := os.Stat(c.path(p, ".canceled")); err == nil {
			return Status{State: PrinterFailed, Message: "canceled", Canceled: true}, nil
		}
		return Status{State: PrinterFailed, Message: fmt.Sprintf("the command exited with status %s%s", code, c.tail(p))}, nil
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb)))
	if pid > 0 && syscall.Kill(pid, 0) == nil {
		started := ""
		if fi, err := os.Stat(c.path(p, ".pid")); err == nil {
			started = fmt.Sprintf(" for %s", time.Since(fi.ModTime()).Round(time.Second))
		}
		return Status{State: PrinterPrinting, Message: "running" + started}, nil
	}
	if _, err := os.Stat(c.path(p, ".canceled")); err == nil {
		return Status{State: PrinterFailed, Message: "canceled", Canceled: true}, nil
	}
	return Status{State: PrinterFailed, Message: "the command's process ended without recording an exit status (machine restarted?)"}, nil
}

// tail returns the last line the command printed, for a failure's message.
func (c *Command) tail(p Print) string {
	b, err := os.ReadFile(c.path(p, ".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return ""
	}
	if len(last) > 200 {
		last = last[:200]
	}
	return ": " + last
}

// Cancel sends SIGTERM to the command's process group.
func (c *Command) Cancel(ctx context.Context, p Print) error {
	pidb, err := os.ReadFile(c.path(p, ".pid"))
	if err != nil {
		return nil
	}
	if err := os.WriteFile(c.path(p, ".canceled"), nil, 0o600); err != nil {
		return err
	}
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb))); pid > 0 {
		syscall.Kill(-pid, syscall.SIGTERM)
	}
	return nil
}
