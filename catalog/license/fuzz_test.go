package license

import (
	"strings"
	"testing"
)

// FuzzForkRules: any parent licenses and child give an answer without a panic, and
// the two rules agree: a child CheckFork allows is one ForkOptions offers.
func FuzzForkRules(f *testing.F) {
	f.Add("CC-BY-SA-4.0", "CC-BY-SA-4.0")
	f.Add("CC-BY-4.0,CC0-1.0", "CERN-OHL-S-2.0")
	f.Add("CC-BY-ND-4.0", "CC-BY-4.0")
	f.Add("GPL-3.0-or-later,", "")
	f.Fuzz(func(t *testing.T, parents, child string) {
		ps := strings.Split(parents, ",")
		opts, optErr := ForkOptions(ps)
		if err := CheckFork(ps, child); err == nil {
			if optErr != nil {
				t.Fatalf("CheckFork(%q, %q) allows it but ForkOptions fails: %v", ps, child, optErr)
			}
			offered := false
			for _, o := range opts {
				offered = offered || o.ID == child
			}
			if !offered {
				t.Fatalf("CheckFork(%q, %q) allows a child ForkOptions does not offer: %+v", ps, child, opts)
			}
		}
	})
}
