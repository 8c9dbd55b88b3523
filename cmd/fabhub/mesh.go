package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/fabcommons/fabcommons/catalog/mesh"
)

// meshCommand runs `fabhub mesh check FILE...`: one JSON object per line per file, with
// the file's name and its mesh report (a .3mf is read as 3MF). An unreadable or
// non-mesh file gets a one-line message on stderr; the others are still checked, and
// the exit status is 1.
func meshCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "check" {
		return errors.New("usage: fabhub mesh check FILE...")
	}
	enc := json.NewEncoder(stdout)
	failed := 0
	for _, name := range args[1:] {
		rep, err := checkFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "fabhub: mesh check %s: %v\n", name, err)
			failed++
			continue
		}
		if err := enc.Encode(struct {
			File string `json:"file"`
			mesh.Report
		}{name, rep}); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("mesh check: %d of %d files could not be read as STL or 3MF", failed, len(args)-1)
	}
	return nil
}

func checkFile(name string) (mesh.Report, error) {
	f, err := os.Open(name)
	if err != nil {
		return mesh.Report{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return mesh.Report{}, err
	}
	if !fi.Mode().IsRegular() {
		return mesh.Report{}, errors.New("not a regular file")
	}
	return mesh.AnalyzeFile(name, f, fi.Size())
}
