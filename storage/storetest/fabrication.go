package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
)

func sampleLab(slug string) fabrication.Lab {
	return fabrication.Lab{ID: "lab-" + slug, Slug: slug, Name: "Lab " + slug, Timezone: "Europe/Berlin",
		Policy: fabrication.Policy{Submit: "public", MaxJobHours: 12}, CreatedAt: t0}
}

func sampleJob(id, lab string, priority int, enqueued time.Duration) fabrication.Job {
	at := t0.Add(enqueued)
	return fabrication.Job{ID: id, OrderID: "o1", LabID: lab, RequesterID: "u-ada", Requester: "ada", DesignID: "d1", DesignSlug: "holder",
		Version: 1, File: "base.stl", SHA256: fmt.Sprintf("%064d", 7), Size: 684, BBox: fabrication.Volume{X: 20, Y: 20, Z: 20},
		Process: "fdm", Material: "PLA", Tags: []string{}, Priority: priority, Copy: 1, State: fabrication.JobQueued,
		EnqueuedAt: at, CreatedAt: at, UpdatedAt: at, Events: []fabrication.Event{{At: at, Kind: "queued", To: "queued", Actor: "ada"}}}
}

// ExerciseFabrication runs the fabrication.Store suite.
func ExerciseFabrication(t *testing.T, newStore func(t *testing.T) fabrication.Store) {
	ctx := context.Background()

	t.Run("LabsMembersTokens", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		lab := sampleLab("fablab-a")
		if err := s.CreateLab(ctx, lab, fabrication.Member{LabID: lab.ID, UserID: "u-ada", Handle: "ada", Role: fabrication.RoleOwner}); err != nil {
			t.Fatal(err)
		}
		dup := sampleLab("fablab-a")
		dup.ID = "lab-other"
		if err := s.CreateLab(ctx, dup, fabrication.Member{LabID: dup.ID, UserID: "u-x", Handle: "x", Role: fabrication.RoleOwner}); !errors.Is(err, storage.ErrConflict) {
			t.Errorf("taken slug: got %v, want ErrConflict", err)
		}
		got, err := s.LabBySlug(ctx, "fablab-a")
		if err != nil || got.ID != lab.ID || got.Policy != lab.Policy || !got.CreatedAt.Equal(t0) {
			t.Fatalf("LabBySlug: got %+v, %v", got, err)
		}
		if _, err := s.LabByID(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("missing lab: got %v", err)
		}
		if labs, err := s.Labs(ctx); err != nil || len(labs) != 1 {
			t.Errorf("Labs: got %v, %v", labs, err)
		}
		policy := fabrication.Policy{Submit: "members", Credits: fabrication.CreditsRequired, MinutesPerCm3: 2.5, HarvestConfirm: true}
		if err := s.SetPolicy(ctx, lab.ID, policy); err != nil {
			t.Fatal(err)
		}
		if got, err := s.LabBySlug(ctx, "fablab-a"); err != nil || got.Policy != policy || got.Name != lab.Name {
			t.Fatalf("after SetPolicy: got %+v, %v", got, err)
		}
		if err := s.SetPolicy(ctx, "nope", policy); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetPolicy of no lab: got %v", err)
		}
		if err := s.PutMember(ctx, fabrication.Member{LabID: lab.ID, UserID: "u-grace", Handle: "grace", Role: fabrication.RoleMember}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutMember(ctx, fabrication.Member{LabID: lab.ID, UserID: "u-grace", Handle: "grace", Role: fabrication.RoleOperator}); err != nil {
			t.Fatal(err)
		}
		if m, err := s.Member(ctx, lab.ID, "u-grace"); err != nil || m.Role != fabrication.RoleOperator {
			t.Fatalf("Member: got %+v, %v", m, err)
		}
		if _, err := s.Member(ctx, lab.ID, "u-nobody"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("non-member: got %v", err)
		}
		if ms, _ := s.Members(ctx, lab.ID); len(ms) != 2 || ms[0].Handle != "ada" || ms[1].Role != fabrication.RoleOperator {
			t.Fatalf("Members: got %+v", ms)
		}
		if err := s.DeleteMember(ctx, lab.ID, "u-grace"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Member(ctx, lab.ID, "u-grace"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a removed member: got %v, want ErrNotFound", err)
		}
		if err := s.DeleteMember(ctx, lab.ID, "u-grace"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("removing a non-member: got %v, want ErrNotFound", err)
		}
		if err := s.PutMember(ctx, fabrication.Member{LabID: lab.ID, UserID: "u-grace", Handle: "grace", Role: fabrication.RoleOperator}); err != nil {
			t.Fatal(err)
		}
		tok := fabrication.JoinToken{ID: "jt1", LabID: lab.ID, Name: "rack", Prefix: "fab_j_abcd", Hash: "jhash", CreatedAt: t0}
		if err := s.CreateJoinToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if got, err := s.JoinTokenByHash(ctx, "jhash"); err != nil || got.LabID != lab.ID || got.Name != "rack" || got.Revoked {
			t.Fatalf("JoinTokenByHash: got %+v, %v", got, err)
		}
		if err := s.RevokeJoinToken(ctx, "lab-other", "jt1"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("revoking through another lab: got %v", err)
		}
		if err := s.RevokeJoinToken(ctx, lab.ID, "jt1"); err != nil {
			t.Fatal(err)
		}
		if list, _ := s.JoinTokens(ctx, lab.ID); len(list) != 1 || !list[0].Revoked {
			t.Fatalf("JoinTokens: got %+v", list)
		}
	})

	t.Run("MachinesAndEnrollment", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		lab := sampleLab("a")
		if err := s.CreateLab(ctx, lab, fabrication.Member{LabID: lab.ID, UserID: "u-ada", Handle: "ada", Role: fabrication.RoleOwner}); err != nil {
			t.Fatal(err)
		}
		m := fabrication.Machine{ID: "m1", LabID: "lab-a", Name: "Prusa 1", Process: "fdm", BuildVolume: fabrication.Volume{X: 250, Y: 210, Z: 220},
			Nozzle: 0.4, Materials: []string{"PLA", "PETG"}, Tags: []string{}, Driver: "octoprint", State: fabrication.MachineOffline, Approved: true, CreatedAt: t0}
		if err := s.CreateMachine(ctx, m); err != nil {
			t.Fatal(err)
		}
		got, err := s.Machine(ctx, "m1")
		if err != nil || got.Name != "Prusa 1" || !slices.Equal(got.Materials, m.Materials) || got.Rev != 0 {
			t.Fatalf("Machine: got %+v, %v", got, err)
		}
		got.TokenHash = "thash"
		if err := s.SaveMachine(ctx, got, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveMachine(ctx, got, 0); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("save with a stale rev: got %v, want ErrConflict", err)
		}
		if byToken, err := s.MachineByTokenHash(ctx, "thash"); err != nil || byToken.ID != "m1" || byToken.Rev != 1 {
			t.Fatalf("MachineByTokenHash: got %+v, %v", byToken, err)
		}
		if _, err := s.MachineByTokenHash(ctx, ""); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("empty token hash: got %v", err)
		}
		// A new token replaces the old one (a machine enrolled again, or revoked).
		got.TokenHash = "thash2"
		if err := s.SaveMachine(ctx, got, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MachineByTokenHash(ctx, "thash"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("the replaced token: got %v, want ErrNotFound", err)
		}
		if byToken, err := s.MachineByTokenHash(ctx, "thash2"); err != nil || byToken.ID != "m1" || byToken.Rev != 2 {
			t.Fatalf("MachineByTokenHash with the new token: got %+v, %v", byToken, err)
		}
		if err := s.TouchMachine(ctx, "m1", t0.Add(time.Minute), fabrication.MachineOffline, fabrication.MachineIdle); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Machine(ctx, "m1"); got.State != fabrication.MachineIdle || got.LastSeen == nil || !got.LastSeen.Equal(t0.Add(time.Minute)) {
			t.Fatalf("after Touch: got %+v", got)
		}
		if ids, err := s.MarkUnheard(ctx, t0.Add(30*time.Second), []string{fabrication.MachineIdle, fabrication.MachineBusy}, fabrication.MachineOffline); err != nil || len(ids) != 0 {
			t.Fatalf("MarkUnheard of a fresh machine: got %v, %v", ids, err)
		}
		if ids, err := s.MarkUnheard(ctx, t0.Add(5*time.Minute), []string{fabrication.MachineIdle, fabrication.MachineBusy}, fabrication.MachineOffline); err != nil || !slices.Equal(ids, []string{"m1"}) {
			t.Fatalf("MarkUnheard: got %v, %v", ids, err)
		}
		if ms, _ := s.Machines(ctx, "lab-a"); len(ms) != 1 || ms[0].State != fabrication.MachineOffline {
			t.Fatalf("Machines: got %+v", ms)
		}
		if err := s.CreateEnrollment(ctx, fabrication.Enrollment{CodeHash: "code1", MachineID: "m1", ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateEnrollment(ctx, fabrication.Enrollment{CodeHash: "code2", MachineID: "m1", ExpiresAt: t0.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConsumeEnrollment(ctx, "code2", t0.Add(2*time.Minute)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("expired code: got %v", err)
		}
		var wg sync.WaitGroup
		won := make(chan string, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if id, err := s.ConsumeEnrollment(ctx, "code1", t0); err == nil {
					won <- id
				}
			}()
		}
		wg.Wait()
		close(won)
		if len(won) != 1 || <-won != "m1" {
			t.Fatal("a one-time code was used other than once")
		}
		// Voided codes cannot be used; other machines' codes stay.
		for _, e := range []fabrication.Enrollment{{CodeHash: "code3", MachineID: "m1", ExpiresAt: t0.Add(time.Hour)}, {CodeHash: "code4", MachineID: "m9", ExpiresAt: t0.Add(time.Hour)}} {
			if err := s.CreateEnrollment(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteEnrollments(ctx, []string{"m1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConsumeEnrollment(ctx, "code3", t0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a voided code: got %v, want ErrNotFound", err)
		}
		if id, err := s.ConsumeEnrollment(ctx, "code4", t0); err != nil || id != "m9" {
			t.Errorf("another machine's code: got %q, %v", id, err)
		}
	})

	t.Run("OrdersAndJobs", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		o := fabrication.Order{ID: "o1", RequesterID: "u-ada", Requester: "ada", LabID: "lab-a", LabSlug: "a", DesignID: "d1", DesignSlug: "holder",
			Version: 1, Quantity: 2, Files: []string{"base.stl"}, BOMRefs: []string{}, CreatedAt: t0}
		jobs := []fabrication.Job{sampleJob("j1", "lab-a", 0, 0), sampleJob("j2", "lab-a", 5, time.Second), sampleJob("j3", "lab-a", 0, -time.Second), sampleJob("j4", "lab-b", 9, 0)}
		if err := s.CreateOrder(ctx, o, jobs); err != nil {
			t.Fatal(err)
		}
		gotO, err := s.Order(ctx, "o1")
		if err != nil || gotO.RequesterID != "u-ada" || gotO.Quantity != 2 {
			t.Fatalf("Order: got %+v, %v", gotO, err)
		}
		j, err := s.Job(ctx, "j1")
		if err != nil || j.RequesterID != "u-ada" || j.BBox.X != 20 || len(j.Events) != 1 || j.Events[0].Actor != "ada" || j.Rev != 0 {
			t.Fatalf("Job: got %+v, %v", j, err)
		}
		if list, _ := s.JobsOfOrder(ctx, "o1"); len(list) != 4 {
			t.Fatalf("JobsOfOrder: got %d", len(list))
		}
		if list, err := s.DesignJobs(ctx, "d1", []string{fabrication.JobQueued}, 3); err != nil || len(list) != 3 || list[0].ID != "j3" || len(list[0].Events) != 0 {
			t.Fatalf("DesignJobs: got %v, %v; want three, oldest (j3) first, without logs", ids(list), err)
		}
		if list, _ := s.DesignJobs(ctx, "d1", []string{fabrication.JobDone}, 10); len(list) != 0 {
			t.Fatalf("DesignJobs in another state: got %v", ids(list))
		}
		if list, err := s.DesignJobs(ctx, "d1", nil, 10); err != nil || len(list) != 0 {
			t.Fatalf("DesignJobs in no state: got %v, %v; want none", ids(list), err)
		}
		if list, err := s.LabJobs(ctx, "lab-a", nil, 10); err != nil || len(list) != 0 {
			t.Fatalf("LabJobs in no state: got %v, %v; want none", ids(list), err)
		}
		q, err := s.Queued(ctx, "lab-a", 10)
		if err != nil || len(q) != 3 || q[0].ID != "j2" || q[1].ID != "j3" || q[2].ID != "j1" {
			t.Fatalf("Queued: got %v, %v; want j2 (priority), j3 (older), j1", ids(q), err)
		}
		// A claim from the queue (read without the log) keeps the log and appends to it.
		q3, _ := s.Queued(ctx, "lab-a", 10)
		claim := q3[1] // j3
		claim.State = fabrication.JobAssigned
		if err := s.ClaimJob(ctx, claim, claim.Rev, fabrication.Event{At: t0, Kind: "assigned", Actor: "hub"}); err != nil {
			t.Fatal(err)
		}
		if err := s.ClaimJob(ctx, claim, claim.Rev, fabrication.Event{At: t0, Kind: "assigned"}); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("a second claim from the same rev: got %v, want ErrConflict", err)
		}
		if got, _ := s.Job(ctx, "j3"); got.State != fabrication.JobAssigned || got.Rev != 1 || len(got.Events) != 2 || got.Events[0].Actor != "ada" || got.Events[1].Kind != "assigned" {
			t.Fatalf("after ClaimJob: got %+v", got)
		}
		// A full log keeps its first entry and the newest, as fabrication.AppendEvent does.
		full, _ := s.Job(ctx, "j2")
		for i := len(full.Events); i < fabrication.MaxEvents; i++ {
			full.Events = append(full.Events, fabrication.Event{At: t0, Kind: "progress", Message: fmt.Sprint("step ", i)})
		}
		if err := s.SaveJob(ctx, full, full.Rev); err != nil {
			t.Fatal(err)
		}
		full.Events = nil // as the queue reads it
		if err := s.ClaimJob(ctx, full, full.Rev+1, fabrication.Event{At: t0, Kind: "assigned", Actor: "hub"}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Job(ctx, "j2")
		if n := len(got.Events); n != fabrication.MaxEvents || got.Events[0].Actor != "ada" || got.Events[1].Message != "step 2" || got.Events[n-1].Kind != "assigned" {
			t.Fatalf("a claim on a full log: got %d entries, first %+v, second %+v, last %+v; want %d, the order's first, step 2 next, the claim last",
				n, got.Events[0], got.Events[1], got.Events[n-1], fabrication.MaxEvents)
		}
		// Concurrent compare-and-set: one claim wins.
		var wg sync.WaitGroup
		wins := make(chan string, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := j
				exp := t0.Add(time.Minute)
				c.State, c.MachineID, c.Holding, c.LeaseHash, c.LeaseExpires = fabrication.JobAssigned, fmt.Sprint("m", i), true, fmt.Sprint("lease", i), &exp
				if err := s.SaveJob(ctx, c, 0); err == nil {
					wins <- c.MachineID
				} else if !errors.Is(err, storage.ErrConflict) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		close(wins)
		if len(wins) != 1 {
			t.Fatalf("got %d winners of one claim, want 1", len(wins))
		}
		winner := <-wins
		j, _ = s.Job(ctx, "j1")
		if j.Rev != 1 || j.MachineID != winner || !j.Holding || j.State != fabrication.JobAssigned || j.LeaseExpires == nil {
			t.Fatalf("after the claim: got %+v", j)
		}
		if held, _ := s.HeldJobs(ctx, winner); len(held) != 1 || held[0].ID != "j1" {
			t.Fatalf("HeldJobs: got %v", ids(held))
		}
		if exp, _ := s.ExpiredLeases(ctx, t0.Add(30*time.Second), 10); len(exp) != 0 {
			t.Fatalf("ExpiredLeases before expiry: got %v", ids(exp))
		}
		if exp, _ := s.ExpiredLeases(ctx, t0.Add(2*time.Minute), 10); len(exp) != 1 || exp[0].ID != "j1" {
			t.Fatalf("ExpiredLeases: got %v", ids(exp))
		}
		if q, _ := s.Queued(ctx, "lab-a", 10); len(q) != 1 {
			t.Fatalf("Queued after the claim: got %v", ids(q))
		}
		j.State, j.Holding, j.LeaseHash, j.LeaseExpires = fabrication.JobDone, false, "", nil
		j.UpdatedAt = t0.Add(time.Hour)
		if err := s.SaveJob(ctx, j, 1); err != nil {
			t.Fatal(err)
		}
		if done, _ := s.LabJobs(ctx, "lab-a", []string{fabrication.JobDone, fabrication.JobFailed}, 10); len(done) != 1 || done[0].ID != "j1" {
			t.Fatalf("LabJobs: got %v", ids(done))
		}
		if held, _ := s.HeldJobs(ctx, winner); len(held) != 0 {
			t.Fatalf("HeldJobs after release: got %v", ids(held))
		}
		counts, err := s.DesignJobCounts(ctx)
		if err != nil || counts["d1"] != [2]int{1, 0} {
			t.Fatalf("DesignJobCounts: got %v, %v", counts, err)
		}
		if byLab, err := s.DesignLabCounts(ctx, "d1"); err != nil || len(byLab) != 1 || byLab["lab-a"] != [2]int{1, 0} {
			t.Fatalf("DesignLabCounts: got %v, %v, want lab-a: 1 done", byLab, err)
		}
		if byLab, err := s.DesignLabCounts(ctx, "no-such-design"); err != nil || len(byLab) != 0 {
			t.Fatalf("DesignLabCounts of an unmade design: got %v, %v", byLab, err)
		}
	})

	t.Run("UsageDecays", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		if err := s.AddUsage(ctx, "lab-a", "u-ada", 3600, t0); err != nil {
			t.Fatal(err)
		}
		week := 7 * 24 * time.Hour
		if err := s.AddUsage(ctx, "lab-a", "u-ada", 600, t0.Add(week)); err != nil {
			t.Fatal(err)
		}
		u, err := s.Usage(ctx, "lab-a")
		if err != nil {
			t.Fatal(err)
		}
		got := u["u-ada"]
		if d := got.Seconds - (1800 + 600); d > 1e-6 || d < -1e-6 || !got.UpdatedAt.Equal(t0.Add(week)) {
			t.Fatalf("after a half-life: got %+v, want 2400 s at one week", got)
		}
		if other, _ := s.Usage(ctx, "lab-b"); len(other) != 0 {
			t.Fatalf("another lab: got %v", other)
		}
	})
}

func ids(jobs []fabrication.Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}
