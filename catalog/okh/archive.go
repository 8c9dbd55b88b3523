package okh

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/fabcommons/fabcommons/storage"
)

// Bounds on an archive's table of contents, read before any file in it is: a zip's
// directory is held in memory whole, so its size is checked in the end record first.
const (
	maxEntries        = 10_000
	maxDirectoryBytes = 4 << 20
	// maxRatio bounds how much the files taken may grow when unpacked, against what
	// they take in the archive: meshes and documents deflate a few times over, a zip
	// bomb thousands. The first MiB is free, as tiny files compress oddly.
	maxRatio = 100
)

// archive is an opened OKH package: its entries by their path inside the package
// (a single top-level folder, as GitHub's downloads have, taken off).
type archive struct {
	entries  map[string]*zip.File
	order    []string // entry paths in archive order
	manifest string   // the okh.toml's path in entries
}

// errArchive is a refusal of the archive itself, 422 naming the archive field.
func errArchive(format string, args ...any) error {
	return storage.Invalid("archive", fmt.Sprintf(format, args...))
}

// openArchive reads the table of contents of a zip of size bytes. It ends one of
// three ways: the archive; a *storage.InvalidError (422) saying why the zip is refused
// (not a zip, too many entries, a path that climbs out or is absolute, a link, a name
// twice, no okh.toml); or an error reading ra.
func openArchive(ra io.ReaderAt, size int64) (*archive, error) {
	if err := checkDirectory(ra, size); err != nil {
		return nil, err
	}
	// The directory's size is checked: let zip read that much, and the end records
	// around it, and no more, whatever the records claim.
	budget := &budgetReaderAt{r: ra, left: 2*(1<<16+22) + maxDirectoryBytes + 1<<16}
	zr, err := zip.NewReader(budget, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		if errors.Is(err, errBudget) {
			return nil, errArchive("its table of contents is larger than it says")
		}
		return nil, errArchive("not a zip archive this hub can read: %v", err)
	}
	budget.left = -1 // the files themselves are bounded as they are read
	if len(zr.File) > maxEntries {
		return nil, errArchive("it has %d entries; at most %d", len(zr.File), maxEntries)
	}
	a := &archive{entries: map[string]*zip.File{}}
	for _, f := range zr.File {
		name := f.Name
		switch {
		case strings.Contains(name, "\\"):
			return nil, errArchive("the entry %q has a backslash in its path", name)
		case strings.HasPrefix(name, "/") || len(name) > 1 && name[1] == ':':
			return nil, errArchive("the entry %q has an absolute path", name)
		case f.Mode()&fs.ModeSymlink != 0:
			return nil, errArchive("the entry %q is a symbolic link; links are not followed", name)
		}
		for _, part := range strings.Split(name, "/") {
			if part == ".." {
				return nil, errArchive("the entry %q climbs out of the archive with ..", name)
			}
		}
		if f.FileInfo().IsDir() || strings.HasSuffix(name, "/") {
			continue
		}
		if !f.Mode().IsRegular() {
			return nil, errArchive("the entry %q is not a plain file", name)
		}
		clean := path.Clean(strings.TrimPrefix(name, "./"))
		if _, dup := a.entries[clean]; dup {
			return nil, errArchive("the archive holds %q twice", clean)
		}
		a.entries[clean] = f
		a.order = append(a.order, clean)
	}
	return a, a.findManifest()
}

// findManifest finds okh.toml (in any case) at the root, or in the one folder that
// holds everything else (macOS's __MACOSX aside), and takes that folder off every path.
func (a *archive) findManifest() error {
	for _, p := range a.order {
		if strings.EqualFold(p, "okh.toml") {
			a.manifest = p
			return nil
		}
	}
	top := ""
	for _, p := range a.order {
		if strings.HasPrefix(p, "__MACOSX/") {
			continue
		}
		dir, _, ok := strings.Cut(p, "/")
		if !ok || top != "" && dir != top {
			top = ""
			break
		}
		top = dir
	}
	if top != "" {
		entries := map[string]*zip.File{}
		var order []string
		for _, p := range a.order {
			if rest, ok := strings.CutPrefix(p, top+"/"); ok {
				entries[rest] = a.entries[p]
				order = append(order, rest)
			}
		}
		for _, p := range order {
			if strings.EqualFold(p, "okh.toml") {
				a.entries, a.order, a.manifest = entries, order, p
				return nil
			}
		}
	}
	hint := ""
	for _, p := range a.order {
		if ext := strings.ToLower(path.Ext(p)); strings.Contains(strings.ToLower(path.Base(p)), "okh") && (ext == ".yml" || ext == ".yaml") {
			hint = fmt.Sprintf(" (%s is an OKH v1 manifest in YAML, which this hub does not read: write its keys as okh.toml)", p)
			break
		}
	}
	return errArchive("there is no okh.toml at the root of the archive (nor in a single top-level folder, as GitHub's downloads have): an OKH package names its files there%s", hint)
}

// readManifest returns the okh.toml's bytes, at most MaxManifestBytes.
func (a *archive) readManifest() ([]byte, error) {
	return a.readSmall(a.manifest, MaxManifestBytes)
}

// readSmall reads a whole entry of at most limit bytes.
func (a *archive) readSmall(p string, limit int64) ([]byte, error) {
	f := a.entries[p]
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%s is over %d bytes: %w", p, limit, storage.ErrTooLarge)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, errArchive("%s cannot be read: %v", p, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, errArchive("%s cannot be read: %v", p, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes: %w", p, limit, storage.ErrTooLarge)
	}
	return b, nil
}

// checkDirectory reads the zip's end record and refuses a table of contents with more
// entries, or more bytes, than the bounds, before anything reads it.
func checkDirectory(ra io.ReaderAt, size int64) error {
	const endLen = 22
	if size < endLen {
		return errArchive("not a zip archive: it is %d bytes", size)
	}
	tail := min(size, 1<<16+endLen)
	buf := make([]byte, tail)
	if _, err := ra.ReadAt(buf, size-tail); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the archive: %w", err)
	}
	for i := len(buf) - endLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(buf[i:]) != 0x06054b50 {
			continue
		}
		entries := binary.LittleEndian.Uint16(buf[i+10:])
		dirBytes := binary.LittleEndian.Uint32(buf[i+12:])
		if entries > maxEntries {
			return errArchive("it has %d entries; at most %d", entries, maxEntries)
		}
		if dirBytes > maxDirectoryBytes {
			return errArchive("its table of contents is %d bytes; at most %d", dirBytes, maxDirectoryBytes)
		}
		return nil
	}
	return errArchive("not a zip archive: no end record")
}

var errBudget = errors.New("read past the archive's table of contents")

// budgetReaderAt lets left bytes be read (left < 0: any number).
type budgetReaderAt struct {
	r    io.ReaderAt
	left int64
}

func (b *budgetReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if b.left >= 0 {
		if int64(len(p)) > b.left {
			return 0, errBudget
		}
		b.left -= int64(len(p))
	}
	return b.r.ReadAt(p, off)
}
