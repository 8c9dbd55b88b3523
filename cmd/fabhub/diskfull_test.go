package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
	"github.com/fabcommons/fabcommons/storage/externaltest"
)

// send sends req and returns the answer's status and body.
func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestDiskFull runs a hub on a small disk and fills it: uploads and sign-ups are
// refused with 507 and a clear error (never a 500), nothing saved before is damaged,
// the hub keeps serving reads, and once space returns the same hub takes uploads again.
func TestDiskFull(t *testing.T) {
	disk := externaltest.SmallDisk(t, 48<<20)
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

	filler := externaltest.FillDisk(t, disk, 0)
	for i := range 3 {
		_, err := publish(100 + i)
		if err == nil || !strings.Contains(err.Error(), "got 507") || !strings.Contains(err.Error(), "insufficient_storage") {
			t.Errorf("upload on a full disk: %v, want 507 insufficient_storage", err)
		}
	}
	// A sign-up and forks write only the database. Its write-ahead log reuses the room
	// it has, so the first may still be taken, durably: each is 201 (and is there once
	// space returns) or 507, never anything else, and the log's room runs out soon.
	var joined []string
	req, _ := http.NewRequest("POST", h.base+"/api/v1/users", strings.NewReader(`{"handle":"bob","email":"bob@example.org","password":"correct horse battery"}`))
	req.Header.Set("Content-Type", "application/json")
	if status, body := send(t, req); status == http.StatusCreated {
		joined = append(joined, "bob")
	} else if status != http.StatusInsufficientStorage || !strings.Contains(body, `"code":"insufficient_storage"`) {
		t.Fatalf("sign-up on a full disk: %d %s, want 201 while the log has room, else 507 insufficient_storage", status, body)
	}
	forks := 0
	for ; ; forks++ {
		req, _ := http.NewRequest("POST", h.base+"/api/v1/designs/"+saved[0].slug+"/forks", strings.NewReader(`{"license":"CC-BY-4.0"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+c.token)
		status, body := send(t, req)
		if status == http.StatusCreated && forks < 2000 {
			continue
		}
		if status != http.StatusInsufficientStorage || !strings.Contains(body, `"code":"insufficient_storage"`) {
			t.Fatalf("fork %d on a full disk: %d %s, want 201 while the log has room, then 507 insufficient_storage", forks, status, body)
		}
		break
	}
	t.Logf("on the full disk %d sign-ups and %d forks were taken before the log ran out of room", len(joined), forks)
	for _, p := range saved { // what was saved is whole, and reads go on
		checkCopiedDesign(t, c, p)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := publish(200); err != nil {
		t.Errorf("upload once space returned: %v", err)
	}
	for _, handle := range joined { // taken on the full disk, and kept
		tok := hubClient{base: h.base}
		if err := tok.postJSON("/api/v1/tokens", map[string]string{"handle": handle, "password": "correct horse battery", "name": "disk"}, nil); err != nil {
			t.Errorf("%s, who signed up on the full disk, logs in: %v", handle, err)
		}
	}
	h.stop()
	if out, err := fabhubCLI(t, map[string]string{"FAB_DATA": filepath.Join(disk, "data")}, "check"); err != nil {
		t.Errorf("fabhub check after the full disk: %v\n%s", err, out)
	}
}
