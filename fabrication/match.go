package fabrication

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Fits reports whether machine m can make job j, and if not, why: process and material
// must match, the machine must carry every tag the job requires, and the part's box
// must fit the build volume in some axis-aligned orientation.
func Fits(j Job, m Machine) (bool, string) {
	if j.Process != "" && j.Process != m.Process {
		return false, fmt.Sprintf("%s runs %s, the job needs %s", m.Name, m.Process, j.Process)
	}
	if j.Material != "" && !containsFold(m.Materials, j.Material) {
		return false, fmt.Sprintf("%s has no %s loaded", m.Name, j.Material)
	}
	for _, t := range j.Tags {
		if !containsFold(m.Tags, t) {
			return false, fmt.Sprintf("%s lacks the tag %s", m.Name, t)
		}
	}
	if !fitsVolume(j.BBox, m.BuildVolume) {
		return false, fmt.Sprintf("%s builds %s, the part is %s", m.Name, mm(m.BuildVolume), mm(j.BBox))
	}
	return true, ""
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

// fitsVolume tries the six axis-aligned orientations of the part.
func fitsVolume(part, vol Volume) bool {
	p := [3]float64{part.X, part.Y, part.Z}
	for _, o := range [6][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		if p[o[0]] <= vol.X && p[o[1]] <= vol.Y && p[o[2]] <= vol.Z {
			return true
		}
	}
	return false
}

func mm(v Volume) string {
	return fmt.Sprintf("%gx%gx%g mm", round1(v.X), round1(v.Y), round1(v.Z))
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// WhyUnfit explains a queued job that no machine of its lab can make, or returns "".
func WhyUnfit(j Job, lab Lab, machines []Machine) string {
	for _, m := range machines {
		if ok, _ := Fits(j, m); ok {
			return ""
		}
	}
	if len(machines) == 0 {
		return fmt.Sprintf("lab %s has no machines yet", lab.Slug)
	}
	need := j.Process
	if j.Material != "" {
		need += " " + j.Material
	}
	return fmt.Sprintf("no machine in lab %s fits %s (%s)", lab.Slug, mm(j.BBox), strings.TrimSpace(need))
}

// ServiceOrder sorts queued jobs in the order a lab serves them: highest priority
// first, then the requester with the least recent machine time in the lab (fair
// share), then the oldest.
func ServiceOrder(jobs []Job, usage map[string]Usage, now time.Time) {
	sort.SliceStable(jobs, func(a, b int) bool {
		if c := serviceCompare(jobs[a], jobs[b], usage, now); c != 0 {
			return c < 0
		}
		return jobs[a].ID < jobs[b].ID
	})
}

// serviceCompare orders two jobs for service (see ServiceOrder); 0 means the order of
// service cannot tell them apart (the copies of one order, say).
func serviceCompare(a, b Job, usage map[string]Usage, now time.Time) int {
	if a.Priority != b.Priority {
		return cmp.Compare(b.Priority, a.Priority)
	}
	if ua, ub := usage[a.RequesterID].At(now), usage[b.RequesterID].At(now); ua != ub {
		return cmp.Compare(ua, ub)
	}
	return a.EnqueuedAt.Compare(b.EnqueuedAt)
}
