package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/cmd/internal/progress"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

const backupUsage = "usage: fabhub backup [flags] DEST (the hub's own flags or FAB_ variables, then one destination folder)"

// backupCommand runs `fabhub backup [flags] DEST`: a copy of the embedded stores (the
// SQLite file and the blob folder) of the hub that the same flags and FAB_ variables
// configure, taken while it serves. DEST must not exist or be an empty folder; the copy
// is a data dir a hub can start on. Progress goes to stderr on a terminal, and one line
// of summary to stdout.
func backupCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseFlags(args, getenv)
	if err != nil {
		return err
	}
	if len(rest) != 1 || rest[0] == "" {
		return errors.New(backupUsage)
	}
	if err := embeddedOnly(cfg); err != nil {
		return err
	}
	var opts backupOptions
	var bar *progress.Bar
	if progress.IsTerminal(stderr) {
		fmt.Fprintln(stderr, "copying the database, then the blobs")
		bar = progress.NewBar(stderr, "blobs")
		opts.progress = bar.Update
	}
	sum, err := backupData(ctx, cfg.DataDir, rest[0], opts)
	if bar != nil {
		bar.End()
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintln(stdout, sum)
	return nil
}

// embeddedOnly refuses a hub whose stores are external: their own tools copy them
// consistently, and a copy of a local folder would be a part of the hub, not all of it.
func embeddedOnly(cfg Config) error {
	var external, tools []string
	if cfg.DB != "" {
		external, tools = append(external, "its database in MongoDB (-db, FAB_DB)"), append(tools, "mongodump")
	}
	if cfg.Blobs != "" {
		external, tools = append(external, "its blobs in S3 (-blobs, FAB_BLOBS)"), append(tools, "your S3 tooling (mc mirror, aws s3 sync)")
	}
	if len(external) == 0 {
		return nil
	}
	them := "it"
	if len(external) > 1 {
		them = "them"
	}
	return fmt.Errorf("backup copies only the embedded SQLite file and blob folder; this hub keeps %s: back %s up with %s",
		strings.Join(external, " and "), them, strings.Join(tools, " and "))
}

type backupOptions struct {
	progress func(done, total int64) // bytes of blobs read, of the total
	// betweenCopies, if set, runs after the database is copied and before the blobs
	// are: the test commits designs in that gap, which a wrong order would lose.
	betweenCopies func()
}

// backupSummary is what one backup copied, shown as one line.
type backupSummary struct {
	data, dest string
	dbBytes    int64
	blobs      localblob.CopyStats
	took       time.Duration
}

func (s backupSummary) String() string {
	return fmt.Sprintf("backed up %s to %s: database %s, %d blobs %s (%d hard-linked, %d copied), each checked, in %s",
		s.data, s.dest, progress.MB(s.dbBytes), s.blobs.Blobs, progress.MB(s.blobs.Bytes),
		s.blobs.Linked, s.blobs.Blobs-s.blobs.Linked, s.took.Round(100*time.Millisecond))
}

// backupData copies the embedded stores in the data dir data into dest. It writes into
// a hidden folder beside dest and renames it to dest only when all is copied and
// checked, so a backup that failed or was killed never looks complete: a leftover
// ".DEST.partial-*" folder is one that did not finish. An error leaves nothing, but for
// one: the copy is in place and only fsyncing its parent folder failed.
func backupData(ctx context.Context, data, dest string, opts backupOptions) (backupSummary, error) {
	start := time.Now()
	data, dest, err := backupPaths(data, dest)
	if err != nil {
		return backupSummary{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".partial-")
	if err != nil {
		return backupSummary{}, err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()

	// The database first, then the blobs. The hub stores a blob (renamed into place,
	// fsynced) before it commits the version that names it, so every blob the copied
	// database names was in the blob folder before the copy's moment, and is there when
	// the blobs are listed afterwards; versions are never deleted, so orphan collection
	// never takes it. Blobs stored since are copied too, harmlessly. The other order
	// would miss the blobs of every version committed between the two copies.
	dbCopy := filepath.Join(tmp, "fabcommons.db")
	if err := sqlite.Backup(ctx, filepath.Join(data, "fabcommons.db"), dbCopy); err != nil {
		return backupSummary{}, err
	}
	if opts.betweenCopies != nil {
		opts.betweenCopies()
	}
	blobs, err := localblob.Open(filepath.Join(data, "blobs"))
	if err != nil {
		return backupSummary{}, err
	}
	stats, err := blobs.CopyTo(ctx, filepath.Join(tmp, "blobs"), opts.progress)
	if err != nil {
		return backupSummary{}, err
	}
	fi, err := os.Stat(dbCopy)
	if err != nil {
		return backupSummary{}, err
	}
	if err := syncPath(tmp); err != nil {
		return backupSummary{}, fmt.Errorf("sync %s: %w", tmp, err)
	}
	// An empty dest folder gives way to the copy (os.Rename will not replace a folder;
	// os.Remove will not remove one that is not empty).
	if err := os.Remove(dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return backupSummary{}, fmt.Errorf("replace the empty %s: %w", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return backupSummary{}, fmt.Errorf("move the finished copy into place: %w", err)
	}
	done = true
	if err := syncPath(filepath.Dir(dest)); err != nil {
		return backupSummary{}, fmt.Errorf("sync %s: %w", filepath.Dir(dest), err)
	}
	return backupSummary{data: data, dest: dest, dbBytes: fi.Size(), blobs: stats, took: time.Since(start)}, nil
}

// backupPaths checks that data holds a hub's embedded stores and that dest may become
// a copy of them, and returns both as absolute paths.
func backupPaths(data, dest string) (string, string, error) {
	data, err := filepath.Abs(data)
	if err != nil {
		return "", "", err
	}
	dest, err = filepath.Abs(dest)
	if err != nil {
		return "", "", err
	}
	for _, want := range []struct {
		name string
		dir  bool
	}{{"fabcommons.db", false}, {"blobs", true}} {
		fi, err := os.Stat(filepath.Join(data, want.name))
		if err != nil || fi.IsDir() != want.dir {
			return "", "", fmt.Errorf("%s is not a hub's data dir (no %s in it): set -data or FAB_DATA as the hub has it", data, want.name)
		}
	}
	// Only an empty folder may be replaced; a symbolic link would be replaced itself,
	// not the folder it names.
	switch fi, err := os.Lstat(dest); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", "", err
	case !fi.IsDir():
		return "", "", fmt.Errorf("destination %s exists and is not a folder: give a new folder", dest)
	default:
		entries, err := os.ReadDir(dest)
		if err != nil {
			return "", "", err
		}
		if len(entries) > 0 {
			return "", "", fmt.Errorf("destination %s exists and is not empty: give a new folder", dest)
		}
	}
	parent := filepath.Dir(dest)
	if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
		return "", "", fmt.Errorf("destination's parent %s is not a folder: make it first", parent)
	}
	// A copy inside the data dir would be copied by the next backup, and so on.
	realData, err1 := filepath.EvalSymlinks(data)
	realParent, err2 := filepath.EvalSymlinks(parent)
	if err := errors.Join(err1, err2); err != nil {
		return "", "", err
	}
	if rel, err := filepath.Rel(realData, realParent); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", "", fmt.Errorf("destination %s is inside the data dir %s: put it elsewhere", dest, data)
	}
	return data, dest, nil
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
