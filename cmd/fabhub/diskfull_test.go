package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

// mountSmallDisk mounts a tmpfs of size bytes on a new folder: a disk that fills up.
// Mounting needs root (as scripts/test.sh runs in CI); elsewhere the test skips.
func mountSmallDisk(t *testing.T, size int64) string {
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

// fill writes a file on dir's disk until the disk is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	for n := 32 << 10; n > 0; n /= 2 { // and the last pages
		f.Write(chunk[:n])
	}
	return path
}

// TestDiskFull runs a hub on a small disk and fills it: uploads and sign-ups are
// refused with 507 and a clear error (never a 500), nothing saved before is damaged,
// the hub keeps serving reads, and once space returns the same hub takes uploads again.
func TestDiskFull(t *testing.T) {
	disk := mountSmallDisk(t, 48<<20)
	h := startHubProcess(t, filepath.Join(disk, "data"))
	c, err := signUp(h.base)
	if err != nil {
		t.Fatal(err)
	}
	design := func(i int) map[string][]byte {
		return map[string][]byte{"ring.stl": meshtest.Binary("ring", meshtest.Torus(96, 48, 20+float64(i), 4))} // ~450 KB
	}
	publish := func(i int) (*published, error) {
		files := design(i)
		var created struct{ Design struct{ Slug string } }
		meta := map[string]any{"title": fmt.Sprintf("Ring %d", i), "license": "CC-BY-4.0"}
		if err := c.upload("/api/v1/designs", meta, files, &created); err != nil {
			return nil, err
		}
		return &published{slug: created.Design.Slug, files: map[int]map[string]string{1: {"ring.stl": sha(files["ring.stl"])}}}, nil
	}
	var saved []*published
	for i := range 4 {
		p, err := publish(i)
		if err != nil {
			t.Fatal(err)
		}
		saved = append(saved, p)
	}

	filler := fill(t, disk)
	refused := func(what string, req *http.Request) {
		t.Helper()
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s on a full disk: %v", what, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(string(body), `"code":"insufficient_storage"`) {
			t.Errorf("%s on a full disk: %d %s, want 507 insufficient_storage", what, resp.StatusCode, body)
		}
	}
	for i := range 3 {
		_, err := publish(100 + i)
		if err == nil || !strings.Contains(err.Error(), "got 507") || !strings.Contains(err.Error(), "insufficient_storage") {
			t.Errorf("upload on a full disk: %v, want 507 insufficient_storage", err)
		}
	}
	req, _ := http.NewRequest("POST", h.base+"/api/v1/users", bytes.NewReader([]byte(`{"handle":"bob","email":"bob@example.org","password":"correct horse battery"}`)))
	req.Header.Set("Content-Type", "application/json")
	refused("sign-up", req)

	for _, p := range saved { // what was saved is whole, and reads go on
		checkCopiedDesign(t, c, p)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := publish(200); err != nil {
		t.Errorf("upload once space returned: %v", err)
	}
	h.stop()
	if out, err := fabhubCLI(t, map[string]string{"FAB_DATA": filepath.Join(disk, "data")}, "check"); err != nil {
		t.Errorf("fabhub check after the full disk: %v\n%s", err, out)
	}
}
