// Command testsummary reads `go test -json` on stdin and prints what a person needs:
// each package's result, each backend suite's result, the full output of every failed
// test, and a closing count. It exits 1 when anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// suiteRE picks the per-backend runs of the conformance and crash suites, so the
// summary shows which backends ran (and none was skipped).
var suiteRE = regexp.MustCompile(`^Test\w*(Conformance|Crash\w*)/[a-z0-9]+$`)

func main() {
	failed, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

func summarize(in io.Reader, out io.Writer) (failed bool, err error) {
	output := map[string]*strings.Builder{} // package/test -> its output
	var passed, failedTests, skipped []string
	var suites, pkgLines, loose []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			loose = append(loose, sc.Text()) // build errors arrive as plain text
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			b := output[key]
			if b == nil {
				b = &strings.Builder{}
				output[key] = b
			}
			b.WriteString(e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				result := strings.ToUpper(e.Action)
				if e.Action == "skip" {
					result = "none" // go test reports a package without tests as skipped
				}
				pkgLines = append(pkgLines, fmt.Sprintf("%-4s %s (%s)", result, e.Package, time.Duration(e.Elapsed*float64(time.Second)).Round(time.Millisecond)))
				if e.Action == "fail" {
					failed = true
				}
				continue
			}
			name := e.Package + "." + e.Test
			switch e.Action {
			case "pass":
				passed = append(passed, name)
			case "fail":
				failedTests = append(failedTests, key)
				failed = true
			case "skip":
				skipped = append(skipped, key)
			}
			if suiteRE.MatchString(e.Test) {
				suites = append(suites, fmt.Sprintf("%-4s %s", strings.ToUpper(e.Action), e.Test))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	sort.Strings(suites)
	fmt.Fprintln(out, "\n== packages")
	for _, l := range pkgLines {
		fmt.Fprintln(out, l)
	}
	fmt.Fprintln(out, "\n== backend suites")
	for _, l := range suites {
		fmt.Fprintln(out, l)
	}
	if len(skipped) > 0 {
		fmt.Fprintln(out, "\n== skipped")
		for _, k := range skipped {
			fmt.Fprintf(out, "SKIP %s: %s", k, lastLine(output[k]))
		}
	}
	if len(loose) > 0 {
		failed = true
		fmt.Fprintln(out, "\n== output outside any test (build errors?)")
		for _, l := range loose {
			fmt.Fprintln(out, l)
		}
	}
	for _, k := range failedTests {
		fmt.Fprintf(out, "\n== FAIL %s\n%s", k, output[k])
	}
	fmt.Fprintf(out, "\ntests: %d passed, %d failed, %d skipped\n", len(passed), len(failedTests), len(skipped))
	return failed, nil
}

func lastLine(b *strings.Builder) string {
	if b == nil {
		return "\n"
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "---") && !strings.HasPrefix(l, "===") {
			return l + "\n"
		}
	}
	return "\n"
}
