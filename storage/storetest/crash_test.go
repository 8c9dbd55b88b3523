package storetest_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage/externaltest"
	"github.com/fabcommons/fabcommons/storage/mongo"
	"github.com/fabcommons/fabcommons/storage/sqlite"
	"github.com/fabcommons/fabcommons/storage/storetest"
)

// TestMain runs the child of TestSQLiteCrashMidWrite when FAB_SQLITE_CRASH_HELPER names
// a database: it creates users as fast as it can and prints how many are committed,
// until it is killed.
func TestMain(m *testing.M) {
	if spec := os.Getenv("FAB_LEDGER_CRASH_HELPER"); spec != "" {
		settleUntilKilled(spec)
		return
	}
	path := os.Getenv("FAB_SQLITE_CRASH_HELPER")
	if path == "" {
		os.Exit(m.Run())
	}
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 1; ; i++ {
		u := account.User{ID: fmt.Sprint("u", i), Handle: fmt.Sprint("maker", i), Email: "m@example.org", PasswordHash: "x", CreatedAt: time.Now()}
		if _, err := db.Accounts().CreateUser(context.Background(), u); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(i)
	}
}

func TestSQLiteCrashMidWrite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fab.db")
	committed := killAfter(t, "FAB_SQLITE_CRASH_HELPER="+path, 200)
	if committed < 200 {
		t.Fatalf("the child committed %d users before dying, want 200", committed)
	}
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	// Every user the child reported committed is there.
	for i := 1; i <= committed; i++ {
		if _, err := db.Accounts().UserByHandle(ctx, fmt.Sprint("maker", i)); err != nil {
			t.Fatalf("user %d of %d committed before the crash: %v", i, committed, err)
		}
	}
}

// openLedgerStore opens the store a crash helper spec names: "sqlite <path>" or
// "mongodb <uri> <database>".
func openLedgerStore(spec string) (fabrication.Store, func(), error) {
	f := strings.Fields(spec)
	ctx := context.Background()
	switch {
	case len(f) == 2 && f[0] == "sqlite":
		db, err := sqlite.Open(ctx, f[1])
		if err != nil {
			return nil, nil, err
		}
		return db.Fabrication(), func() { db.Close() }, nil
	case len(f) == 3 && f[0] == "mongodb":
		db, err := mongo.OpenDatabase(ctx, f[1], f[2])
		if err != nil {
			return nil, nil, err
		}
		return db.Fabrication(), func() { db.Close() }, nil
	}
	return nil, nil, fmt.Errorf("bad crash helper spec %q", spec)
}

// settleUntilKilled is the child of TestLedgerCrashMidSettlement: it holds and settles
// jobs as fast as it can, printing each job it settled, until it is killed.
func settleUntilKilled(spec string) {
	store, closeStore, err := openLedgerStore(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer closeStore()
	l := storetest.NewLedger(store, -1_000_000)
	ctx := context.Background()
	for i := 1; ; i++ {
		job := fmt.Sprint("job-", i)
		if err := l.Hold(ctx, "user:ada", []fabrication.HoldLine{{Job: job, Minutes: 10}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if _, err := l.Close(ctx, fabrication.Settlement{Job: job, Requester: "user:ada", Lab: "lab:town", Made: 3, Charge: true}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(i)
	}
}

// TestLedgerCrashMidSettlement SIGKILLs a process that is settling jobs, on each
// backend, and checks what it left: an intact chain whose balances sum to zero, every
// job it reported settled settled once, and no entry half made. Settling everything
// again afterwards (as the hub's sweep does) adds each missing settlement once.
func TestLedgerCrashMidSettlement(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		crashMidSettlement(t, "sqlite "+filepath.Join(t.TempDir(), "fab.db"))
	})
	t.Run("mongodb", func(t *testing.T) {
		t.Parallel()
		uri := externaltest.NeedMongoDB(t)
		name := externaltest.UniqueName("ledgercrash_")
		t.Cleanup(func() {
			if db, err := mongo.OpenDatabase(context.Background(), uri, name); err == nil {
				db.Drop(context.Background())
				db.Close()
			}
		})
		crashMidSettlement(t, "mongodb "+uri+" "+name)
	})
}

func crashMidSettlement(t *testing.T, spec string) {
	settled := killAfter(t, "FAB_LEDGER_CRASH_HELPER="+spec, 40)
	if settled < 40 {
		t.Fatalf("the child settled %d jobs before dying, want 40", settled)
	}
	store, closeStore, err := openLedgerStore(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	ctx := context.Background()
	l := storetest.NewLedger(store, -1_000_000)
	v, err := l.Verify(ctx)
	if err != nil || !v.OK {
		t.Fatalf("after SIGKILL: %+v %v", v, err)
	}
	for i := 1; i <= settled; i++ {
		if e, err := store.LedgerClosing(ctx, fmt.Sprint("job:job-", i)); err != nil || e.Kind != fabrication.KindSettle || e.Minutes != 3 {
			t.Fatalf("job %d, reported settled: %+v %v", i, e, err)
		}
	}
	// Settle every job again, as the sweep would, the one in flight included.
	for i := 1; i <= settled+1; i++ {
		if _, err := l.Close(ctx, fabrication.Settlement{Job: fmt.Sprint("job-", i), Requester: "user:ada", Lab: "lab:town", Made: 3, Charge: true}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := l.Account(ctx, "user:ada")
	if err != nil {
		t.Fatal(err)
	}
	moves, err := l.Transfers(ctx, "user:ada", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if a.Held != 0 || a.Balance != -3*int64(len(moves)) || len(moves) < settled || len(moves) > settled+1 {
		t.Fatalf("after settling again: %+v with %d settlements for %d jobs reported", a, len(moves), settled)
	}
	if v, err := l.Verify(ctx); err != nil || !v.OK {
		t.Fatalf("verify: %+v %v", v, err)
	}
}

// killAfter runs this test binary as a crash helper (env chooses which), reads the
// count it prints after each write it committed, and SIGKILLs it, mid-write, once it
// reported n. It returns the last count read.
func killAfter(t *testing.T, env string, n int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	last := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, err := strconv.Atoi(sc.Text()); err == nil {
			last = v
		}
		if last >= n {
			break
		}
	}
	cmd.Process.Kill() // SIGKILL, in the middle of the next write
	cmd.Wait()
	return last
}
