package main

import (
	"testing"

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
			newRig(t, api, prusaLinkKind).killAtAndResume(step)
		})
	}
}
