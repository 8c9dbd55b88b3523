// Command fabagent is the printer-side agent: it joins a machine to a fabcommons hub
// once, then pulls jobs, checks their files, drives the printer and reports back. It
// imports only the agent contract and runtime, so it cross-compiles small
// (CGO_ENABLED=0) for a Raspberry Pi.
//
//	fabagent enroll   --hub URL --code CODE [--state DIR]
//	fabagent register --hub URL --join-token TOKEN [--name NAME] [capabilities]
//	fabagent run      [--config FILE] [--state DIR] [--driver sim|octoprint|moonraker|command] ...
//
// Every flag can also be given in a TOML config file (--config), under the flag's own
// name; flags on the command line win. docs/fabagent.toml is a documented example.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fabcommons/fabcommons/cmd/internal/progress"
	"github.com/fabcommons/fabcommons/fabrication/agent"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fabagent:", oneLine(err))
		os.Exit(1)
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

const usage = `usage:
  fabagent enroll   --hub URL --code CODE [--state DIR]
  fabagent register --hub URL --join-token TOKEN [--name NAME] [--process fdm --build-volume 220x220x250 --materials PLA,PETG]
  fabagent run      [--config FILE] [--state DIR] [--driver sim|octoprint|moonraker|command] [driver flags]
run "fabagent run -h" for every flag`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("no command\n" + usage)
	}
	cmd := args[0]
	switch cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	if cmd != "enroll" && cmd != "register" && cmd != "run" {
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	c, err := parseConfig(cmd, args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	switch cmd {
	case "enroll":
		if c.Hub == "" || c.Code == "" {
			return errors.New("enroll needs --hub and --code")
		}
		return join(ctx, c, stdout, func(ctx context.Context, cl *agent.Client) (agentapi.Enrollment, error) {
			return cl.Enroll(ctx, c.Code)
		})
	case "register":
		if c.Hub == "" || c.JoinToken == "" {
			return errors.New("register needs --hub and --join-token")
		}
		return join(ctx, c, stdout, c.register)
	}
	return runAgent(ctx, c, stdout, stderr)
}

// identity is what joining leaves in the state dir besides the token.
type identity struct {
	Hub       string `json:"hub"`
	MachineID string `json:"machine_id"`
	Lab       string `json:"lab"`
}

// join enrols (one-time code) or registers (join token) and writes the state dir.
func join(ctx context.Context, c config, stdout io.Writer, call func(context.Context, *agent.Client) (agentapi.Enrollment, error)) error {
	warn := func(msg string, args ...any) { fmt.Fprintln(stdout, "warning:", msg) }
	if err := c.checkHub(c.Hub, warn); err != nil {
		return err
	}
	if err := os.MkdirAll(c.State, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	e, err := call(ctx, agent.NewClient(c.Hub, ""))
	if err != nil {
		return fmt.Errorf("join %s: %w", c.Hub, err)
	}
	if err := os.WriteFile(filepath.Join(c.State, "token"), []byte(e.Token+"\n"), 0o600); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(identity{Hub: strings.TrimRight(c.Hub, "/"), MachineID: e.MachineID, Lab: e.Lab}, "", "  ")
	if err := os.WriteFile(filepath.Join(c.State, "agent.json"), b, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "joined lab %s as machine %s; start it with: fabagent run --state %s\n", e.Lab, e.MachineID, c.State)
	if !e.Approved {
		fmt.Fprintln(stdout, "the lab approves new machines: jobs come once an operator has approved this one")
	}
	return nil
}

func runAgent(ctx context.Context, c config, stdout, stderr io.Writer) error {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	driver, err := c.driver()
	if err != nil {
		return err
	}
	slicer, err := c.slicer()
	if err != nil {
		return err
	}
	camera, err := c.camera(driver)
	if err != nil {
		return err
	}
	tokenPath := filepath.Join(c.State, "token")
	if _, err := os.Stat(tokenPath); errors.Is(err, os.ErrNotExist) && c.JoinToken != "" && c.Hub != "" {
		// docker-compose and fleets: join on first start with the lab's join token.
		if err := join(ctx, c, stdout, c.register); err != nil {
			return err
		}
	}
	tok, err := readToken(tokenPath)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no machine token in %s: run fabagent enroll (or register) first", c.State)
	}
	if err != nil {
		return err
	}
	var id identity
	if b, err := os.ReadFile(filepath.Join(c.State, "agent.json")); err == nil {
		json.Unmarshal(b, &id)
	}
	hub := c.Hub
	if hub == "" {
		hub = id.Hub
	}
	if hub == "" {
		return errors.New("no hub: pass --hub or enrol first")
	}
	if err := c.checkHub(hub, log.Warn); err != nil {
		return err
	}
	client := agent.NewClient(hub, tok)
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = client.Ping(pingCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("the hub at %s does not answer: %w", hub, err)
	}
	j, err := agent.OpenJournal(c.State)
	if err != nil {
		return err
	}
	a := &agent.Agent{
		Client: client, Driver: driver, Journal: j, StateDir: c.State, Log: log, Slicer: slicer, Camera: camera,
	}
	if progress.IsTerminal(stderr) {
		a.Progress = progress.NewBar(stderr, "download").Update
	}
	log.Info("fabagent running", "hub", hub, "machine", id.MachineID, "driver", c.Driver)
	return a.Run(ctx)
}
