package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/cmd/internal/progress"
	"github.com/fabcommons/fabcommons/storage/archive"
)

// exportCommand runs `fabhub export [-public] FILE` (FILE "-" is standard output): the
// whole hub, from the stores the environment names (FAB_DATA, FAB_DB, FAB_BLOBS), while
// the hub may be serving. The archive holds password and token hashes unless -public,
// so it is written with mode 0600; a file appears only once it is whole.
func exportCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fabhub export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	public := fs.Bool("public", false, "leave out every secret (password and token hashes, emails, reports, hidden designs' files): an archive to share")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: fabhub export [-public] FILE (or - for standard output)")
	}
	st, _, err := openArchiveStores(ctx, getenv, false)
	if err != nil {
		return err
	}
	defer st.close()

	name := fs.Arg(0)
	out, finish := io.Writer(stdout), func() error { return nil }
	if name != "-" {
		f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*.partial")
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		out = f
		finish = func() error {
			if err := f.Sync(); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return os.Rename(f.Name(), name)
		}
	}
	start := time.Now()
	h, err := archive.Export(ctx, st.archive, st.blobs, out, archive.Options{Public: *public, Progress: bar(stderr, "export")})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := finish(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(stderr, "exported %s and %d blobs (%s) in %s\n", countRecords(h), h.Blobs, progress.MB(h.BlobBytes), time.Since(start).Round(time.Millisecond))
	return nil
}

// importCommand runs `fabhub import FILE` (or - for standard input) into the stores the
// environment names, which must be new: import never merges into a hub's data.
func importCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stderr io.Writer) error {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") && args[0] != "-" {
		return errors.New("usage: fabhub import FILE (or - for standard input)")
	}
	in := stdin
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		in = f
	}
	st, _, err := openArchiveStores(ctx, getenv, true)
	if err != nil {
		return err
	}
	defer st.close()
	start := time.Now()
	h, err := archive.Import(ctx, in, st.archive, st.blobs, archive.Options{Progress: bar(stderr, "import")})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	fmt.Fprintf(stderr, "imported %s and %d blobs (%s) in %s\n", countRecords(h), h.Blobs, progress.MB(h.BlobBytes), time.Since(start).Round(time.Millisecond))
	return nil
}

// openArchiveStores opens the stores the environment names, as the hub would.
func openArchiveStores(ctx context.Context, getenv func(string) string, create bool) (*stores, Config, error) {
	cfg, err := parseConfig(nil, getenv)
	if err != nil {
		return nil, cfg, err
	}
	if cfg.DB == "" || cfg.Blobs == "" {
		if _, err := os.Stat(cfg.DataDir); errors.Is(err, os.ErrNotExist) && !create {
			return nil, cfg, fmt.Errorf("data dir %s does not exist: set FAB_DATA to the hub's", cfg.DataDir)
		}
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, cfg, fmt.Errorf("create data dir: %w", err)
		}
	}
	st, err := openStores(ctx, cfg)
	return st, cfg, err
}

func bar(w io.Writer, label string) func(done, total int64) {
	if !progress.IsTerminal(w) {
		return nil
	}
	return progress.NewBar(w, label).Update
}

func countRecords(h archive.Header) string {
	var parts []string
	for _, k := range archive.Kinds {
		if n := h.Records[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	if len(parts) == 0 {
		return "no records"
	}
	return strings.Join(parts, ", ")
}
