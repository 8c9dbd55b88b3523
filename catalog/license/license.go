// Package license holds the SPDX licenses fabcommons accepts for designs and the rules
// for forks: which licenses a derived design may take given its parents' licenses,
// and what the person forking must then do.
package license

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// License is one SPDX license with what it means for a maker.
type License struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Plain string `json:"plain"` // what it means, in one sentence

	family family
	// Obligations of whoever builds on a design under this license.
	attribution, notice, source, nonCommercial bool
}

// family decides what a derivative may be licensed under.
type family int

const (
	publicDomain  family = iota // anything
	permissive                  // anything that keeps the notice (not a public-domain dedication)
	noDerivatives               // no public forks
	shareAlike                  // the licenses listed in derivatives only
)

// Obligation is one thing a person forking must do.
type Obligation struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

var registry = []License{
	{ID: "CERN-OHL-S-2.0", Name: "CERN Open Hardware Licence v2 – Strongly Reciprocal", family: shareAlike, attribution: true, notice: true, source: true,
		Plain: "Anyone may make, change and sell it; whoever ships a product or a changed design must publish the complete design source under this same licence."},
	{ID: "CERN-OHL-W-2.0", Name: "CERN Open Hardware Licence v2 – Weakly Reciprocal", family: shareAlike, attribution: true, notice: true, source: true,
		Plain: "Anyone may make, change and sell it; changes to this design must stay open under CERN-OHL-W (or -S), while separate parts combined with it may use other licences."},
	{ID: "CERN-OHL-P-2.0", Name: "CERN Open Hardware Licence v2 – Permissive", family: permissive, attribution: true, notice: true,
		Plain: "Anyone may make, change and sell it, under any licence, as long as the notices are kept."},
	{ID: "TAPR-OHL-1.0", Name: "TAPR Open Hardware License v1.0", family: shareAlike, attribution: true, notice: true, source: true,
		Plain: "Anyone may make and sell it; changed designs that are distributed must be shared under this same licence, with the changes described."},
	{ID: "Apache-2.0 WITH SHL-2.1", Name: "Solderpad Hardware License v2.1", family: permissive, attribution: true, notice: true,
		Plain: "A permissive hardware licence: use, change and sell it freely, keeping the notices and marking what you changed."},
	{ID: "CC0-1.0", Name: "Creative Commons Zero v1.0 Universal", family: publicDomain,
		Plain: "Dedicated to the public domain: anyone may do anything with it, without asking or crediting."},
	{ID: "CC-BY-4.0", Name: "Creative Commons Attribution 4.0", family: permissive, attribution: true, notice: true,
		Plain: "Anyone may share and adapt it, even commercially, as long as they credit the author and say what they changed."},
	{ID: "CC-BY-SA-4.0", Name: "Creative Commons Attribution-ShareAlike 4.0", family: shareAlike, attribution: true, notice: true,
		Plain: "Anyone may share and adapt it, even commercially, crediting the author; adaptations must be shared under the same licence (or GPL-3.0)."},
	{ID: "CC-BY-NC-4.0", Name: "Creative Commons Attribution-NonCommercial 4.0", family: shareAlike, attribution: true, notice: true, nonCommercial: true,
		Plain: "Anyone may share and adapt it for non-commercial purposes, crediting the author."},
	{ID: "CC-BY-NC-SA-4.0", Name: "Creative Commons Attribution-NonCommercial-ShareAlike 4.0", family: shareAlike, attribution: true, notice: true, nonCommercial: true,
		Plain: "Non-commercial sharing and adapting, crediting the author; adaptations keep this same licence."},
	{ID: "CC-BY-ND-4.0", Name: "Creative Commons Attribution-NoDerivatives 4.0", family: noDerivatives, attribution: true,
		Plain: "Anyone may share it unchanged, crediting the author; changed versions may not be shared, so it cannot be forked here."},
	{ID: "CC-BY-NC-ND-4.0", Name: "Creative Commons Attribution-NonCommercial-NoDerivatives 4.0", family: noDerivatives, attribution: true, nonCommercial: true,
		Plain: "Non-commercial sharing of the unchanged design only, crediting the author; it cannot be forked here."},
	{ID: "GPL-2.0-only", Name: "GNU General Public License v2.0 only", family: shareAlike, attribution: true, notice: true, source: true,
		Plain: "Anyone may use, change and sell it; distributed changes must be under GPL-2.0 with their source."},
	{ID: "GPL-2.0-or-later", Name: "GNU General Public License v2.0 or later", family: shareAlike, attribution: true, notice: true, source: true,
		Plain: "Anyone may use, change and sell it; distributed changes must be under GPL-2.0 or a later GPL, with their source."},
	{ID: "GPL-3.0-only", Name: "GNU General Public License v3.0 only", family: shareAlike, attribution: true, notice: true, source: true,
		Plain: "Anyone may use, change and sell it; distributed changes must be under GPL-3.0 with their source."},
	{ID: "GPL-3.0-or-later", Name: "GNU General Public License v3.0 or later", family: shareAlike, attribution: true, notice: true, source: true,
		Plain: "Anyone may use, change and sell it; distributed changes must be under GPL-3.0 or a later GPL, with their source."},
	{ID: "MIT", Name: "MIT License", family: permissive, attribution: true,
		Plain: "Anyone may do anything with it, as long as the copyright notice and licence text are kept."},
	{ID: "BSD-2-Clause", Name: `BSD 2-Clause "Simplified" License`, family: permissive, attribution: true,
		Plain: "Anyone may do anything with it, keeping the copyright notice and licence text."},
	{ID: "BSD-3-Clause", Name: `BSD 3-Clause "New" or "Revised" License`, family: permissive, attribution: true,
		Plain: "Anyone may do anything with it, keeping the notices and not using the authors' names to promote derived works."},
	{ID: "0BSD", Name: "BSD Zero Clause License", family: publicDomain,
		Plain: "Anyone may do anything with it; not even credit is required."},
}

// shareAlikeTargets lists, for each reciprocal or non-commercial license, the licenses
// a derivative may take. Permissive and public-domain licenses are computed instead.
var shareAlikeTargets = map[string][]string{
	"CERN-OHL-S-2.0":   {"CERN-OHL-S-2.0"},
	"CERN-OHL-W-2.0":   {"CERN-OHL-W-2.0", "CERN-OHL-S-2.0"},
	"TAPR-OHL-1.0":     {"TAPR-OHL-1.0"},
	"CC-BY-SA-4.0":     {"CC-BY-SA-4.0", "GPL-3.0-only"}, // CC's declared one-way compatibility names GPLv3
	"CC-BY-NC-4.0":     {"CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "CC-BY-NC-ND-4.0"},
	"CC-BY-NC-SA-4.0":  {"CC-BY-NC-SA-4.0"},
	"GPL-2.0-only":     {"GPL-2.0-only"},
	"GPL-2.0-or-later": {"GPL-2.0-or-later", "GPL-2.0-only", "GPL-3.0-or-later", "GPL-3.0-only"},
	"GPL-3.0-only":     {"GPL-3.0-only"},
	"GPL-3.0-or-later": {"GPL-3.0-or-later", "GPL-3.0-only"},
}

// notGPL2Compatible are permissive licenses whose terms GPL-2.0 cannot carry (Apache
// 2.0's patent and indemnity terms).
var notGPL2Compatible = map[string]bool{"Apache-2.0 WITH SHL-2.1": true}

// All returns every accepted license, in a stable order.
func All() []License { return slices.Clone(registry) }

// Lookup finds a license by its SPDX id (exact, as SPDX ids are case-sensitive in
// practice; a case-insensitive match is suggested in the error).
func Lookup(id string) (License, error) {
	for _, l := range registry {
		if l.ID == id {
			return l, nil
		}
	}
	for _, l := range registry {
		if strings.EqualFold(l.ID, id) {
			return License{}, fmt.Errorf("unknown license %q: did you mean %q?", id, l.ID)
		}
	}
	return License{}, fmt.Errorf("unknown license %q: use an SPDX id such as CERN-OHL-S-2.0, CC-BY-SA-4.0 or MIT", id)
}

// ErrNoDerivatives is the answer when a parent's license forbids public forks.
var ErrNoDerivatives = errors.New("the license does not allow derivatives to be shared")

// ErrNoCommonLicense is the answer when the parents' licenses admit no license together.
var ErrNoCommonLicense = errors.New("no license satisfies every parent")

// derivatives returns the licenses a derivative of l may take.
func derivatives(l License) []string {
	switch l.family {
	case noDerivatives:
		return nil
	case shareAlike:
		return shareAlikeTargets[l.ID]
	}
	var ids []string
	for _, c := range registry {
		if l.family == permissive && c.family == publicDomain {
			continue // a public-domain dedication would drop the required notice
		}
		if notGPL2Compatible[l.ID] && (c.ID == "GPL-2.0-only") {
			continue
		}
		ids = append(ids, c.ID)
	}
	return ids
}

// Option is one license a fork may take, with what the person forking must do.
type Option struct {
	License
	Obligations []Obligation `json:"obligations"`
}

// ForkOptions returns the licenses a design derived from parents (SPDX ids of each
// parent version) may take: the intersection of what each parent allows. It fails with
// ErrNoDerivatives when a parent forbids derivatives and ErrNoCommonLicense when the
// parents allow nothing in common; both errors say which parents and why.
func ForkOptions(parents []string) ([]Option, error) {
	if len(parents) == 0 {
		return nil, errors.New("a fork needs at least one parent")
	}
	var allowed []string
	for i, id := range parents {
		p, err := Lookup(id)
		if err != nil {
			return nil, err
		}
		if p.family == noDerivatives {
			return nil, fmt.Errorf("%w: %s (%s)", ErrNoDerivatives, p.ID, p.Plain)
		}
		d := derivatives(p)
		if i == 0 {
			allowed = slices.Clone(d) // never edit the shared tables in place
			continue
		}
		allowed = slices.DeleteFunc(allowed, func(id string) bool { return !slices.Contains(d, id) })
	}
	if len(allowed) == 0 {
		var parts []string
		for _, id := range uniq(parents) {
			p, _ := Lookup(id)
			parts = append(parts, fmt.Sprintf("%s allows %s", id, strings.Join(derivatives(p), ", ")))
		}
		return nil, fmt.Errorf("%w: %s", ErrNoCommonLicense, strings.Join(parts, "; "))
	}
	obligations := obligationsOf(parents)
	options := make([]Option, 0, len(allowed))
	for _, id := range allowed {
		l, _ := Lookup(id)
		options = append(options, Option{License: l, Obligations: obligations})
	}
	return options, nil
}

// CheckFork returns nil if a fork of parents may take child, or an error listing what
// is allowed (wrapping ErrNotAllowed), ErrNoDerivatives or ErrNoCommonLicense.
func CheckFork(parents []string, child string) error {
	if _, err := Lookup(child); err != nil {
		return err
	}
	options, err := ForkOptions(parents)
	if err != nil {
		return err
	}
	var ids []string
	for _, o := range options {
		if o.ID == child {
			return nil
		}
		ids = append(ids, o.ID)
	}
	return fmt.Errorf("%w: a fork of %s may take %s", ErrNotAllowed, strings.Join(uniq(parents), " + "), strings.Join(ids, ", "))
}

// ErrNotAllowed is the answer to a license the parents do not allow.
var ErrNotAllowed = errors.New("license not allowed for this fork")

func uniq(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// obligationsOf lists what building on parents requires, whatever license is chosen.
func obligationsOf(parents []string) []Obligation {
	var attribution, notice, source, nc bool
	for _, id := range parents {
		p, _ := Lookup(id)
		attribution = attribution || p.attribution
		notice = notice || p.notice
		source = source || p.source
		nc = nc || p.nonCommercial
	}
	obligations := []Obligation{}
	if attribution {
		obligations = append(obligations, Obligation{"attribution", "Credit every parent design: its title, author and license (fabcommons adds this to ATTRIBUTION.md in every download)."})
	}
	if notice {
		obligations = append(obligations, Obligation{"modification_notice", "Say what you changed (your version message is kept with the design)."})
	}
	if source {
		obligations = append(obligations, Obligation{"source_present", "Keep the complete design source available with anything you make or share from it."})
	}
	if nc {
		obligations = append(obligations, Obligation{"non_commercial", "No commercial use: makes from it may not be sold."})
	}
	return obligations
}

// Obligations lists what whoever builds on a design under l must do.
func (l License) Obligations() []Obligation { return obligationsOf([]string{l.ID}) }
