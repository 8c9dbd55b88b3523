// Package hubrun starts a fabhub process on loopback for the load scripts, signs a
// person up on it, and reads what the process costs.
package hubrun

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Hub is a running fabhub process.
type Hub struct {
	Base string // http://127.0.0.1:port
	Cmd  *exec.Cmd
}

// Start runs the fabhub binary bin on a free loopback port with its data in dataDir
// (and any further flags), and waits up to 20 s for it to be ready.
func Start(bin, dataDir string, flags ...string) (*Hub, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	return StartAt(bin, addr, dataDir, flags...)
}

// StartAt is Start on a given address: to start a hub again where it was.
func StartAt(bin, addr, dataDir string, flags ...string) (*Hub, error) {
	cmd := exec.Command(bin, append([]string{"-addr", addr, "-data", dataDir, "-log-level", "error"}, flags...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &Hub{Base: "http://" + addr, Cmd: cmd}
	for i := 0; ; i++ {
		if resp, err := http.Get(h.Base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h, nil
			}
		}
		if i > 200 {
			h.Stop()
			return nil, fmt.Errorf("the hub did not become ready within 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill ends the hub with SIGKILL, as a crash would.
func (h *Hub) Kill() {
	h.Cmd.Process.Kill()
	h.Cmd.Wait()
}

// Stop asks the hub to shut down and waits for it.
func (h *Hub) Stop() {
	h.Cmd.Process.Signal(os.Interrupt)
	h.Cmd.Wait()
}

// SignUp makes an account and returns an API token for it.
func (h *Hub) SignUp(handle, password string) (string, error) {
	post := func(path string, body, out any) error {
		b, _ := json.Marshal(body)
		resp, err := http.Post(h.Base+path, "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: %d", path, resp.StatusCode)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	if err := post("/api/v1/users", map[string]string{"handle": handle, "email": handle + "@example.org", "password": password}, &map[string]any{}); err != nil {
		return "", err
	}
	var tok struct{ Token struct{ Secret string } }
	err := post("/api/v1/tokens", map[string]string{"handle": handle, "password": password, "name": handle}, &tok)
	return tok.Token.Secret, err
}

// Memory is the hub's resident set now and at its peak, in KiB, from /proc.
func (h *Hub) Memory() (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.Cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	field := func(name string) (int64, error) {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, name+":"); ok && len(strings.Fields(rest)) > 0 {
				return strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			}
		}
		return 0, fmt.Errorf("no %s for process %d", name, h.Cmd.Process.Pid)
	}
	if rss, err = field("VmRSS"); err != nil {
		return 0, 0, err
	}
	peak, err = field("VmHWM")
	return rss, peak, err
}

// Percentile is the q-quantile (0 to 1) of sorted, or 0 if it is empty.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// CPU is the user plus system CPU time the hub process has used so far, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func (h *Hub) CPU() (time.Duration, error) {
	return ProcessCPU(h.Cmd.Process.Pid)
}

// ProcessCPU is the user plus system CPU time process pid has used so far.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: count after it.
	s := string(b)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(rest) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err := strconv.ParseInt(rest[11], 10, 64)
	if err != nil {
		return 0, err
	}
	stime, err := strconv.ParseInt(rest[12], 10, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
