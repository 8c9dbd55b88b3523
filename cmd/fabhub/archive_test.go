package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/externaltest"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/mongo"
	"github.com/fabcommons/fabcommons/storage/sqlite"
	"github.com/fabcommons/fabcommons/storage/storetest"
)

// fabhubCLI runs one fabhub command with only env as its environment and returns what
// it wrote to stderr.
func fabhubCLI(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	_, stderr, err := runCLI(env, args...)
	return stderr, err
}

// runCLI runs one fabhub command with only env as its environment and returns what it
// wrote to stdout and to stderr.
func runCLI(env map[string]string, args ...string) (stdout, stderr string, err error) {
	var out, errs bytes.Buffer
	err = run(context.Background(), args, envOf(env), &out, &errs)
	return out.String(), errs.String(), err
}

// seedEmbedded fills a new embedded store (SQLite and a blob folder) in dir.
func seedEmbedded(t *testing.T, dir string) storetest.Seed {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "fabcommons.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs, err := localblob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return storetest.SeedAll(t, db.Accounts(), db.Catalog(), db.Fabrication(), db.Webhooks(), db.Federation(), blobs)
}

// archiveParts reads an archive: its header without the time it was made, its records,
// and the SHA-256 of each blob entry's content by name.
func archiveParts(t *testing.T, path string) (header map[string]any, records []byte, blobs map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blobs = map[string]string{}
	tr := tar.NewReader(f)
	for {
		th, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return header, records, blobs
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case th.Name == "fabcommons-archive.json":
			if err := json.Unmarshal(data, &header); err != nil {
				t.Fatal(err)
			}
			delete(header, "created_at")
		case th.Name == "records.jsonl":
			records = data
		default:
			sum := sha256.Sum256(data)
			blobs[th.Name] = hex.EncodeToString(sum[:])
		}
	}
}

// TestExportImportAcrossBackends moves a hub's data from the embedded store to the
// MongoDB-wire server and MinIO and back, through `fabhub export` and `fabhub import`,
// and checks that the three archives are equal byte for byte, every blob's content
// hashes to its name, people sign in with their passwords and tokens at the end, and
// the ledger's chain verifies there.
func TestExportImportAcrossBackends(t *testing.T) {
	m := externaltest.NeedMinIO(t)
	dbName := externaltest.UniqueName("fabarchive")
	mongoURI := externaltest.MongoDBURIFor(t, dbName)
	dir := t.TempDir()
	seed := seedEmbedded(t, filepath.Join(dir, "first"))

	embedded := func(name string) map[string]string { return map[string]string{"FAB_DATA": filepath.Join(dir, name)} }
	scaled := map[string]string{
		"FAB_DATA":  filepath.Join(dir, "scaled"),
		"FAB_DB":    mongoURI,
		"FAB_BLOBS": fmt.Sprintf("s3://%s:%s@%s/%s?tls=false", url.PathEscape(m.AccessKey), url.PathEscape(m.SecretKey), m.Endpoint, externaltest.UniqueName("fabarchive")),
	}
	t.Cleanup(func() {
		if db, err := mongo.OpenDatabase(context.Background(), mongoURI, dbName); err == nil {
			db.Drop(context.Background())
			db.Close()
		}
	})
	step := func(env map[string]string, args ...string) {
		t.Helper()
		if out, err := fabhubCLI(t, env, args...); err != nil {
			t.Fatalf("fabhub %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	a1, a2, a3 := filepath.Join(dir, "1.tar"), filepath.Join(dir, "2.tar"), filepath.Join(dir, "3.tar")
	step(embedded("first"), "export", a1)
	step(scaled, "import", a1)
	step(scaled, "export", a2)
	step(scaled, "check") // MongoDB and MinIO hold a consistent hub
	step(embedded("third"), "import", a2)
	step(embedded("third"), "export", a3)

	if _, err := fabhubCLI(t, scaled, "import", a1); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a second import into MongoDB: %v, want a refusal", err)
	}
	if fi, err := os.Stat(a1); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive mode %v (%v), want 0600: it holds password hashes", fi.Mode(), err)
	}
	h1, r1, b1 := archiveParts(t, a1)
	for i, a := range []string{a2, a3} {
		h, r, b := archiveParts(t, a)
		if !bytes.Equal(r, r1) {
			t.Errorf("archive %d's records differ from the first's:\n%s\nwant\n%s", i+2, r, r1)
		}
		if fmt.Sprint(h) != fmt.Sprint(h1) || fmt.Sprint(b) != fmt.Sprint(b1) {
			t.Errorf("archive %d: header %v blobs %v, want %v %v", i+2, h, b, h1, b1)
		}
	}
	for name, sum := range b1 {
		if name != "blobs/"+sum {
			t.Errorf("entry %s holds content hashing to %s", name, sum)
		}
	}
	if n := bytes.Count(r1, []byte(`"kind":"remote_make"`)); n != 2 {
		t.Errorf("the first archive has %d makes at other hubs, want the seed's 2", n)
	}
	if len(b1) != len(seed.Blobs) || bytes.Count(r1, []byte("\n")) < 20 {
		t.Fatalf("the first archive has %d blobs and %d records: the seed is not all there", len(b1), bytes.Count(r1, []byte("\n")))
	}

	// On the store at the end of the trip: sign in, use the token, verify the ledger,
	// read every blob.
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "third", "fabcommons.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	accounts, err := account.NewService(db.Accounts(), slog.New(slog.DiscardHandler), account.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := accounts.Authenticate(ctx, seed.Handle, seed.Password, "127.0.0.1"); err != nil || !u.Admin {
		t.Errorf("sign in as %s after the trip: %+v, %v; want the site admin", seed.Handle, u, err)
	}
	if u, err := accounts.TokenUser(ctx, seed.Token); err != nil || u.Handle != seed.Handle {
		t.Errorf("token after the trip: %+v, %v", u, err)
	}
	if v, err := storetest.NewLedger(db.Fabrication(), -600).Verify(ctx); err != nil || !v.OK {
		t.Errorf("ledger after the trip: %+v, %v", v, err)
	}
	blobs, err := localblob.Open(filepath.Join(dir, "third", "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range seed.Blobs {
		rc, err := blobs.Get(ctx, key, 0, -1)
		if err != nil {
			t.Fatalf("blob %s after the trip: %v", key, err)
		}
		d := storage.NewDigestReader(rc, 1<<20)
		_, err = io.Copy(io.Discard, d)
		rc.Close()
		if err != nil || d.Key() != key {
			t.Errorf("blob %s after the trip hashes to %s (%v)", key, d.Key(), err)
		}
	}
}

// TestImportRefusesBadArchives: each damaged archive gets a one-line error and leaves
// the new store without a record (SQLite loads in one transaction).
func TestImportRefusesBadArchives(t *testing.T) {
	dir := t.TempDir()
	seedEmbedded(t, filepath.Join(dir, "first"))
	good := filepath.Join(dir, "good.tar")
	if out, err := fabhubCLI(t, map[string]string{"FAB_DATA": filepath.Join(dir, "first")}, "export", good); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	_, records, _ := archiveParts(t, good)
	at := bytes.Index(data, records)
	tampered := bytes.Clone(data)
	blobAt := bytes.Index(tampered, []byte("solid base"))
	tampered[blobAt] = 'S'
	outOfOrder := bytes.Clone(data)
	copy(outOfOrder[at:], bytes.Replace(records[:len("{\"kind\":\"user\"")], []byte("user"), []byte("lab\""), 1))

	cases := []struct {
		name, want string
		archive    []byte
	}{
		{"empty file", "before its fabcommons-archive.json", nil},
		{"not a tar", "not a fabcommons archive", []byte(strings.Repeat("this is not an archive\n", 100))},
		{"cut in the records", "ends in the middle of", data[:at+len(records)/2]},
		{"cut after a record", "", data[:at+bytes.IndexByte(records, '\n')+1]},
		{"cut in the blobs", "ends in the middle of an entry", data[:blobAt]},
		{"a blob's byte changed", "does not match its sha256", tampered},
		{"records out of order", "", outOfOrder},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("bad-%d.tar", i))
			if err := os.WriteFile(path, c.archive, 0o600); err != nil {
				t.Fatal(err)
			}
			target := map[string]string{"FAB_DATA": filepath.Join(dir, fmt.Sprintf("target-%d", i))}
			_, err := fabhubCLI(t, target, "import", path)
			t.Logf("import: %v", err)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("import: %v, want one line with %q", err, c.want)
			}
			// The target holds no record: an export of it is empty.
			empty := filepath.Join(dir, fmt.Sprintf("empty-%d.tar", i))
			if out, err := fabhubCLI(t, target, "export", empty); err != nil {
				t.Fatalf("export the target: %v\n%s", err, out)
			}
			if _, records, _ := archiveParts(t, empty); len(records) != 0 {
				t.Fatalf("after a failed import the target holds:\n%s", records)
			}
		})
	}

	t.Run("into a store that is not empty", func(t *testing.T) {
		_, err := fabhubCLI(t, map[string]string{"FAB_DATA": filepath.Join(dir, "first")}, "import", good)
		if err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("import into the seeded store: %v, want a refusal", err)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"export"}, {"import"}, {"import", "a", "b"}, {"export", "-nope", "x"}} {
			if _, err := fabhubCLI(t, map[string]string{"FAB_DATA": dir}, args...); err == nil {
				t.Errorf("fabhub %v: no error", args)
			}
		}
		_, err := fabhubCLI(t, map[string]string{"FAB_DATA": filepath.Join(dir, "nowhere")}, "export", filepath.Join(dir, "x.tar"))
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("export of a data dir that does not exist: %v", err)
		}
	})
}

// TestPublicExportHoldsNoSecrets: -public leaves out password and token hashes,
// emails, leases, reports and the hidden design's files, and still imports.
func TestPublicExportHoldsNoSecrets(t *testing.T) {
	dir := t.TempDir()
	seed := seedEmbedded(t, filepath.Join(dir, "first"))
	full, public := filepath.Join(dir, "full.tar"), filepath.Join(dir, "public.tar")
	env := map[string]string{"FAB_DATA": filepath.Join(dir, "first")}
	for _, args := range [][]string{{"export", full}, {"export", "-public", public}} {
		if out, err := fabhubCLI(t, env, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	_, fullRecords, fullBlobs := archiveParts(t, full)
	_, records, blobs := archiveParts(t, public)
	secrets := []string{"$argon2id$", account.HashSecret(seed.Token), "@example.org", "leasehash", "missing attribution", account.HashSecret("machine"),
		account.HashSecret("join"), "whsec_seed", "hooks.example.org", "seedprivate", "PRIVATE KEY", "federation_"}
	for _, s := range secrets {
		if !bytes.Contains(fullRecords, []byte(s)) {
			t.Errorf("the full archive lacks %q: the check below proves nothing", s)
		}
		if bytes.Contains(records, []byte(s)) {
			t.Errorf("the public archive holds %q", s)
		}
	}
	if n := bytes.Count(records, []byte(`"kind":"remote_make"`)); n != 1 {
		t.Errorf("the public archive has %d makes at other hubs, want 1 (not the hidden design's)", n)
	}
	hiddenBlob := "blobs/" + seed.Blobs[3] // only the hidden design has it
	if _, ok := fullBlobs[hiddenBlob]; !ok {
		t.Fatalf("the full archive lacks the hidden design's file")
	}
	if _, ok := blobs[hiddenBlob]; ok || len(blobs) != len(fullBlobs)-1 {
		t.Errorf("the public archive has blobs %v: want all but the hidden design's", blobs)
	}
	if out, err := fabhubCLI(t, map[string]string{"FAB_DATA": filepath.Join(dir, "second")}, "import", public); err != nil {
		t.Fatalf("import the public archive: %v\n%s", err, out)
	}
}

// TestExportIsOneSnapshot exports while orders of two jobs each keep arriving: every
// archive holds both jobs of each order it holds, and no job without its order.
func TestExportIsOneSnapshot(t *testing.T) {
	dir := t.TempDir()
	seedEmbedded(t, filepath.Join(dir, "first"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "first", "fabcommons.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lab, err := db.Fabrication().LabBySlug(ctx, "town")
	if err != nil {
		t.Fatal(err)
	}
	addOrder := func(i int) error {
		o := fabrication.Order{ID: fmt.Sprintf("load-%06d", i), LabID: lab.ID, RequesterID: "u-bob", Requester: "bob", CreatedAt: time.Now().UTC()}
		var jobs []fabrication.Job
		for c := range 2 {
			jobs = append(jobs, fabrication.Job{ID: fmt.Sprintf("load-%06d-%d", i, c), OrderID: o.ID, LabID: lab.ID, RequesterID: "u-bob",
				State: fabrication.JobQueued, Copy: c + 1, EnqueuedAt: o.CreatedAt, CreatedAt: o.CreatedAt, UpdatedAt: o.CreatedAt})
		}
		return db.Fabrication().CreateOrder(ctx, o, jobs)
	}
	for i := range 2000 { // enough that reading the orders and then the jobs takes a while
		if err := addOrder(i); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan int)
	go func() {
		i := 2000
		for ctx.Err() == nil {
			if err := addOrder(i); err != nil && ctx.Err() == nil {
				t.Error(err)
				break
			}
			i++
		}
		done <- i
	}()
	for n := range 5 {
		path := filepath.Join(dir, fmt.Sprintf("during-%d.tar", n))
		if out, err := fabhubCLI(t, map[string]string{"FAB_DATA": filepath.Join(dir, "first")}, "export", path); err != nil {
			t.Fatalf("export: %v\n%s", err, out)
		}
		_, records, _ := archiveParts(t, path)
		orders, jobs := map[string]int{}, map[string]int{}
		for _, line := range bytes.Split(bytes.TrimSpace(records), []byte("\n")) {
			var rec struct {
				Kind string `json:"kind"`
				Data struct {
					ID      json.RawMessage `json:"id"` // a ledger entry's is a number
					OrderID string          `json:"order_id"`
				} `json:"data"`
			}
			if err := json.Unmarshal(line, &rec); err != nil {
				t.Fatal(err)
			}
			switch rec.Kind {
			case "order":
				orders[strings.Trim(string(rec.Data.ID), `"`)]++
			case "job":
				jobs[rec.Data.OrderID]++
			}
		}
		for id := range orders {
			if jobs[id] != 2 && id != "o1" {
				t.Errorf("export %d holds order %s with %d of its 2 jobs", n, id, jobs[id])
			}
		}
		for id := range jobs {
			if orders[id] == 0 {
				t.Errorf("export %d holds jobs of order %s but not the order", n, id)
			}
		}
	}
	cancel()
	t.Logf("orders written during the exports: %d", <-done-2000)
}
