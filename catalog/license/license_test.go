package license

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// all ids, in registry order, for writing expectations compactly.
var (
	everything = []string{"CERN-OHL-S-2.0", "CERN-OHL-W-2.0", "CERN-OHL-P-2.0", "TAPR-OHL-1.0", "Apache-2.0 WITH SHL-2.1", "CC0-1.0",
		"CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "CC-BY-ND-4.0", "CC-BY-NC-ND-4.0",
		"GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "MIT", "BSD-2-Clause", "BSD-3-Clause", "0BSD"}
	notPublicDomain = without(everything, "CC0-1.0", "0BSD")
)

func without(ids []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(drop, id) })
}

// TestForkMatrix states, for every license, exactly which licenses a fork may take.
func TestForkMatrix(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"CERN-OHL-S-2.0":          {"CERN-OHL-S-2.0"},
		"CERN-OHL-W-2.0":          {"CERN-OHL-S-2.0", "CERN-OHL-W-2.0"},
		"CERN-OHL-P-2.0":          notPublicDomain,
		"TAPR-OHL-1.0":            {"TAPR-OHL-1.0"},
		"Apache-2.0 WITH SHL-2.1": without(notPublicDomain, "GPL-2.0-only"),
		"CC0-1.0":                 everything,
		"CC-BY-4.0":               notPublicDomain,
		"CC-BY-SA-4.0":            {"CC-BY-SA-4.0", "GPL-3.0-only"},
		"CC-BY-NC-4.0":            {"CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "CC-BY-NC-ND-4.0"},
		"CC-BY-NC-SA-4.0":         {"CC-BY-NC-SA-4.0"},
		"CC-BY-ND-4.0":            nil,
		"CC-BY-NC-ND-4.0":         nil,
		"GPL-2.0-only":            {"GPL-2.0-only"},
		"GPL-2.0-or-later":        {"GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later"},
		"GPL-3.0-only":            {"GPL-3.0-only"},
		"GPL-3.0-or-later":        {"GPL-3.0-only", "GPL-3.0-or-later"},
		"MIT":                     notPublicDomain,
		"BSD-2-Clause":            notPublicDomain,
		"BSD-3-Clause":            notPublicDomain,
		"0BSD":                    everything,
	}
	if len(want) != len(All()) {
		t.Fatalf("the matrix covers %d licenses, the registry has %d", len(want), len(All()))
	}
	for parent, allowed := range want {
		for _, child := range everything {
			err := CheckFork([]string{parent}, child)
			ok := slices.Contains(allowed, child)
			switch {
			case ok && err != nil:
				t.Errorf("%s -> %s: got %v, want allowed", parent, child, err)
			case !ok && allowed == nil && !errors.Is(err, ErrNoDerivatives):
				t.Errorf("%s -> %s: got %v, want ErrNoDerivatives", parent, child, err)
			case !ok && allowed != nil && !errors.Is(err, ErrNotAllowed):
				t.Errorf("%s -> %s: got %v, want ErrNotAllowed", parent, child, err)
			}
		}
	}
}

func TestRemixIntersection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		parents []string
		want    []string
		err     error
	}{
		{[]string{"CC-BY-4.0", "CC-BY-SA-4.0"}, []string{"CC-BY-SA-4.0", "GPL-3.0-only"}, nil},
		{[]string{"MIT", "CERN-OHL-W-2.0"}, []string{"CERN-OHL-S-2.0", "CERN-OHL-W-2.0"}, nil},
		{[]string{"CC0-1.0", "GPL-2.0-or-later"}, []string{"GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later"}, nil},
		{[]string{"CC-BY-SA-4.0", "GPL-3.0-or-later"}, []string{"GPL-3.0-only"}, nil},
		{[]string{"CC-BY-SA-4.0", "CC-BY-NC-4.0"}, nil, ErrNoCommonLicense},
		{[]string{"CERN-OHL-S-2.0", "GPL-3.0-only"}, nil, ErrNoCommonLicense},
		{[]string{"Apache-2.0 WITH SHL-2.1", "GPL-2.0-only"}, nil, ErrNoCommonLicense},
		{[]string{"MIT", "CC-BY-ND-4.0"}, nil, ErrNoDerivatives},
	} {
		options, err := ForkOptions(tc.parents)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%v: got %v, want %v", tc.parents, err, tc.err)
			}
			continue
		}
		var got []string
		for _, o := range options {
			got = append(got, o.ID)
		}
		slices.Sort(got)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%v: got %v, %v; want %v", tc.parents, got, err, tc.want)
		}
	}
	_, err := ForkOptions([]string{"CC-BY-SA-4.0", "CC-BY-NC-4.0"})
	if err == nil || !strings.Contains(err.Error(), "CC-BY-SA-4.0 allows CC-BY-SA-4.0, GPL-3.0-only") {
		t.Errorf("the no-common-license error should say what each parent allows: %v", err)
	}
}

func TestObligations(t *testing.T) {
	t.Parallel()
	codes := func(parents ...string) []string {
		options, err := ForkOptions(parents)
		if err != nil {
			t.Fatal(err)
		}
		var c []string
		for _, o := range options[0].Obligations {
			c = append(c, o.Code)
		}
		return c
	}
	for _, tc := range []struct {
		parents []string
		want    []string
	}{
		{[]string{"CC0-1.0"}, nil},
		{[]string{"MIT"}, []string{"attribution"}},
		{[]string{"CC-BY-4.0"}, []string{"attribution", "modification_notice"}},
		{[]string{"CERN-OHL-S-2.0"}, []string{"attribution", "modification_notice", "source_present"}},
		{[]string{"CC-BY-NC-4.0"}, []string{"attribution", "modification_notice", "non_commercial"}},
		{[]string{"0BSD", "GPL-3.0-or-later"}, []string{"attribution", "modification_notice", "source_present"}},
	} {
		if got := codes(tc.parents...); !slices.Equal(got, tc.want) {
			t.Errorf("%v: got %v, want %v", tc.parents, got, tc.want)
		}
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	if l, err := Lookup("CERN-OHL-S-2.0"); err != nil || l.Plain == "" || l.Name == "" {
		t.Fatalf("got %+v, %v", l, err)
	}
	if _, err := Lookup("cern-ohl-s-2.0"); err == nil || !strings.Contains(err.Error(), `did you mean "CERN-OHL-S-2.0"`) {
		t.Errorf("case slip: got %v", err)
	}
	if _, err := Lookup("Proprietary"); err == nil {
		t.Error("unknown license: got nil error")
	}
	if err := CheckFork([]string{"MIT"}, "WTFPL"); err == nil || !strings.Contains(err.Error(), "unknown license") {
		t.Errorf("unknown child license: got %v", err)
	}
}
