package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/storage"
)

// ExerciseWebhooks runs the webhook.Store suite.
func ExerciseWebhooks(t *testing.T, newStore func(t *testing.T) webhook.Store) {
	ctx := context.Background()
	hook := func(id, owner, lab string, events ...string) webhook.Hook {
		return webhook.Hook{ID: id, OwnerID: owner, LabID: lab, Lab: lab, URL: "https://example.org/" + id,
			Events: events, Secret: "whsec_" + id, CreatedAt: t0}
	}
	delivery := func(id, hookID string, next time.Time) webhook.Delivery {
		return webhook.Delivery{ID: id, HookID: hookID, Event: webhook.JobDone, Payload: []byte(`{"id":"` + id + `"}`),
			State: webhook.Pending, NextAttemptAt: next, CreatedAt: next, UpdatedAt: next}
	}
	ids := func(hs []webhook.Hook) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.ID)
		}
		return out
	}

	t.Run("HooksRoundTripAndMatch", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		for _, h := range []webhook.Hook{
			hook("h1", "u-ada", "", webhook.JobDone, webhook.JobFailed),
			hook("h2", "u-ada", "lab-1", webhook.JobAwaitingApproval, webhook.JobDone),
			hook("h3", "u-bob", "lab-1", webhook.MachineOffline),
			hook("h4", "u-bob", "", webhook.JobDone),
		} {
			if err := s.CreateHook(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateHook(ctx, hook("h1", "u-eve", "")); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("a second h1: got %v, want ErrConflict", err)
		}
		got, err := s.Hook(ctx, "h2")
		if err != nil || got.OwnerID != "u-ada" || got.LabID != "lab-1" || got.Lab != "lab-1" || got.URL != "https://example.org/h2" ||
			got.Secret != "whsec_h2" || !got.CreatedAt.Equal(t0) || !slices.Equal(got.Events, []string{webhook.JobAwaitingApproval, webhook.JobDone}) {
			t.Fatalf("Hook: got %+v, %v", got, err)
		}
		if _, err := s.Hook(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Hook(nope): got %v, want ErrNotFound", err)
		}
		mine, err := s.Hooks(ctx, "u-ada")
		if err != nil || !slices.Equal(ids(mine), []string{"h1", "h2"}) {
			t.Fatalf("Hooks(u-ada): got %v, %v; want h1, h2", ids(mine), err)
		}
		hub := hook("h5", "u-root", "", webhook.DesignReported)
		hub.Hub = true
		for _, h := range []webhook.Hook{hub, hook("h6", "u-ada", "", webhook.DesignReported)} {
			if err := s.CreateHook(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Hook(ctx, "h5"); err != nil || !got.Hub {
			t.Fatalf("the hub's hook: got %+v, %v; want Hub", got, err)
		}
		for _, tt := range []struct {
			event, lab, owner string
			hub               bool
			want              []string
		}{
			{webhook.JobDone, "lab-1", "u-ada", false, []string{"h1", "h2"}},  // lab-1's, and ada's personal one
			{webhook.JobDone, "lab-1", "", false, []string{"h2"}},             // the lab's only
			{webhook.JobDone, "", "u-bob", false, []string{"h4"}},             // bob's lab hook is not personal
			{webhook.JobFailed, "lab-1", "u-bob", false, nil},                 // no one asked for it there
			{webhook.MachineOffline, "lab-1", "", false, []string{"h3"}},      //
			{webhook.MachineOffline, "lab-2", "u-bob", false, nil},            // h3 is lab-1's
			{webhook.JobDone, "", "", false, nil},                             // nobody
			{webhook.JobAwaitingApproval, "", "u-ada", false, nil},            // h2 is the lab's, not ada's own
			{webhook.DesignReported, "", "u-ada", false, []string{"h6"}},      // ada's own
			{webhook.DesignReported, "", "u-ada", true, []string{"h5", "h6"}}, // and the hub's
			{webhook.DesignReported, "", "u-root", false, nil},                // root's hub hook is not personal
			{webhook.DesignReported, "", "", true, []string{"h5"}},            //
			{webhook.JobDone, "lab-1", "u-ada", true, []string{"h1", "h2"}},   // the hub's hook does not want it
		} {
			got, err := s.HooksFor(ctx, tt.event, tt.lab, tt.owner, tt.hub)
			if err != nil || !slices.Equal(ids(got), tt.want) {
				t.Errorf("HooksFor(%s, %q, %q, %v): got %v, %v; want %v", tt.event, tt.lab, tt.owner, tt.hub, ids(got), err, tt.want)
			}
		}
	})

	t.Run("DeliveriesDueSavedAndDeletedWithTheirHook", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		for _, h := range []webhook.Hook{hook("h1", "u-ada", "", webhook.JobDone), hook("h2", "u-ada", "", webhook.JobDone)} {
			if err := s.CreateHook(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range []webhook.Delivery{
			delivery("d1", "h1", t0), delivery("d2", "h1", t0.Add(time.Minute)), delivery("d3", "h2", t0.Add(-time.Minute)),
		} {
			if err := s.AddDelivery(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddDelivery(ctx, delivery("d4", "nope", t0)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("a delivery to no hook: got %v, want ErrNotFound", err)
		}
		due, err := s.DueDeliveries(ctx, t0, 10)
		if err != nil || len(due) != 2 || due[0].ID != "d3" || due[1].ID != "d1" {
			t.Fatalf("DueDeliveries at t0: got %+v, %v; want d3, d1", due, err)
		}
		if string(due[1].Payload) != `{"id":"d1"}` || due[1].Event != webhook.JobDone || !due[1].NextAttemptAt.Equal(t0) {
			t.Fatalf("d1 read back as %+v", due[1])
		}
		if due, _ := s.DueDeliveries(ctx, t0.Add(time.Hour), 1); len(due) != 1 || due[0].ID != "d3" {
			t.Fatalf("DueDeliveries with limit 1: got %+v, want d3", due)
		}

		// An attempt that failed: due again later, with its outcome.
		d1 := dueByID(t, s, "d1")
		d1.Attempts, d1.LastStatus, d1.LastError, d1.NextAttemptAt, d1.UpdatedAt = 1, 500, "the receiver answered 500", t0.Add(30*time.Second), t0
		if err := s.SaveAttempt(ctx, d1); err != nil {
			t.Fatal(err)
		}
		if due, _ := s.DueDeliveries(ctx, t0, 10); len(due) != 1 || due[0].ID != "d3" {
			t.Fatalf("after d1 failed: got %+v, want only d3 due", due)
		}
		// One delivered is never due again.
		d3 := dueByID(t, s, "d3")
		d3.State, d3.Attempts, d3.LastStatus = webhook.Delivered, 1, 204
		if err := s.SaveAttempt(ctx, d3); err != nil {
			t.Fatal(err)
		}
		if due, _ := s.DueDeliveries(ctx, t0.Add(24*time.Hour), 10); len(due) != 2 || due[0].ID != "d1" || due[1].ID != "d2" {
			t.Fatalf("a day later: got %+v, want d1, d2", due)
		}
		// Pruning takes what is over and older than asked, never what is pending.
		if n, err := s.PruneDeliveries(ctx, d3.UpdatedAt); err != nil || n != 0 {
			t.Fatalf("pruning before d3 was last changed: got %d, %v; want none pruned", n, err)
		}
		if n, err := s.PruneDeliveries(ctx, t0.Add(48*time.Hour)); err != nil || n != 1 {
			t.Fatalf("pruning two days on: got %d, %v; want d3 alone pruned", n, err)
		}
		if list, _ := s.Deliveries(ctx, "h2", 10); len(list) != 0 {
			t.Fatalf("h2's deliveries after pruning: got %+v, want none", list)
		}
		list, err := s.Deliveries(ctx, "h1", 10)
		if err != nil || len(list) != 2 || list[0].ID != "d2" || list[1].ID != "d1" {
			t.Fatalf("Deliveries(h1): got %+v, %v; want d2, d1 (newest first)", list, err)
		}
		if got := list[1]; got.Attempts != 1 || got.LastStatus != 500 || got.LastError != "the receiver answered 500" ||
			got.State != webhook.Pending || !got.NextAttemptAt.Equal(t0.Add(30*time.Second)) {
			t.Fatalf("d1 after its attempt: got %+v", got)
		}

		if err := s.DeleteHook(ctx, "h1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteHook(ctx, "h1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("deleting h1 again: got %v, want ErrNotFound", err)
		}
		if due, _ := s.DueDeliveries(ctx, t0.Add(24*time.Hour), 10); len(due) != 0 {
			t.Fatalf("after h1 was deleted: got %+v due, want none (d3 was delivered)", due)
		}
		if list, _ := s.Deliveries(ctx, "h1", 10); len(list) != 0 {
			t.Fatalf("deliveries of deleted h1: got %+v, want none", list)
		}
		if err := s.SaveAttempt(ctx, d1); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("saving an attempt of a deleted hook's delivery: got %v, want ErrNotFound", err)
		}
	})
}

// dueByID is delivery id as DueDeliveries reads it a day after t0.
func dueByID(t *testing.T, s webhook.Store, id string) webhook.Delivery {
	t.Helper()
	due, err := s.DueDeliveries(context.Background(), t0.Add(24*time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range due {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("delivery %s is not due", id)
	return webhook.Delivery{}
}
