// Package storetest is the conformance suite every document-store backend passes: one
// Exercise function per seam, each taking a constructor for an empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/storage"
)

// t0 is a fixed instant at millisecond precision (what every backend keeps).
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newUser(handle string) account.User {
	return account.User{ID: "u-" + handle, Handle: handle, Email: handle + "@example.org", PasswordHash: "$argon2id$x", CreatedAt: t0}
}

// ExerciseAccounts runs the account.Store suite.
func ExerciseAccounts(t *testing.T, newStore func(t *testing.T) account.Store) {
	ctx := context.Background()

	t.Run("FirstUserIsAdmin", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		first, err := s.CreateUser(ctx, newUser("ada"))
		if err != nil {
			t.Fatal(err)
		}
		second, err := s.CreateUser(ctx, newUser("grace"))
		if err != nil {
			t.Fatal(err)
		}
		if !first.Admin || second.Admin {
			t.Fatalf("got admin %v, %v; want true, false", first.Admin, second.Admin)
		}
		got, err := s.UserByHandle(ctx, "ada")
		if err != nil || !got.Admin || got.ID != first.ID || got.Email != "ada@example.org" || !got.CreatedAt.Equal(t0) {
			t.Fatalf("UserByHandle: got %+v, %v", got, err)
		}
		got, err = s.UserByID(ctx, second.ID)
		if err != nil || got.Handle != "grace" || got.Admin {
			t.Fatalf("UserByID: got %+v, %v", got, err)
		}
	})

	t.Run("ConcurrentSignupsOneAdmin", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var wg sync.WaitGroup
		admins := make(chan bool, 10)
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u, err := s.CreateUser(ctx, newUser(fmt.Sprintf("maker%d", i)))
				if err != nil {
					t.Error(err)
					return
				}
				admins <- u.Admin
			}()
		}
		wg.Wait()
		close(admins)
		n := 0
		for a := range admins {
			if a {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("got %d admins among 10 concurrent first sign-ups, want 1", n)
		}
	})

	t.Run("HandleRace", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		var wg sync.WaitGroup
		results := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := newUser("linus")
				u.ID = fmt.Sprintf("u-linus-%d", i)
				_, err := s.CreateUser(ctx, u)
				results <- err
			}()
		}
		wg.Wait()
		close(results)
		ok, conflicts := 0, 0
		for err := range results {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, storage.ErrConflict):
				conflicts++
			default:
				t.Errorf("got %v, want nil or ErrConflict", err)
			}
		}
		if ok != 1 || conflicts != 7 {
			t.Fatalf("got %d created and %d conflicts, want 1 and 7", ok, conflicts)
		}
	})

	t.Run("MissingUser", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		if _, err := s.UserByHandle(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByHandle: got %v, want ErrNotFound", err)
		}
		if _, err := s.UserByID(ctx, "u-nobody"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("UserByID: got %v, want ErrNotFound", err)
		}
	})

	t.Run("Tokens", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		u, err := s.CreateUser(ctx, newUser("ada"))
		if err != nil {
			t.Fatal(err)
		}
		other, err := s.CreateUser(ctx, newUser("grace"))
		if err != nil {
			t.Fatal(err)
		}
		for i, name := range []string{"ci", "printer script"} {
			tok := account.Token{ID: fmt.Sprintf("t%d", i), UserID: u.ID, Name: name, Prefix: "fab_p_abcd", Hash: fmt.Sprintf("hash%d", i), CreatedAt: t0.Add(time.Duration(i) * time.Second)}
			if err := s.CreateToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		dup := account.Token{ID: "t9", UserID: u.ID, Name: "dup", Prefix: "x", Hash: "hash0", CreatedAt: t0}
		if err := s.CreateToken(ctx, dup); !errors.Is(err, storage.ErrConflict) {
			t.Errorf("duplicate hash: got %v, want ErrConflict", err)
		}
		got, err := s.TokenByHash(ctx, "hash1")
		if err != nil || got.ID != "t1" || got.UserID != u.ID || got.Name != "printer script" || got.LastUsedAt != nil {
			t.Fatalf("TokenByHash: got %+v, %v", got, err)
		}
		used := t0.Add(time.Hour)
		if err := s.TouchToken(ctx, "t1", used); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListTokens(ctx, u.ID)
		if err != nil || len(list) != 2 || list[0].ID != "t0" || list[1].LastUsedAt == nil || !list[1].LastUsedAt.Equal(used) {
			t.Fatalf("ListTokens: got %+v, %v", list, err)
		}
		if err := s.RevokeToken(ctx, other.ID, "t0"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("revoking another user's token: got %v, want ErrNotFound", err)
		}
		if err := s.RevokeToken(ctx, u.ID, "t0"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TokenByHash(ctx, "hash0"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("revoked token: got %v, want ErrNotFound", err)
		}
		if list, _ := s.ListTokens(ctx, other.ID); len(list) != 0 {
			t.Errorf("other user's tokens: got %d, want 0", len(list))
		}
	})

	t.Run("Sessions", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		u, err := s.CreateUser(ctx, newUser("ada"))
		if err != nil {
			t.Fatal(err)
		}
		live := account.Session{Hash: "live", UserID: u.ID, CSRF: "csrf1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		old := account.Session{Hash: "old", UserID: u.ID, CSRF: "csrf2", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
		for _, sess := range []account.Session{live, old} {
			if err := s.CreateSession(ctx, sess); err != nil {
				t.Fatal(err)
			}
		}
		now := t0.Add(10 * time.Minute)
		got, err := s.SessionByHash(ctx, "live", now)
		if err != nil || got != live {
			t.Fatalf("SessionByHash: got %+v, %v; want %+v", got, err, live)
		}
		if _, err := s.SessionByHash(ctx, "old", now); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("expired session: got %v, want ErrNotFound", err)
		}
		if n, err := s.DeleteExpiredSessions(ctx, now); err != nil || n != 1 {
			t.Errorf("DeleteExpiredSessions: got %d, %v; want 1", n, err)
		}
		if err := s.DeleteSession(ctx, "live"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionByHash(ctx, "live", now); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("deleted session: got %v, want ErrNotFound", err)
		}
	})

	t.Run("SignOutEverywhereAndDisable", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ada, err := s.CreateUser(ctx, newUser("ada"))
		if err != nil {
			t.Fatal(err)
		}
		bob, err := s.CreateUser(ctx, newUser("bob"))
		if err != nil {
			t.Fatal(err)
		}
		for i, uid := range []string{ada.ID, ada.ID, bob.ID} {
			if err := s.CreateSession(ctx, account.Session{Hash: fmt.Sprint("s", i), UserID: uid, CSRF: "c", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.DeleteUserSessions(ctx, ada.ID); err != nil || n != 2 {
			t.Fatalf("DeleteUserSessions: got %d, %v; want 2", n, err)
		}
		if _, err := s.SessionByHash(ctx, "s2", t0); err != nil {
			t.Fatalf("bob's session: got %v, want it kept", err)
		}
		if err := s.SetDisabled(ctx, bob.ID, true); err != nil {
			t.Fatal(err)
		}
		if u, err := s.UserByHandle(ctx, "bob"); err != nil || !u.Disabled {
			t.Fatalf("after SetDisabled: got %+v, %v", u, err)
		}
		if u, _ := s.UserByID(ctx, ada.ID); u.Disabled {
			t.Fatal("disabling bob disabled ada")
		}
		if err := s.SetDisabled(ctx, bob.ID, false); err != nil {
			t.Fatal(err)
		}
		if u, _ := s.UserByID(ctx, bob.ID); u.Disabled {
			t.Fatal("bob is still disabled after SetDisabled(false)")
		}
		if err := s.SetDisabled(ctx, "nobody", true); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("SetDisabled of nobody: got %v, want ErrNotFound", err)
		}
	})
}

// ExerciseLeases runs the storage.Leases suite.
func ExerciseLeases(t *testing.T, newStore func(t *testing.T) storage.Leases) {
	ctx := context.Background()

	t.Run("AcquireRenewExpire", func(t *testing.T) {
		t.Parallel()
		l := newStore(t)
		ttl := time.Minute
		steps := []struct {
			holder string
			at     time.Duration
			want   bool
		}{
			{"hub-a", 0, true},
			{"hub-b", 30 * time.Second, false}, // a holds it
			{"hub-a", 50 * time.Second, true},  // renewal, now until 110 s
			{"hub-b", 100 * time.Second, false},
			{"hub-b", 111 * time.Second, true}, // expired: b takes over
			{"hub-a", 112 * time.Second, false},
		}
		for _, s := range steps {
			got, err := l.AcquireLease(ctx, "expire-leases", s.holder, t0.Add(s.at), ttl)
			if err != nil {
				t.Fatal(err)
			}
			if got != s.want {
				t.Fatalf("%s at %v: got %v, want %v", s.holder, s.at, got, s.want)
			}
		}
		if ok, _ := l.AcquireLease(ctx, "other-task", "hub-a", t0.Add(112*time.Second), ttl); !ok {
			t.Fatal("a lease of another name: got false, want true")
		}
	})

	t.Run("Release", func(t *testing.T) {
		t.Parallel()
		l := newStore(t)
		if ok, err := l.AcquireLease(ctx, "gc", "hub-a", t0, time.Hour); !ok || err != nil {
			t.Fatalf("got %v, %v", ok, err)
		}
		if err := l.ReleaseLease(ctx, "gc", "hub-b"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := l.AcquireLease(ctx, "gc", "hub-b", t0, time.Hour); ok {
			t.Fatal("a release by a non-holder freed the lease")
		}
		if err := l.ReleaseLease(ctx, "gc", "hub-a"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := l.AcquireLease(ctx, "gc", "hub-b", t0, time.Hour); !ok {
			t.Fatal("after release: got false, want true")
		}
	})

	t.Run("ConcurrentAcquireOneWinner", func(t *testing.T) {
		t.Parallel()
		l := newStore(t)
		race := func(at time.Time) {
			t.Helper()
			var wg sync.WaitGroup
			wins := make(chan string, 10)
			for i := range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					holder := fmt.Sprintf("hub-%d", i)
					ok, err := l.AcquireLease(ctx, "counters", holder, at, time.Minute)
					if err != nil {
						t.Error(err)
					}
					if ok {
						wins <- holder
					}
				}()
			}
			wg.Wait()
			close(wins)
			if n := len(wins); n != 1 {
				t.Fatalf("at %v: got %d holders, want 1", at, n)
			}
		}
		race(t0)                      // a new lease
		race(t0.Add(2 * time.Minute)) // taking over an expired one
	})
}

// ExerciseQuotas runs the quota conformance cases against a backend.
func ExerciseQuotas(t *testing.T, newStore func(t *testing.T) storage.Quotas) {
	ctx := context.Background()
	day := 24 * time.Hour

	t.Run("LimitAndWindow", func(t *testing.T) {
		t.Parallel()
		q := newStore(t)
		steps := []struct {
			amount int64
			at     time.Duration
			ok     bool
			used   int64
		}{
			{3, 0, true, 3},
			{6, time.Hour, true, 9},
			{2, 2 * time.Hour, false, 9}, // 11 > 10
			{1, 3 * time.Hour, true, 10},
			{1, 4 * time.Hour, false, 10},
			{11, 4 * time.Hour, false, 10}, // more than the whole limit
			{5, day, true, 5},              // the next window starts from zero
		}
		for i, s := range steps {
			ok, used, err := q.Use(ctx, "designs/u1", s.amount, 10, t0.Truncate(day).Add(s.at), day)
			if err != nil || ok != s.ok || (s.used != 0 && used != s.used) {
				t.Fatalf("step %d: got %v, %d, %v; want %v, %d", i, ok, used, err, s.ok, s.used)
			}
		}
		if ok, _, err := q.Use(ctx, "designs/u2", 10, 10, t0, day); err != nil || !ok {
			t.Fatalf("another key: got %v, %v; want its own counter", ok, err)
		}
	})

	t.Run("ConcurrentUseNeverOvershoots", func(t *testing.T) {
		t.Parallel()
		q := newStore(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		granted := 0
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, _, err := q.Use(ctx, "orders/u1", 1, 10, t0, day)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					granted++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if granted != 10 {
			t.Fatalf("granted %d of 20 against a limit of 10, want exactly 10", granted)
		}
	})
}
