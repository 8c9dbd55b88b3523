package localblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/fabcommons/fabcommons/storage"
)

// CopyStats is what CopyTo copied.
type CopyStats struct {
	Blobs  int   // blobs in the copy
	Bytes  int64 // their total size
	Linked int   // of those, hard links to the store's own files rather than copies
}

// CopyTo makes dest, which must not exist, a blob folder (one Open can serve) holding
// every blob the store holds when CopyTo lists them; blobs added later may or may not be
// in it. Blobs never change once stored, so on the same file system a blob is hard-linked
// rather than copied; elsewhere it is copied and fsynced. Either way its content is read
// and must hash to its name. progress, if not nil, is called with the bytes read so far
// and the total as the copy goes. It ends one of two ways:
//   - nil: dest holds every listed blob (less any the hub deleted meanwhile, which only
//     orphan collection does, to blobs no version names), each verified, the
//     directories fsynced;
//   - an error, naming every blob whose content does not match its name if that was
//     the cause: dest has been removed.
func (s *Store) CopyTo(ctx context.Context, dest string, progress func(done, total int64)) (CopyStats, error) {
	return s.copyTo(ctx, dest, true, progress)
}

// copyTo is CopyTo; with link false it copies every blob, as across file systems.
func (s *Store) copyTo(ctx context.Context, dest string, link bool, progress func(done, total int64)) (stats CopyStats, err error) {
	var blobs []storage.BlobInfo
	var total int64
	if err := s.List(ctx, "", func(b storage.BlobInfo) error {
		blobs = append(blobs, b)
		total += b.Size
		return nil
	}); err != nil {
		return CopyStats{}, err
	}
	if err := os.Mkdir(dest, 0o750); err != nil {
		return CopyStats{}, fmt.Errorf("copy blobs: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dest)
		}
	}()
	out, err := Open(dest)
	if err != nil {
		return CopyStats{}, fmt.Errorf("copy blobs: %w", err)
	}
	c := &copier{from: s, to: out, link: link, total: total, progress: progress}
	var damaged []string
	fanouts := map[string]bool{}
	for _, b := range blobs {
		if err := ctx.Err(); err != nil {
			return CopyStats{}, err
		}
		if !fanouts[b.Key[:2]] {
			if err := os.Mkdir(filepath.Dir(out.path(b.Key)), 0o750); err != nil {
				return CopyStats{}, fmt.Errorf("copy blobs: %w", err)
			}
			fanouts[b.Key[:2]] = true
		}
		linked, err := c.copy(ctx, b)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // deleted by orphan collection since it was listed
		case errors.Is(err, storage.ErrDigestMismatch):
			damaged = append(damaged, b.Key)
			continue
		case err != nil:
			return CopyStats{}, err
		}
		stats.Blobs++
		stats.Bytes += b.Size
		if linked {
			stats.Linked++
		}
	}
	if len(damaged) > 0 {
		return CopyStats{}, fmt.Errorf("copy blobs: %d of %d blobs in %s do not match their names (damaged on disk): %s",
			len(damaged), len(blobs), s.root, abbreviate(damaged, 5))
	}
	dirs := []string{filepath.Join(dest, "sha256"), dest}
	for fan := range fanouts {
		dirs = append(dirs, filepath.Join(dest, "sha256", fan))
	}
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return CopyStats{}, fmt.Errorf("copy blobs: %w", err)
		}
	}
	return stats, nil
}

// copier copies blobs one at a time, counting bytes for progress.
type copier struct {
	from, to *Store
	link     bool // false once a hard link failed: dest is on another file system
	done     int64
	total    int64
	progress func(done, total int64)
}

// copy links or copies blob b and checks its content. It fails with fs.ErrNotExist if
// the blob is gone and with storage.ErrDigestMismatch if its content is not what its
// name says.
func (c *copier) copy(ctx context.Context, b storage.BlobInfo) (linked bool, err error) {
	src, dst := c.from.path(b.Key), c.to.path(b.Key)
	if c.link {
		err := os.Link(src, dst)
		switch {
		case err == nil:
			if err := c.verify(ctx, dst, b); err != nil {
				os.Remove(dst)
				return false, err
			}
			return true, nil
		case errors.Is(err, fs.ErrNotExist):
			return false, err // the blob, since its folder in dest was just made
		}
		// Another file system, or one without hard links: copy this and the rest.
		c.link = false
	}
	return false, c.copyBytes(ctx, src, dst, b)
}

// verify reads the file at path and checks it against b's name and size.
func (c *copier) verify(ctx context.Context, path string, b storage.BlobInfo) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.read(ctx, io.Discard, f, b)
}

// copyBytes copies src to dst through a temporary file, as Put stores an upload.
func (c *copier) copyBytes(ctx context.Context, src, dst string, b storage.BlobInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Join(c.to.root, "tmp"), "copy-*")
	if err != nil {
		return fmt.Errorf("copy blob %s: %w", b.Key, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // fails once renamed, as it should
	}()
	if err := c.read(ctx, tmp, in, b); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("copy blob %s: sync: %w", b.Key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("copy blob %s: %w", b.Key, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("copy blob %s: %w", b.Key, err)
	}
	return nil
}

// read copies r to w, hashing it, and checks the result against b.
func (c *copier) read(ctx context.Context, w io.Writer, r io.Reader, b storage.BlobInfo) error {
	d := storage.NewDigestReader(contextReader{ctx, r}, math.MaxInt64-1)
	n, err := io.Copy(w, progressReader{d, c})
	if err != nil {
		return fmt.Errorf("copy blob %s: %w", b.Key, err)
	}
	if n != b.Size {
		return fmt.Errorf("blob %s: read %d bytes, want %d: %w", b.Key, n, b.Size, storage.ErrDigestMismatch)
	}
	if err := d.Check(b.Key); err != nil {
		return fmt.Errorf("blob %s: %w", b.Key, err)
	}
	return nil
}

// progressReader reports each read to the copier's progress function.
type progressReader struct {
	r io.Reader
	c *copier
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.c.done += int64(n)
	if p.c.progress != nil && n > 0 {
		p.c.progress(p.c.done, p.c.total)
	}
	return n, err
}

// abbreviate is the first n keys, and how many more there are.
func abbreviate(keys []string, n int) string {
	if len(keys) <= n {
		return strings.Join(keys, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(keys[:n], ", "), len(keys)-n)
}
