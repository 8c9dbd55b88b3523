// Package progress draws a progress bar on one terminal line for the commands' long work
// (an agent's download, a hub's backup).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// IsTerminal reports whether w is a character device (a terminal), where a progress
// bar makes sense; logs to a file or journald get none.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Bar draws progress on one terminal line, at most ten times a second, and ends the
// line when the work is done.
type Bar struct {
	w     io.Writer
	label string
	last  time.Time
	open  bool // a line is drawn and not yet ended
}

// NewBar draws on w, each line starting with label ("download").
func NewBar(w io.Writer, label string) *Bar { return &Bar{w: w, label: label} }

// Update shows done of total bytes; a total of 0 or less is unknown.
func (p *Bar) Update(done, total int64) {
	finished := total > 0 && done >= total
	if !finished && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprint(p.w, "\r"+render(p.label, done, total, 30))
	p.open = true
	if finished {
		p.End()
	}
}

// End ends the line, if one is drawn: for work that stops short of its total.
func (p *Bar) End() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// render is "download [#######-------]  45%  4.5 MB / 10.0 MB"; with an unknown
// total, just the bytes so far.
func render(label string, done, total int64, width int) string {
	if total <= 0 {
		return fmt.Sprintf("%s %s", label, MB(done))
	}
	frac := min(float64(done)/float64(total), 1)
	n := int(frac * float64(width))
	return fmt.Sprintf("%s [%s%s] %3.0f%%  %s / %s", label, strings.Repeat("#", n), strings.Repeat("-", width-n), 100*frac, MB(done), MB(total))
}

// MB is n bytes in megabytes, to one decimal.
func MB(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
