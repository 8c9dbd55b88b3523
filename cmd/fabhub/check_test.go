package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

// TestCheckFindsAndRepairs damages a seeded embedded store in every way fabhub check
// looks for, and checks that each is reported on a line of its own, that -repair
// fixes what can be derived again (the search index, unreferenced blobs) and still
// reports the rest, and that a sound store passes.
func TestCheckFindsAndRepairs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	seed := seedEmbedded(t, dir)
	env := map[string]string{"FAB_DATA": dir}
	checkCLI := func(args ...string) (string, error) {
		t.Helper()
		stdout, stderr, err := runCLI(env, append([]string{"check"}, args...)...)
		t.Logf("fabhub check %v: %v\n%s%s", args, err, stdout, stderr)
		return stdout, err
	}
	if out, err := checkCLI(); err != nil || out != "" {
		t.Fatalf("a sound store: %v\n%s", err, out)
	}

	// The damage.
	blobPath := func(key string) string { return filepath.Join(dir, "blobs", "sha256", key[:2], key) }
	if _, err := os.Stat(blobPath(seed.Blobs[0])); err != nil {
		t.Fatalf("the blob layout changed (%v): fix blobPath", err)
	}
	for _, i := range []int{0, 4} { // a version's file, a photo of a make
		if err := os.Remove(blobPath(seed.Blobs[i])); err != nil {
			t.Fatal(err)
		}
	}
	damaged, err := os.ReadFile(blobPath(seed.Blobs[1]))
	if err != nil {
		t.Fatal(err)
	}
	damaged[0] ^= 0x20
	if err := os.WriteFile(blobPath(seed.Blobs[1]), damaged, 0o640); err != nil {
		t.Fatal(err)
	}
	orphan := strings.Repeat("ab", 32)
	if err := os.MkdirAll(filepath.Dir(blobPath(orphan)), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blobPath(orphan), []byte("nobody names me"), 0o640); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(blobPath(orphan), old, old); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "fabcommons.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE jobs SET machine_id = 'm-gone' WHERE id = 'j2'`,
		`UPDATE designs SET parents = json_set(parents, '$[0].design_id', 'd-gone') WHERE id = 'd002'`,
		`UPDATE ledger SET data = json_set(data, '$.minutes', 5000) WHERE seq = 3`,
		`INSERT INTO designs_fts(designs_fts) VALUES ('delete-all')`,
		`UPDATE federation_makes SET design_id = 'd-gone' WHERE id = 'https://other.example/jobs/2'`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	want := []string{
		"missing-blob " + seed.Blobs[0],
		"damaged-blob " + seed.Blobs[1],
		"orphan-blob " + orphan,
		"dangling job j2: is held by machine \"m-gone\"",
		"lineage design-2: names parent design \"d-gone\"",
		"ledger chain:",
		"missing-blob " + seed.Blobs[4] + ": named by a photo of job j2",
		"dangling remote make https://other.example/jobs/2: names design \"d-gone\"",
	}
	out, err := checkCLI()
	if err == nil {
		t.Error("check of a damaged store succeeded")
	}
	for _, w := range want {
		if strings.Count(out, w) != 1 {
			t.Errorf("check printed %q %d times, want once", w, strings.Count(out, w))
		}
	}
	if n := strings.Count(out, "\n"); n != len(want) {
		t.Errorf("check printed %d lines, want %d", n, len(want))
	}
	if out, _ := checkCLI("-quick"); strings.Contains(out, "damaged-blob") {
		t.Error("-quick hashed the blobs")
	}

	out, err = checkCLI("-repair")
	if err == nil {
		t.Error("-repair of a store with missing blobs succeeded")
	}
	if strings.Count(out, "orphan-blob "+orphan) != 1 {
		t.Error("the check after -repair still found the orphan blob")
	}
	if _, err := os.Stat(blobPath(orphan)); !os.IsNotExist(err) {
		t.Errorf("the orphan blob is still there (%v)", err)
	}
	for _, w := range want[:2] {
		if strings.Count(out, w) != 2 {
			t.Errorf("-repair printed %q %d times, want twice (before and after)", w, strings.Count(out, w))
		}
	}
	sdb, err := sqlite.Open(context.Background(), filepath.Join(dir, "fabcommons.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	page, err := sdb.Catalog().Search(context.Background(), catalog.Query{Text: "filament", Limit: 10})
	if err != nil || len(page.Designs) != 2 {
		t.Errorf("search after -repair: %d designs (%v), want the 2 filament holders", len(page.Designs), err)
	}
	// The counters are recomputed: the holder's makes are its job done here and its make
	// at another hub's lab.
	if d, err := sdb.Catalog().DesignByID(context.Background(), "d001"); err != nil || d.Counters.Makes != d.Counters.JobsOK+1 {
		t.Errorf("the holder's counters after -repair: %+v (%v), want makes = its jobs done + 1 elsewhere", d.Counters, err)
	}
	if _, err := checkCLI("-grace", "1s"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("a grace under a minute: %v, want the usage", err)
	}
}
