package main

import (
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/agent"
	"github.com/fabcommons/fabcommons/fabrication/agent/protocoltest"
)

var prusaLinkKind = printerKind{
	open: func() (protocoltest.Printer, string) {
		s := protocoltest.NewPrusaLink("printer-key", "maker", "printer-password")
		return s, s.URL
	},
	driver: func(url, key string) (agent.Driver, error) {
		return agent.NewPrusaLink(agent.PrusaLinkConfig{URL: url, APIKey: key})
	},
	printing: map[string]bool{"PRINTING": true},
}

// The agent on the PrusaLink protocol test server, through the steps at which it can
// be killed and restarted. PrusaLink keeps no print history, so these stop short of
// the OctoPrint and Moonraker suite (TestAgentOnRealPrinterProtocols): a print whose
// end was acknowledged at the printer before the agent came back is left to an
// operator, not reported, and the drivers' tests cover that.
func TestAgentOnPrusaLink(t *testing.T) {
	api, _ := newHub(t)
	t.Run("print", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, api, prusaLinkKind)
		r.start("printer-key", nil)
		id := r.order()
		r.waitJob(id, "done", true)
		r.checkInvariant(id)
	})
	for _, step := range []string{"upload-answer-lost", "printing", "finished-unreported"} {
		t.Run("killed "+step, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, api, prusaLinkKind)
			k := &killer{step: step}
			done := r.start("printer-key", k)
			id := r.order()
			waitFor(t, 30*time.Second, "the agent to die "+step, func() bool {
				if step == "finished-unreported" && r.printing(id) {
					r.printer.Complete()
				}
				return k.killed.Load()
			})
			select {
			case <-done:
				t.Fatal("Run returned: the kill did not end it where it stood")
			case <-time.After(50 * time.Millisecond):
			}
			r.start("printer-key", nil) // the next start, on the same state dir
			r.waitJob(id, "done", true)
			r.checkInvariant(id)
			if p := r.ours(id); len(p) != 1 {
				t.Fatalf("physical prints of the job: got %+v, want exactly one", p)
			}
		})
	}
}
