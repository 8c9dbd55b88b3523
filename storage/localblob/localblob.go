// Package localblob stores content-addressed blobs in a local directory: the embedded
// default. Objects live at sha256/ab/<key>; uploads are written to tmp/, fsynced and
// renamed into place, so a crash never leaves a partial object under a final key.
package localblob

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

	"github.com/fabcommons/fabcommons/storage"
)

// Store is a blob store rooted at one directory.
type Store struct {
	root string
}

var _ storage.Blobs = (*Store)(nil)

// Open creates the directory layout under root if needed.
func Open(root string) (*Store, error) {
	for _, dir := range []string{"sha256", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o750); err != nil {
			return nil, fmt.Errorf("open blob dir: %w", err)
		}
	}
	return &Store{root: root}, nil
}

func (s *Store) path(key string) string {
	return filepath.Join(s.root, "sha256", key[:2], key)
}

func (s *Store) Put(ctx context.Context, r io.Reader, limit int64, want string) (storage.BlobInfo, error) {
	if want != "" && !storage.ValidKey(want) {
		return storage.BlobInfo{}, storage.ErrInvalidKey
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "upload-*")
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	promoted := false
	defer func() {
		if !promoted {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	d := storage.NewDigestReader(contextReader{ctx, r}, limit)
	if _, err := io.Copy(tmp, d); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	if err := d.Check(want); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	key := d.Key()
	final := s.path(key)
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob %s: %w", key, err)
	}
	// Rename is atomic: two writers of one key both succeed and the second replaces
	// identical bytes with identical bytes.
	if err := os.Rename(tmp.Name(), final); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob %s: %w", key, err)
	}
	promoted = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob %s: %w", key, err)
	}
	return s.Stat(ctx, key)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if !storage.ValidKey(key) {
		return nil, storage.ErrInvalidKey
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", key, mapErr(err))
	}
	if offset < 0 {
		f.Close()
		return nil, fmt.Errorf("get blob %s: negative offset", key)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("get blob %s: %w", key, err)
	}
	if length < 0 {
		return f, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, length), f}, nil
}

func (s *Store) Stat(ctx context.Context, key string) (storage.BlobInfo, error) {
	if !storage.ValidKey(key) {
		return storage.BlobInfo{}, storage.ErrInvalidKey
	}
	fi, err := os.Stat(s.path(key))
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("stat blob %s: %w", key, mapErr(err))
	}
	return storage.BlobInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (s *Store) Delete(ctx context.Context, key string) error {
	if !storage.ValidKey(key) {
		return storage.ErrInvalidKey
	}
	if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	return nil
}

func (s *Store) List(ctx context.Context, prefix string, fn func(storage.BlobInfo) error) error {
	if !storage.ValidPrefix(prefix) {
		return storage.ErrInvalidKey
	}
	fanouts, err := os.ReadDir(filepath.Join(s.root, "sha256"))
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	for _, fan := range fanouts {
		if !fan.IsDir() || !sharesPrefix(fan.Name(), prefix) {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.root, "sha256", fan.Name()))
		if err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if !storage.ValidKey(e.Name()) || !strings.HasPrefix(e.Name(), prefix) {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while listing
			}
			if err != nil {
				return fmt.Errorf("list blobs: %w", err)
			}
			if err := fn(storage.BlobInfo{Key: e.Name(), Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// sharesPrefix reports whether a fan-out directory can hold keys starting with prefix.
func sharesPrefix(fan, prefix string) bool {
	n := min(len(fan), len(prefix))
	return fan[:n] == prefix[:n]
}

func (s *Store) Sweep(ctx context.Context, olderThan time.Duration) (int, error) {
	dir := filepath.Join(s.root, "tmp")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("sweep blob uploads: %w", err)
	}
	removed := 0
	cutoff := time.Now().Add(-olderThan)
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
			removed++
		}
	}
	return removed, nil
}

func (s *Store) Ping(ctx context.Context) error {
	_, err := os.Stat(filepath.Join(s.root, "tmp"))
	return err
}

func mapErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return storage.ErrNotFound
	}
	return err
}

// contextReader stops a copy when its context is canceled.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
