package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

// TestBackupWhileWriting copies a database while a writer keeps committing: the copy
// opens, passes an integrity check, and holds every user committed before the backup
// began and only whole users after.
func TestBackupWhileWriting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "live.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	users := db.Accounts()
	create := func(i int) error {
		_, err := users.CreateUser(ctx, account.User{ID: fmt.Sprint("u", i), Handle: fmt.Sprint("maker", i),
			Email: "m@example.org", PasswordHash: "x", CreatedAt: time.Now()})
		return err
	}
	for i := 1; i <= 100; i++ {
		if err := create(i); err != nil {
			t.Fatal(err)
		}
	}
	var committed atomic.Int64
	committed.Store(100)
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for i := 101; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if err := create(i); err != nil {
				writerDone <- err
				return
			}
			committed.Store(int64(i))
		}
	}()
	before := committed.Load()
	copyPath := filepath.Join(dir, "copy.db")
	err = sqlite.Backup(ctx, filepath.Join(dir, "live.db"), copyPath)
	close(stop)
	if werr := <-writerDone; werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	if err != nil {
		t.Fatal(err)
	}

	cp, err := sqlite.Open(ctx, copyPath)
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	defer cp.Close()
	if err := cp.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= before; i++ {
		if _, err := cp.Accounts().UserByHandle(ctx, fmt.Sprint("maker", i)); err != nil {
			t.Fatalf("user %d, committed before the backup began: %v", i, err)
		}
	}
	// The copy is one moment: users are numbered in commit order, so no gap.
	last := before
	for ; ; last++ {
		if _, err := cp.Accounts().UserByHandle(ctx, fmt.Sprint("maker", last+1)); err != nil {
			break
		}
	}
	if _, err := cp.Accounts().UserByHandle(ctx, fmt.Sprint("maker", last+2)); err == nil {
		t.Fatalf("the copy has user %d but not %d: not one moment", last+2, last+1)
	}
	t.Logf("%d users before the backup began, %d in the copy, %d when the writer stopped", before, last, committed.Load())
}

func TestBackupRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	db, err := sqlite.Open(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	taken := filepath.Join(dir, "taken.db")
	os.WriteFile(taken, []byte("someone's file"), 0o600)
	for _, tc := range []struct {
		name, src, dest, want string
	}{
		{"no database", filepath.Join(dir, "missing.db"), filepath.Join(dir, "a.db"), "no such file"},
		{"dest exists", live, taken, "file exists"},
		{"dest dir missing", live, filepath.Join(dir, "nowhere", "b.db"), "no such file"},
	} {
		err := sqlite.Backup(ctx, tc.src, tc.dest)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(taken); string(b) != "someone's file" {
		t.Errorf("an existing dest was changed: got %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); err == nil {
		t.Error("backing up a missing database created it")
	}
	// A database the hub closed (no -wal or -shm left) still backs up.
	if err := sqlite.Backup(ctx, live, filepath.Join(dir, "closed-copy.db")); err != nil {
		t.Fatalf("backup of a closed database: %v", err)
	}
}
