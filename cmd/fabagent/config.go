package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/fabcommons/fabcommons/fabrication/agent"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// config is every setting of every command; a command reads the ones it needs.
type config struct {
	Config, Hub, State, LogLevel string
	RequireHTTPS                 bool
	Code, JoinToken, Name        string

	Process, BuildVolume, Materials, Tags string
	Nozzle                                float64

	Driver                            string
	SimSpeed, SimSeconds, SimFailRate float64
	OctoPrintURL, MoonrakerURL        string
	PrusaLinkURL, PrusaLinkStorage    string
	APIKey                            string
	PrinterUser, PrinterPassword      string
	Command                           string
	Camera                            string

	Slicer, CuraEngine, CuraDefinition, CuraSearchPath, CuraSettings string
}

// parseConfig reads flags, with FAB_ environment fallbacks, and then a TOML config
// file for whatever the command line left unset.
func parseConfig(cmd string, args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var c config
	fs := flag.NewFlagSet("fabagent "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Config, "config", env("FAB_AGENT_CONFIG", ""), "a TOML file with any of these flags as keys (FAB_AGENT_CONFIG)")
	fs.StringVar(&c.Hub, "hub", env("FAB_HUB", ""), "the hub's URL, e.g. http://hub.local:8080 (FAB_HUB)")
	fs.BoolVar(&c.RequireHTTPS, "require-https", env("FAB_REQUIRE_HTTPS", "") == "true", "refuse a hub that is not reached over https (FAB_REQUIRE_HTTPS=true)")
	fs.StringVar(&c.State, "state", env("FAB_AGENT_STATE", "./fabagent-state"), "state directory: token, journal, downloaded files (FAB_AGENT_STATE)")
	fs.StringVar(&c.LogLevel, "log-level", env("FAB_LOG_LEVEL", "info"), "debug, info, warn or error")
	fs.StringVar(&c.Code, "code", env("FAB_ENROLL_CODE", ""), "enroll: the one-time code an operator got when adding the machine")
	fs.StringVar(&c.JoinToken, "join-token", env("FAB_JOIN_TOKEN", ""), "register (or run, on first start): the lab's join token (FAB_JOIN_TOKEN)")
	host, _ := os.Hostname()
	fs.StringVar(&c.Name, "name", env("FAB_MACHINE_NAME", host), "register: the machine's name in the lab")
	fs.StringVar(&c.Process, "process", "fdm", "capabilities: fdm, sla, laser or cnc")
	fs.StringVar(&c.BuildVolume, "build-volume", "220x220x250", "capabilities: build volume in mm, XxYxZ")
	fs.Float64Var(&c.Nozzle, "nozzle", 0.4, "capabilities: nozzle diameter in mm")
	fs.StringVar(&c.Materials, "materials", "PLA", "capabilities: loaded materials, comma-separated")
	fs.StringVar(&c.Tags, "tags", "", "capabilities: tags, comma-separated (e.g. enclosure,direct-drive)")
	fs.StringVar(&c.Driver, "driver", env("FAB_DRIVER", "sim"), "printer driver: sim, octoprint, moonraker, prusalink or command")
	fs.Float64Var(&c.SimSpeed, "sim-speed", 1, "sim: how many times faster than real time prints run")
	fs.Float64Var(&c.SimSeconds, "sim-seconds", 1200, "sim: a print's length at speed 1, in seconds")
	fs.Float64Var(&c.SimFailRate, "sim-fail-rate", 0, "sim: fraction of prints that fail")
	fs.StringVar(&c.OctoPrintURL, "octoprint-url", "", "octoprint: the OctoPrint URL, e.g. http://octopi.local")
	fs.StringVar(&c.MoonrakerURL, "moonraker-url", "", "moonraker: the Moonraker URL, e.g. http://printer.local:7125")
	fs.StringVar(&c.PrusaLinkURL, "prusalink-url", "", "prusalink: the PrusaLink URL, e.g. http://prusa-mk4.local")
	fs.StringVar(&c.PrusaLinkStorage, "prusalink-storage", "local", "prusalink: where files go: local (PrusaLink on a Raspberry Pi) or usb (MK4, XL, MINI)")
	fs.StringVar(&c.APIKey, "api-key", env("FAB_PRINTER_API_KEY", ""), "octoprint/moonraker/prusalink: the printer's API key (FAB_PRINTER_API_KEY)")
	fs.StringVar(&c.PrinterUser, "printer-user", env("FAB_PRINTER_USER", ""), "prusalink: the user for HTTP digest authentication, instead of --api-key (FAB_PRINTER_USER)")
	fs.StringVar(&c.PrinterPassword, "printer-password", env("FAB_PRINTER_PASSWORD", ""), "prusalink: the password for HTTP digest authentication (FAB_PRINTER_PASSWORD)")
	fs.StringVar(&c.Command, "command", "", "command: the command to run, with {file} for the job's file")
	fs.StringVar(&c.Camera, "camera", env("FAB_CAMERA", "auto"), "a photo of each finished print for the hub: auto (the printer's own camera: OctoPrint's or Moonraker's webcam, PrusaLink's camera), off, or a snapshot URL such as http://octopi.local/webcam/?action=snapshot (FAB_CAMERA)")
	fs.StringVar(&c.Slicer, "slicer", "", "slice meshes on this machine: cura (empty: send files as they are)")
	fs.StringVar(&c.CuraEngine, "cura-engine", "CuraEngine", "cura: the CuraEngine binary")
	fs.StringVar(&c.CuraDefinition, "cura-definition", "", "cura: the printer, a .def.json file or a name such as creality_ender3")
	fs.StringVar(&c.CuraSearchPath, "cura-search-path", "/usr/share/cura/resources/definitions:/usr/share/cura/resources/extruders", "cura: folders with definitions and extruders, colon-separated")
	fs.StringVar(&c.CuraSettings, "cura-settings", "", "cura: extra settings, comma-separated key=value")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.Config != "" {
		if err := applyFile(fs, c.Config); err != nil {
			return c, err
		}
	}
	return c, nil
}

// applyFile sets, from the TOML file, every flag the command line did not set. Keys are
// flag names; an unknown key or a value of the wrong kind is an error naming it.
func applyFile(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var values map[string]any
	if err := toml.Unmarshal(b, &values); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return fmt.Errorf("config %s:%d:%d: %s", filepath.Base(path), row, col, de.Error())
		}
		return fmt.Errorf("config %s: %w", filepath.Base(path), err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for key, v := range values {
		f := fs.Lookup(key)
		if f == nil || key == "config" {
			return fmt.Errorf("config %s: unknown key %q (keys are fabagent run's flag names)", filepath.Base(path), key)
		}
		if set[key] {
			continue
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case bool:
			s = strconv.FormatBool(v)
		case int64:
			s = strconv.FormatInt(v, 10)
		case float64:
			s = strconv.FormatFloat(v, 'g', -1, 64)
		case []any: // materials = ["PLA", "PETG"]
			parts := make([]string, len(v))
			for i, x := range v {
				parts[i] = fmt.Sprint(x)
			}
			s = strings.Join(parts, ",")
		default:
			return fmt.Errorf("config %s: %q: want a string, a number, true or false, or a list", filepath.Base(path), key)
		}
		if err := fs.Set(key, s); err != nil {
			return fmt.Errorf("config %s: %q: %w", filepath.Base(path), key, err)
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c config) capabilities() agentapi.Capabilities {
	caps := agentapi.Capabilities{Process: c.Process, Nozzle: c.Nozzle, Materials: splitList(c.Materials), Tags: splitList(c.Tags), Driver: c.Driver, Slicer: c.Slicer}
	var v [3]float64
	if n, _ := fmt.Sscanf(strings.ToLower(c.BuildVolume), "%gx%gx%g", &v[0], &v[1], &v[2]); n == 3 {
		caps.BuildVolume = v
	}
	return caps
}

// register creates this machine in the lab with the join token (fabagent register, or
// run on its first start).
func (c config) register(ctx context.Context, cl *agent.Client) (agentapi.Enrollment, error) {
	return cl.Register(ctx, agentapi.RegisterRequest{JoinToken: c.JoinToken, Name: c.Name, Capabilities: c.capabilities()})
}

func (c config) driver() (agent.Driver, error) {
	switch c.Driver {
	case "sim":
		if c.SimSpeed <= 0 || c.SimSeconds <= 0 || c.SimFailRate < 0 || c.SimFailRate > 1 {
			return nil, errors.New("sim needs --sim-speed > 0, --sim-seconds > 0 and --sim-fail-rate from 0 to 1")
		}
		return &agent.Sim{Dir: c.State, Speed: c.SimSpeed, BaseSeconds: c.SimSeconds, FailRate: c.SimFailRate}, nil
	case "octoprint":
		if c.OctoPrintURL == "" || c.APIKey == "" {
			return nil, errors.New("octoprint needs --octoprint-url and --api-key (OctoPrint: Settings > API)")
		}
		return agent.NewOctoPrint(c.OctoPrintURL, c.APIKey)
	case "moonraker":
		if c.MoonrakerURL == "" {
			return nil, errors.New("moonraker needs --moonraker-url, e.g. http://printer.local:7125")
		}
		return agent.NewMoonraker(c.MoonrakerURL, c.APIKey)
	case "prusalink":
		if c.PrusaLinkURL == "" {
			return nil, errors.New("prusalink needs --prusalink-url, e.g. http://prusa-mk4.local")
		}
		return agent.NewPrusaLink(agent.PrusaLinkConfig{URL: c.PrusaLinkURL, APIKey: c.APIKey,
			User: c.PrinterUser, Password: c.PrinterPassword, Storage: c.PrusaLinkStorage})
	case "command":
		return agent.NewCommand(c.Command, c.State)
	}
	return nil, fmt.Errorf("driver %q: want sim, octoprint, moonraker, prusalink or command", c.Driver)
}

// camera is where photos of finished prints come from: the printer's own camera when
// its driver knows one (auto), none (off), or the snapshot URL given.
func (c config) camera(d agent.Driver) (agent.Camera, error) {
	switch c.Camera {
	case "off":
		return nil, nil
	case "auto", "":
		cam, _ := d.(agent.Camera) // sim and command have none
		return cam, nil
	}
	return agent.NewURLCamera(c.Camera)
}

func (c config) slicer() (agent.Slicer, error) {
	switch c.Slicer {
	case "":
		return nil, nil
	case "cura":
		if c.CuraDefinition == "" {
			return nil, errors.New("the cura slicer needs --cura-definition, e.g. creality_ender3")
		}
		return &agent.Cura{Engine: c.CuraEngine, Definition: c.CuraDefinition, SearchPath: filepath.SplitList(c.CuraSearchPath), Settings: splitList(c.CuraSettings)}, nil
	}
	return nil, fmt.Errorf("slicer %q: want cura (or none)", c.Slicer)
}

// checkHub refuses a hub URL that is not http(s), and one on plain http beyond this
// machine when https is required; otherwise it warns of plain http beyond loopback,
// where the machine token would cross the network unencrypted.
func (c config) checkHub(hub string, warn func(msg string, args ...any)) error {
	u, err := url.Parse(hub)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("the hub %q is not an http(s) URL", hub)
	}
	if u.Scheme == "https" || isLoopback(u.Hostname()) {
		return nil
	}
	if c.RequireHTTPS {
		return fmt.Errorf("the hub %s is plain http and --require-https is set: the machine token would cross the network unencrypted", hub)
	}
	warn("the hub is plain http: the machine token crosses the network unencrypted (use https, or --require-https to refuse this)", "hub", hub)
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readToken reads the machine token, refusing a file other users may read.
func readToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("the machine token %s can be read by other users (mode %04o): chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}
