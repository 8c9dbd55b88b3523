package externaltest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// SmallDisk mounts a tmpfs of size bytes on a new folder: a disk that fills up.
// Mounting needs root (as scripts/test.sh runs in CI); elsewhere the test skips.
func SmallDisk(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0750", size)); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("mounting a small tmpfs needs root: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// FillDisk writes a file on dir's disk until at most free bytes are left (with free
// 0, until the disk takes no more, to its last pages), and returns its path.
func FillDisk(t testing.TB, dir string, free int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if free > 0 && int64(st.Bavail)*st.Bsize <= free {
			return path
		}
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	for n := 32 << 10; n > 0; n /= 2 { // and the last pages
		f.Write(chunk[:n])
	}
	return path
}
