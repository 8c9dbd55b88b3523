package storetest_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/storage/sqlite"
)

// TestMain runs the child of TestSQLiteCrashMidWrite when FAB_SQLITE_CRASH_HELPER names
// a database: it creates users as fast as it can and prints how many are committed,
// until it is killed.
func TestMain(m *testing.M) {
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
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "FAB_SQLITE_CRASH_HELPER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	committed := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			committed = n
		}
		if committed >= 200 {
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
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
