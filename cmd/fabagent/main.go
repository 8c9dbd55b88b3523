// Command fabagent is the printer-side agent: it enrols a machine with a fabcommons hub
// once, then pulls jobs, checks their files, drives the printer and reports back. It
// imports only the agent contract and runtime, so it cross-compiles small
// (CGO_ENABLED=0) for a Raspberry Pi.
//
//	fabagent enroll --hub URL --code CODE [--state DIR]
//	fabagent run [--state DIR] [--driver sim] [--sim-speed 200]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agent"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fabagent:", err)
		os.Exit(1)
	}
}

const usage = "usage: fabagent enroll --hub URL --code CODE [--state DIR] | fabagent run [--state DIR] [--driver sim]"

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("fabagent "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	state := fs.String("state", env("FAB_AGENT_STATE", "./fabagent-state"), "state directory: token, journal, downloaded files (FAB_AGENT_STATE)")
	hub := fs.String("hub", env("FAB_HUB", ""), "the hub's URL, e.g. http://hub.local:8080 (FAB_HUB)")
	switch args[0] {
	case "enroll":
		code := fs.String("code", env("FAB_ENROLL_CODE", ""), "the one-time enrolment code an operator got when adding the machine")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *hub == "" || *code == "" {
			return errors.New("enroll needs --hub and --code")
		}
		return enroll(ctx, *hub, *code, *state)
	case "run":
		driver := fs.String("driver", env("FAB_DRIVER", "sim"), "printer driver: sim")
		speed := fs.Float64("sim-speed", 1, "sim: how many times faster than real time prints run")
		base := fs.Float64("sim-seconds", 1200, "sim: a print's length at speed 1, in seconds")
		failRate := fs.Float64("sim-fail-rate", 0, "sim: fraction of prints that fail")
		level := fs.String("log-level", env("FAB_LOG_LEVEL", "info"), "debug, info, warn or error")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*level)); err != nil {
			return fmt.Errorf("log level %q: want debug, info, warn or error", *level)
		}
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
		var d agent.Driver
		switch *driver {
		case "sim":
			if *speed <= 0 || *base <= 0 || *failRate < 0 || *failRate > 1 {
				return errors.New("sim needs --sim-speed > 0, --sim-seconds > 0 and --sim-fail-rate from 0 to 1")
			}
			d = &agent.Sim{Dir: *state, Speed: *speed, BaseSeconds: *base, FailRate: *failRate}
		default:
			return fmt.Errorf("driver %q: this build has sim (octoprint, moonraker and command are coming)", *driver)
		}
		return runAgent(ctx, *hub, *state, d, *driver, log)
	}
	return errors.New(usage)
}

// identity is what enrolment leaves in the state dir besides the token.
type identity struct {
	Hub       string `json:"hub"`
	MachineID string `json:"machine_id"`
	Lab       string `json:"lab"`
}

func enroll(ctx context.Context, hub, code, state string) error {
	if err := os.MkdirAll(state, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	c := agent.NewClient(hub, "")
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	e, err := c.Enroll(ctx, code)
	if err != nil {
		return fmt.Errorf("enrol with %s: %w", hub, err)
	}
	if err := os.WriteFile(filepath.Join(state, "token"), []byte(e.Token+"\n"), 0o600); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(identity{Hub: strings.TrimRight(hub, "/"), MachineID: e.MachineID, Lab: e.Lab}, "", "  ")
	if err := os.WriteFile(filepath.Join(state, "agent.json"), b, 0o600); err != nil {
		return err
	}
	fmt.Printf("enrolled as machine %s in lab %s; start it with: fabagent run --state %s\n", e.MachineID, e.Lab, state)
	return nil
}

func runAgent(ctx context.Context, hub, state string, d agent.Driver, driverName string, log *slog.Logger) error {
	tok, err := os.ReadFile(filepath.Join(state, "token"))
	if err != nil {
		return fmt.Errorf("no machine token in %s: run fabagent enroll first", state)
	}
	var id identity
	if b, err := os.ReadFile(filepath.Join(state, "agent.json")); err == nil {
		json.Unmarshal(b, &id)
	}
	if hub == "" {
		hub = id.Hub
	}
	if hub == "" {
		return errors.New("no hub: pass --hub or enrol first")
	}
	j, err := agent.OpenJournal(state)
	if err != nil {
		return err
	}
	a := &agent.Agent{
		Client: agent.NewClient(hub, strings.TrimSpace(string(tok))), Driver: d, Journal: j, StateDir: state, Log: log,
		Capabilities: agentapi.Capabilities{Driver: driverName},
	}
	log.Info("fabagent running", "hub", hub, "machine", id.MachineID, "driver", driverName)
	return a.Run(ctx)
}
