package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// isTerminal reports whether w is a character device (a terminal), where a progress
// bar makes sense; logs to a file or journald get none.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws a download's progress on one terminal line, at most ten times a
// second, and ends the line when the download does.
type progressBar struct {
	w    io.Writer
	last time.Time
}

func newProgressBar(w io.Writer) *progressBar { return &progressBar{w: w} }

func (p *progressBar) update(done, total int64) {
	finished := total > 0 && done >= total
	if !finished && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprint(p.w, "\r"+renderBar(done, total, 30))
	if finished {
		fmt.Fprintln(p.w)
	}
}

// renderBar is "download [#######-------]  45%  4.5 MB / 10.0 MB"; with an unknown
// total, just the bytes so far.
func renderBar(done, total int64, width int) string {
	if total <= 0 {
		return fmt.Sprintf("download %s", mb(done))
	}
	frac := min(float64(done)/float64(total), 1)
	n := int(frac * float64(width))
	return fmt.Sprintf("download [%s%s] %3.0f%%  %s / %s", strings.Repeat("#", n), strings.Repeat("-", width-n), 100*frac, mb(done), mb(total))
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
