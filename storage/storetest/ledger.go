package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
)

// anyUser resolves every handle: the ledger checks that accounts exist.
type anyUser struct{}

func (anyUser) UserIDByHandle(_ context.Context, handle string) (string, error) {
	return "u-" + handle, nil
}

// NewLedger is the ledger service over store, as a hub builds it, with every account
// floor at floor.
func NewLedger(store fabrication.Store, floor int64) *fabrication.Ledger {
	return fabrication.New(store, nil, anyUser{}, fabrication.NewFeed(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)),
		fabrication.Options{CreditFloor: &floor}).Ledger
}

// ExerciseLedger runs the ledger over a backend. open returns a store and a way to
// open a second handle on the same data: a second hub sharing it.
func ExerciseLedger(t *testing.T, open func(t *testing.T) (fabrication.Store, func() fabrication.Store)) {
	ctx := context.Background()
	ada := fabrication.Actor{ID: "u-ada", Handle: "ada"}
	admin := fabrication.Actor{ID: "u-root", Handle: "root", Admin: true}

	t.Run("LedgerMovesHoldsAndVerify", func(t *testing.T) {
		t.Parallel()
		s, _ := open(t)
		lab := sampleLab("town")
		if err := s.CreateLab(ctx, lab, fabrication.Member{LabID: lab.ID, UserID: "u-grace", Handle: "grace", Role: fabrication.RoleOwner}); err != nil {
			t.Fatal(err)
		}
		l := NewLedger(s, -600)
		grace := fabrication.Actor{ID: "u-grace", Handle: "grace"}
		// A lab's floor is zero: it has nothing to grant until a site admin trusts it.
		var short *fabrication.InsufficientCredit
		if _, _, err := l.Transfer(ctx, grace, fabrication.TransferRequest{From: "lab:town", To: "user:ada", Minutes: 100}, ""); !errors.As(err, &short) {
			t.Fatalf("a grant from a new lab: %v", err)
		}
		if _, err := l.SetFloor(ctx, admin, "lab:town", -1000); err != nil {
			t.Fatal(err)
		}
		// A site admin may not spend the lab's minutes; its owner grants 100 to ada.
		if _, _, err := l.Transfer(ctx, admin, fabrication.TransferRequest{From: "lab:town", To: "user:root", Minutes: 100}, ""); !errors.Is(err, storage.ErrForbidden) {
			t.Fatalf("an admin granting from a lab: %v", err)
		}
		g, created, err := l.Transfer(ctx, grace, fabrication.TransferRequest{From: "lab:town", To: "user:ada", Minutes: 100, Memo: "welcome"}, "")
		if err != nil || !created || g.Kind != fabrication.KindGrant || g.Seq != 2 {
			t.Fatalf("grant: %+v %v %v", g, created, err)
		}
		// A person passes on only minutes they have, never their floor's trust.
		if _, _, err := l.Transfer(ctx, ada, fabrication.TransferRequest{From: "user:ada", To: "user:bob", Minutes: 101}, ""); !errors.As(err, &short) || short.Floor != 0 {
			t.Fatalf("ada passing on more than she has: %v", err)
		}
		// Ada may not move the lab's minutes, nor anyone else's.
		for _, from := range []string{"lab:town", "user:grace"} {
			if _, _, err := l.Transfer(ctx, ada, fabrication.TransferRequest{From: from, To: "user:ada", Minutes: 1}, ""); !errors.Is(err, storage.ErrForbidden) {
				t.Fatalf("ada moving %s: got %v, want ErrForbidden", from, err)
			}
		}
		if err := l.Hold(ctx, "user:ada", []fabrication.HoldLine{{Job: "j1", Minutes: 300}, {Job: "j2", Minutes: 300}}); err != nil {
			t.Fatal(err)
		}
		// 100 + 600 of room, 600 held: 100 left.
		if err := l.Hold(ctx, "user:ada", []fabrication.HoldLine{{Job: "j3", Minutes: 101}}); !errors.As(err, &short) || short.Need != 101 {
			t.Fatalf("a hold over the floor: got %v", err)
		}
		// j1 printed 40 minutes: paid and released in one entry; j2 failed: released.
		e, err := l.Close(ctx, fabrication.Settlement{Job: "j1", Requester: "user:ada", Lab: "lab:town", Made: 40, Charge: true})
		if err != nil || e.Kind != fabrication.KindSettle || e.Minutes != 40 {
			t.Fatalf("settle: %+v %v", e, err)
		}
		if e, err := l.Close(ctx, fabrication.Settlement{Job: "j2", Requester: "user:ada", Lab: "lab:town", Charge: true}); err != nil || e.Kind != fabrication.KindRelease {
			t.Fatalf("release: %+v %v", e, err)
		}
		a, err := l.Account(ctx, "user:ada")
		if err != nil {
			t.Fatal(err)
		}
		if a.Balance != 60 || a.Held != 0 || a.Available != 60 || a.Floor != -600 || a.Used != 40 || a.Given != 100 {
			t.Fatalf("ada: %+v", a)
		}
		town, _ := l.Account(ctx, "lab:town")
		if town.Balance != -60 || town.Given != 40 {
			t.Fatalf("town: %+v", town)
		}
		// A site admin reverses the grant, once; the reversal is refused to others.
		if _, _, err := l.Reverse(ctx, ada, g.Seq, ""); !errors.Is(err, storage.ErrForbidden) {
			t.Fatalf("reverse by ada: %v", err)
		}
		r1, created, err := l.Reverse(ctx, admin, g.Seq, "granted twice")
		if err != nil || !created || r1.From != "user:ada" || r1.To != "lab:town" || r1.Minutes != 100 || r1.Reverses != g.Seq {
			t.Fatalf("reverse: %+v %v %v", r1, created, err)
		}
		if r2, created, err := l.Reverse(ctx, admin, g.Seq, "again"); err != nil || created || r2.Seq != r1.Seq {
			t.Fatalf("second reverse: %+v %v %v", r2, created, err)
		}
		// The admin lowers ada's floor; the moves list shows moves only, newest first.
		if _, err := l.SetFloor(ctx, admin, "user:ada", -50); err != nil {
			t.Fatal(err)
		}
		if a, _ := l.Account(ctx, "user:ada"); a.Balance != -40 || a.Floor != -50 {
			t.Fatalf("ada after the reversal: %+v", a)
		}
		moves, err := l.Transfers(ctx, "user:ada", 0, 10)
		if err != nil || len(moves) != 3 || moves[0].Seq != r1.Seq || moves[2].Seq != g.Seq {
			t.Fatalf("moves: %+v %v", moves, err)
		}
		if page, _ := l.Transfers(ctx, "user:ada", moves[0].Seq, 1); len(page) != 1 || page[0].Seq != moves[1].Seq {
			t.Fatalf("second page: %+v", page)
		}
		// Bad memos and an absurd hold are refused.
		for _, memo := range []string{"line\nbreak", "evil\u202etxt"} {
			if _, _, err := l.Transfer(ctx, ada, fabrication.TransferRequest{From: "user:ada", To: "user:bob", Minutes: 1, Memo: memo}, ""); !errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("memo %q: %v", memo, err)
			}
		}
		if err := l.Hold(ctx, "user:ada", []fabrication.HoldLine{{Job: "big", Minutes: 1 << 62}, {Job: "big2", Minutes: 1 << 62}}); !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("holds that would overflow: %v", err)
		}
		v, err := l.Verify(ctx)
		if err != nil || !v.OK || v.Sum != 0 || v.Checked != 7 || v.Accounts != 2 {
			t.Fatalf("verify: %+v %v", v, err)
		}
	})

	t.Run("LedgerFloorsUnderConcurrency", func(t *testing.T) {
		t.Parallel()
		s, second := open(t)
		hubs := []*fabrication.Ledger{NewLedger(s, -600), NewLedger(second(), -600)}
		bea := fabrication.Actor{ID: "u-bea", Handle: "bea"}
		give(t, s, hubs[0], "user:bea", 300)
		// 50 spenders on two hubs at once: 25 want 25 of ada's 600 minutes of trust as
		// holds (24 fit), 25 want to pass on 25 of bea's 300 minutes (12 fit).
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, short := map[string]int{}, 0
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l := hubs[i%2]
				var err error
				kind := "hold"
				if i%2 == 0 {
					kind = "transfer"
					_, _, err = l.Transfer(ctx, bea, fabrication.TransferRequest{From: "user:bea", To: fmt.Sprintf("user:s%d", i), Minutes: 25}, "")
				} else {
					err = l.Hold(ctx, "user:ada", []fabrication.HoldLine{{Job: fmt.Sprintf("job-%d", i), Minutes: 25}})
				}
				mu.Lock()
				defer mu.Unlock()
				var ic *fabrication.InsufficientCredit
				switch {
				case err == nil:
					ok[kind]++
				case errors.As(err, &ic):
					short++
				default:
					t.Errorf("spender %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if ok["hold"] != 24 || ok["transfer"] != 12 || short != 14 {
			t.Fatalf("%v fit and %d were refused; want 24 holds, 12 transfers and 14 refusals", ok, short)
		}
		if a, err := hubs[1].Account(ctx, "user:ada"); err != nil || a.Available-a.Floor != 0 {
			t.Fatalf("ada: %+v %v", a, err)
		}
		if a, err := hubs[1].Account(ctx, "user:bea"); err != nil || a.Balance != 0 {
			t.Fatalf("bea: %+v %v", a, err)
		}
		if v, err := hubs[0].Verify(ctx); err != nil || !v.OK || v.Checked != 2+24+12 {
			t.Fatalf("verify: %+v %v", v, err)
		}
	})

	t.Run("AppendLedgersStopsAtTheFirstRefused", func(t *testing.T) {
		t.Parallel()
		s, _ := open(t)
		entry := func(seq int64, closes string) fabrication.LedgerEntry {
			return fabrication.LedgerEntry{Seq: seq, Kind: fabrication.KindSettle, From: "user:ada", To: "lab:town", Made: 1,
				Job: closes, Holds: []fabrication.HoldLine{}, Closes: "job:" + closes, CreatedAt: time.Unix(int64(seq), 0).UTC()}
		}
		if n, err := s.AppendLedgers(ctx, []fabrication.LedgerEntry{entry(1, "a"), entry(2, "b")}); n != 2 || err != nil {
			t.Fatalf("two entries: got %d written, %v; want 2, nil", n, err)
		}
		// The third closes what the first closed: the second of this batch goes in, the
		// third and fourth do not.
		n, err := s.AppendLedgers(ctx, []fabrication.LedgerEntry{entry(3, "c"), entry(4, "a"), entry(5, "d")})
		if n != 1 || !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("a batch with a closed job: got %d written, %v; want 1, a conflict", n, err)
		}
		// A taken seq is refused the same way.
		if n, err := s.AppendLedgers(ctx, []fabrication.LedgerEntry{entry(3, "e")}); n != 0 || !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("a taken seq: got %d written, %v; want 0, a conflict", n, err)
		}
		all, err := s.LedgerEntries(ctx, "", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range all {
			got = append(got, fmt.Sprint(e.Seq, e.Closes))
		}
		if fmt.Sprint(got) != "[1job:a 2job:b 3job:c]" {
			t.Fatalf("stored: got %v, want [1job:a 2job:b 3job:c]", got)
		}
	})

	t.Run("LedgerRecordsInBatches", func(t *testing.T) {
		t.Parallel()
		s, second := open(t)
		hubs := []*fabrication.Ledger{NewLedger(s, -600), NewLedger(second(), -600)}
		// 300 jobs made at a free lab, each reported on both hubs: recorded once each,
		// in batches that race for the chain.
		for i := range 300 {
			for _, l := range hubs {
				l.Record(fabrication.Settlement{Job: fmt.Sprint("free-", i), Requester: "user:ada", Lab: "lab:town", Made: 2})
			}
		}
		deadline := time.Now().Add(time.Minute)
		for {
			a, err := hubs[0].Account(ctx, "user:ada")
			if err != nil {
				t.Fatal(err)
			}
			if a.Used == 600 {
				break
			}
			if a.Used > 600 || time.Now().After(deadline) {
				t.Fatalf("ada used %d minutes, want 600 (300 jobs of 2)", a.Used)
			}
			time.Sleep(50 * time.Millisecond)
		}
		v, err := hubs[1].Verify(ctx)
		if err != nil || !v.OK || v.Checked != 300 || v.Sum != 0 {
			t.Fatalf("verify: %+v %v", v, err)
		}
	})

	t.Run("LedgerIdempotentAndExactlyOnce", func(t *testing.T) {
		t.Parallel()
		s, second := open(t)
		hubs := []*fabrication.Ledger{NewLedger(s, -600), NewLedger(second(), -600)}
		give(t, s, hubs[0], "user:ada", 7)
		// The same transfer, retried on both hubs at once: one is made.
		var wg sync.WaitGroup
		results := make([]fabrication.LedgerEntry, 10)
		made := make([]bool, 10)
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, created, err := hubs[i%2].Transfer(ctx, ada, fabrication.TransferRequest{From: "user:ada", To: "user:bob", Minutes: 7}, "retry-1")
				if err != nil {
					t.Error(err)
				}
				results[i], made[i] = e, created
			}()
		}
		wg.Wait()
		created := 0
		for i := range results {
			if made[i] {
				created++
			}
			if results[i].Seq != results[0].Seq {
				t.Fatalf("retries answered with different transfers: %+v", results)
			}
		}
		if created != 1 {
			t.Fatalf("%d transfers made from one key, want 1", created)
		}
		if _, _, err := hubs[0].Transfer(ctx, ada, fabrication.TransferRequest{From: "user:ada", To: "user:bob", Minutes: 8}, "retry-1"); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("the key reused for another amount: %v", err)
		}
		// Jobs whose end arrives several times, in either order, on both hubs: each
		// is settled or released exactly once, whichever came first.
		jobs := []string{"a", "b", "c", "d", "e", "f"}
		lines := []fabrication.HoldLine{}
		for _, j := range jobs {
			lines = append(lines, fabrication.HoldLine{Job: j, Minutes: 10})
		}
		if err := hubs[0].Hold(ctx, "user:ada", lines); err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			for k := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st := fabrication.Settlement{Job: j, Requester: "user:ada", Lab: "lab:town", Charge: true}
					if k%2 == 0 {
						st.Made = 5
					}
					if _, err := hubs[k%2].Close(ctx, st); err != nil {
						t.Error(err)
					}
					// A late estimate never reopens a closed hold.
					if err := hubs[(k+1)%2].AdjustHold(ctx, "user:ada", j, 30); err != nil {
						t.Error(err)
					}
				}()
			}
		}
		wg.Wait()
		var paid int64
		for _, j := range jobs {
			e, err := s.LedgerClosing(ctx, "job:"+j)
			if err != nil {
				t.Fatalf("job %s has no closing entry: %v", j, err)
			}
			paid += e.Minutes
		}
		a, _ := hubs[1].Account(ctx, "user:ada")
		if a.Held != 0 || len(a.Holds) != 0 || a.Balance != -paid {
			t.Fatalf("ada: %+v, want no holds and balance %d", a, -paid)
		}
		moves, _ := hubs[0].Transfers(ctx, "", 0, 100)
		settles := 0
		for _, m := range moves {
			if m.Kind == fabrication.KindSettle {
				settles++
			}
		}
		if int64(settles)*5 != paid {
			t.Fatalf("%d settlements for %d minutes", settles, paid)
		}
		if v, err := hubs[1].Verify(ctx); err != nil || !v.OK {
			t.Fatalf("verify: %+v %v", v, err)
		}
	})
}

// give has a lab grant minutes to an account: a lab "bank" whose owner is "banker" and
// whose floor a site admin set low enough. It makes two entries.
func give(t *testing.T, s fabrication.Store, l *fabrication.Ledger, to string, minutes int64) {
	t.Helper()
	ctx := context.Background()
	lab := sampleLab("bank")
	if err := s.CreateLab(ctx, lab, fabrication.Member{LabID: lab.ID, UserID: "u-banker", Handle: "banker", Role: fabrication.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.SetFloor(ctx, fabrication.Actor{ID: "u-root", Handle: "root", Admin: true}, "lab:bank", -100_000); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Transfer(ctx, fabrication.Actor{ID: "u-banker", Handle: "banker"}, fabrication.TransferRequest{From: "lab:bank", To: to, Minutes: minutes}, ""); err != nil {
		t.Fatal(err)
	}
}
