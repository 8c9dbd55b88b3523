package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fabcommons/fabcommons/fabrication/agentapi"
)

// Phases of a held job in the journal.
const (
	PhaseFetching = "fetching" // claimed; the file is being downloaded and checked
	PhaseStarting = "starting" // the hub was told it started; the printer is being given it
	PhasePrinting = "printing" // the printer has it
	// PhaseHandingBack: the printer never got it and the agent is giving it back to the
	// hub's queue; from here the job is only ever handed back, never started.
	PhaseHandingBack = "handing-back"
)

// Held is one job the agent holds.
type Held struct {
	Job   agentapi.Job `json:"job"`
	Lease string       `json:"lease"`
	File  string       `json:"file"`
	Phase string       `json:"phase"`
	// Sliced is the G-code the agent's slicer made from File, with its estimate.
	Sliced   string             `json:"sliced,omitempty"`
	Estimate *agentapi.Estimate `json:"estimate,omitempty"`
	// CancelRequested: the hub canceled the job and the agent told the printer to stop,
	// so the failure that follows is the cancel, not a fault worth another try. It is
	// kept here, not in memory, so a restart in between still knows.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// HandBackWhy is the reason given when the job is handed back (PhaseHandingBack).
	HandBackWhy string `json:"hand_back_why,omitempty"`
	// Photographed: the camera was asked for a still of the finished print (whether or
	// not one came), so a report that is sent again does not take another.
	Photographed bool `json:"photographed,omitempty"`
}

// Print names this attempt at the job for the driver.
func (h *Held) Print() Print {
	return Print{Job: h.Job.ID, Attempt: h.Job.Attempt}
}

// PrintFile is what goes to the printer: the sliced G-code when there is one.
func (h *Held) PrintFile() string {
	if h.Sliced != "" {
		return h.Sliced
	}
	return h.File
}

// Journal is the agent's memory across restarts: the job it holds and how far it got.
// Every change rewrites the file atomically (temp file, fsync, rename), so a crash
// leaves the old version or the new one, never a mix.
type Journal struct {
	path string
	Held *Held `json:"held"`
}

// OpenJournal reads the journal in dir, or starts an empty one.
func OpenJournal(dir string) (*Journal, error) {
	j := &Journal{path: filepath.Join(dir, "journal.json")}
	b, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, j); err != nil {
		return nil, fmt.Errorf("journal %s is damaged: %w", j.path, err)
	}
	return j, nil
}

// Set records h (nil: the agent holds nothing) durably.
func (j *Journal) Set(h *Held) error {
	j.Held = h
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(j.path, b, 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
