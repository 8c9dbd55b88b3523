package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
)

// ExerciseFederation runs the federation.Store suite.
func ExerciseFederation(t *testing.T, newStore func(t *testing.T) federation.Store) {
	ctx := context.Background()
	follow := func(id, actor, host string, at time.Time) federation.Follow {
		return federation.Follow{ID: id, Target: "https://" + host, Actor: actor, Inbox: actor + "/inbox", Host: host,
			State: federation.Pending, CreatedAt: at, UpdatedAt: at}
	}
	follower := func(local, actor, host string, at time.Time) federation.Follower {
		return federation.Follower{Local: local, Actor: actor, Inbox: "https://" + host + "/inbox", Host: host,
			ActivityID: actor + "#follow", CreatedAt: at}
	}
	actors := func(fs []federation.Follower) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Actor)
		}
		return out
	}
	follows := func(fs []federation.Follow) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.ID)
		}
		return out
	}

	t.Run("KeysAreMadeOnce", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		if _, err := s.Key(ctx, "instance"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Key before any: got %v, want ErrNotFound", err)
		}
		k := federation.Key{Owner: "instance", PublicPEM: "pub", PrivatePEM: "priv", CreatedAt: t0}
		if err := s.AddKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := s.AddKey(ctx, federation.Key{Owner: "instance", PublicPEM: "other", PrivatePEM: "other", CreatedAt: t0}); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("a second key of one owner: got %v, want ErrConflict", err)
		}
		got, err := s.Key(ctx, "instance")
		if err != nil || got != k {
			t.Fatalf("Key: got %+v, %v, want %+v (the first)", got, err, k)
		}
	})

	t.Run("FollowsLifecycle", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		a := follow("f1", "https://b.example/ap/actor", "b.example", t0)
		b := follow("f2", "https://c.example:8443/ap/actor", "c.example:8443", t0.Add(time.Second))
		for _, f := range []federation.Follow{b, a} {
			if err := s.AddFollow(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddFollow(ctx, follow("f3", a.Actor, "b.example", t0)); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("following one actor twice: got %v, want ErrConflict", err)
		}
		all, err := s.Follows(ctx)
		if err != nil || !slices.Equal(follows(all), []string{"f1", "f2"}) {
			t.Fatalf("Follows: got %v, %v, want [f1 f2] (oldest first)", follows(all), err)
		}
		if all[0] != a {
			t.Errorf("Follows[0]: got %+v, want %+v", all[0], a)
		}
		later := t0.Add(time.Minute)
		if err := s.SetFollowState(ctx, "f1", federation.Accepted, later); err != nil {
			t.Fatal(err)
		}
		got, err := s.Follow(ctx, "f1")
		if err != nil || got.State != federation.Accepted || !got.UpdatedAt.Equal(later) {
			t.Fatalf("Follow after accept: got %+v, %v, want accepted at %v", got, err, later)
		}
		if err := s.SetFollowState(ctx, "nope", federation.Accepted, later); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetFollowState of none: got %v, want ErrNotFound", err)
		}
		if err := s.DeleteFollow(ctx, "f1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteFollow(ctx, "f1"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DeleteFollow twice: got %v, want ErrNotFound", err)
		}
		if _, err := s.Follow(ctx, "f1"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Follow after delete: got %v, want ErrNotFound", err)
		}
	})

	t.Run("FollowersReplaceAndRemove", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		x := follower("instance", "https://m.example/users/ann", "m.example", t0)
		y := follower("instance", "https://m.example/users/bob", "m.example", t0.Add(time.Second))
		z := follower("lab:l1", "https://m.example/users/ann", "m.example", t0)
		for _, f := range []federation.Follower{x, y, z} {
			if err := s.AddFollower(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		again := x
		again.ActivityID = "https://m.example/users/ann#follow2"
		if err := s.AddFollower(ctx, again); err != nil {
			t.Fatalf("a repeated Follow: got %v, want it to replace", err)
		}
		fs, err := s.Followers(ctx, "instance")
		if err != nil || !slices.Equal(actors(fs), []string{x.Actor, y.Actor}) {
			t.Fatalf("Followers: got %v, %v, want [ann bob]", actors(fs), err)
		}
		if fs[0].ActivityID != again.ActivityID {
			t.Errorf("the repeated Follow's id: got %q, want %q", fs[0].ActivityID, again.ActivityID)
		}
		if err := s.RemoveFollower(ctx, "instance", y.Actor); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveFollower(ctx, "instance", y.Actor); err != nil {
			t.Errorf("removing one gone: got %v, want nil", err)
		}
		if err := s.RemoveFollower(ctx, "", x.Actor); err != nil { // of every local actor
			t.Fatal(err)
		}
		for _, local := range []string{"instance", "lab:l1"} {
			if fs, err := s.Followers(ctx, local); err != nil || len(fs) != 0 {
				t.Errorf("Followers of %s after the removals: got %v, %v, want none", local, actors(fs), err)
			}
		}
	})

	t.Run("BlocksDropTheHost", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		for _, f := range []federation.Follow{
			follow("f1", "https://bad.example/ap/actor", "bad.example", t0),
			follow("f2", "https://bad.example:8443/ap/actor", "bad.example:8443", t0),
			follow("f3", "https://badxexample/ap/actor", "badxexample", t0), // a regex dot would match it
			follow("f4", "https://good.example/ap/actor", "good.example", t0),
		} {
			if err := s.AddFollow(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []federation.Follower{
			follower("instance", "https://bad.example/u/a", "bad.example", t0),
			follower("instance", "https://good.example/u/a", "good.example", t0),
		} {
			if err := s.AddFollower(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		b := federation.Block{Host: "bad.example", CreatedAt: t0}
		if err := s.AddBlock(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := s.AddBlock(ctx, federation.Block{Host: "bad.example", CreatedAt: t0.Add(time.Hour)}); err != nil {
			t.Fatalf("blocking twice: got %v, want nil", err)
		}
		if err := s.AddBlock(ctx, federation.Block{Host: "a.example:9000", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		bs, err := s.Blocks(ctx)
		if err != nil || len(bs) != 2 || bs[0].Host != "a.example:9000" || bs[1] != b {
			t.Fatalf("Blocks: got %+v, %v, want a.example:9000 and %+v (the first block kept)", bs, err, b)
		}
		if err := s.RemoveBlock(ctx, "a.example:9000"); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveBlock(ctx, "a.example:9000"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("lifting a block twice: got %v, want ErrNotFound", err)
		}
		if bs, err := s.Blocks(ctx); err != nil || len(bs) != 1 || bs[0] != b {
			t.Fatalf("Blocks after lifting a.example:9000: got %+v, %v, want only %+v", bs, err, b)
		}
		if err := s.DropHost(ctx, "bad.example"); err != nil {
			t.Fatal(err)
		}
		all, err := s.Follows(ctx)
		if err != nil || !slices.Equal(follows(all), []string{"f3", "f4"}) {
			t.Errorf("Follows after dropping bad.example: got %v, %v, want [f3 f4] (every port of it gone)", follows(all), err)
		}
		fs, err := s.Followers(ctx, "instance")
		if err != nil || !slices.Equal(actors(fs), []string{"https://good.example/u/a"}) {
			t.Errorf("Followers after dropping bad.example: got %v, %v, want the good one", actors(fs), err)
		}
		if err := s.DropHost(ctx, "good.example:1"); err != nil {
			t.Fatal(err)
		}
		if all, _ := s.Follows(ctx); len(all) != 2 {
			t.Errorf("dropping good.example:1 (another port): got %v left, want f3 and f4 kept", follows(all))
		}
	})

	t.Run("DeliveriesQueue", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ids := func(ds []federation.Delivery) []string {
			var out []string
			for _, d := range ds {
				out = append(out, d.ID)
			}
			return out
		}
		// Queued out of their ids' order: two to one inbox due now, one to a hub in a minute.
		for _, d := range []federation.Delivery{
			{ID: "0002", From: "https://hub.example/ap/actor", Inbox: "https://a.example/inbox", Host: "a.example", Body: []byte(`{"type":"Undo"}`), Due: t0, CreatedAt: t0},
			{ID: "0001", From: "https://hub.example/ap/actor", Inbox: "https://a.example/inbox", Host: "a.example", Body: []byte(`{"type":"Follow"}`), Due: t0, CreatedAt: t0},
			{ID: "0003", From: "https://hub.example/people/ada", Hub: "https://b.example", Host: "b.example", Body: []byte("{}"), Due: t0.Add(time.Minute), CreatedAt: t0},
		} {
			if err := s.AddDelivery(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddDelivery(ctx, federation.Delivery{ID: "0001", Inbox: "x", Body: []byte("{}"), Due: t0, CreatedAt: t0}); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("a delivery id twice: got %v, want ErrConflict", err)
		}
		for host, want := range map[string]int{"a.example": 2, "b.example": 1, "c.example": 0, "": 3} {
			if n, err := s.CountDeliveries(ctx, host); err != nil || n != want {
				t.Errorf("CountDeliveries(%q): got %d, %v, want %d", host, n, err, want)
			}
		}
		// Of one destination, the first queued alone is due: the Undo waits for its Follow.
		due, err := s.DueDeliveries(ctx, t0, 10)
		if err != nil || !slices.Equal(ids(due), []string{"0001"}) {
			t.Fatalf("DueDeliveries at t0: got %v, %v, want 0001 alone (0002 behind it)", ids(due), err)
		}
		if d := due[0]; d.From != "https://hub.example/ap/actor" || d.Inbox != "https://a.example/inbox" || d.Host != "a.example" || string(d.Body) != `{"type":"Follow"}` ||
			d.Attempts != 0 || !d.Due.Equal(t0) || !d.CreatedAt.Equal(t0) {
			t.Fatalf("the first due delivery: got %+v", d)
		}
		if due, _ := s.DueDeliveries(ctx, t0.Add(time.Hour), 1); !slices.Equal(ids(due), []string{"0001"}) {
			t.Fatalf("DueDeliveries with limit 1: got %v", ids(due))
		}
		// The Follow fails and waits an hour: the Undo behind it waits too, the hub's does not.
		if err := s.RetryDelivery(ctx, "0001", 1, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.RetryDelivery(ctx, "gone", 1, t0); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("RetryDelivery of none: got %v, want ErrNotFound", err)
		}
		due, err = s.DueDeliveries(ctx, t0.Add(time.Minute), 10)
		if err != nil || !slices.Equal(ids(due), []string{"0003"}) || due[0].Hub != "https://b.example" || due[0].Inbox != "" {
			t.Fatalf("DueDeliveries a minute on: got %+v, %v, want 0003 alone, to b.example's hub", due, err)
		}
		due, err = s.DueDeliveries(ctx, t0.Add(time.Hour), 10)
		if err != nil || !slices.Equal(ids(due), []string{"0001", "0003"}) || due[0].Attempts != 1 || !due[0].Due.Equal(t0.Add(time.Hour)) {
			t.Fatalf("DueDeliveries an hour on: got %+v, %v, want 0001 (attempted once) and 0003", due, err)
		}
		// Sent, the Follow goes, and the Undo is next.
		for range 2 {
			if err := s.DeleteDelivery(ctx, "0001"); err != nil {
				t.Fatalf("deleting a delivery (twice is no error): %v", err)
			}
		}
		if due, err := s.DueDeliveries(ctx, t0.Add(time.Hour), 10); err != nil || !slices.Equal(ids(due), []string{"0002", "0003"}) {
			t.Fatalf("DueDeliveries after the Follow went: got %v, %v, want 0002 and 0003", ids(due), err)
		}
	})

	t.Run("RemoteMakes", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		made := func(id, design, host string, ended time.Duration) federation.RemoteMake {
			return federation.RemoteMake{ID: "https://" + host + "/jobs/" + id, DesignID: design, Version: 1, Host: host,
				Lab: "https://" + host + "/labs/makers", LabName: "Makers", File: "parts/base.stl", EndedAt: t0.Add(ended * time.Minute), CreatedAt: t0.Add(time.Hour)}
		}
		ms := []federation.RemoteMake{made("j1", "d1", "b.example", 1), made("j2", "d1", "b.example:8443", 3), made("j3", "d1", "c.example", 2),
			made("j4", "d2", "b.example", 4)}
		for _, m := range ms {
			if err := s.AddRemoteMake(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		again := ms[0]
		again.Version = 2
		if err := s.AddRemoteMake(ctx, again); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("the same make twice: got %v, want ErrConflict", err)
		}
		got, err := s.RemoteMakes(ctx, "d1", 10)
		if err != nil || !slices.Equal(got, []federation.RemoteMake{ms[1], ms[2], ms[0]}) {
			t.Fatalf("RemoteMakes of d1:\ngot  %+v, %v\nwant j2, j3, j1 (the latest ended first) as they were added", got, err)
		}
		if got, err := s.RemoteMakes(ctx, "d1", 1); err != nil || len(got) != 1 || got[0] != ms[1] {
			t.Errorf("RemoteMakes of d1, one: got %+v, %v, want j2", got, err)
		}
		if got, err := s.RemoteMakes(ctx, "d3", 10); err != nil || len(got) != 0 {
			t.Errorf("RemoteMakes of a design never made: got %+v, %v, want none", got, err)
		}
		if n, err := s.CountRemoteMakes(ctx, "b.example"); err != nil || n != 2 {
			t.Errorf("CountRemoteMakes of b.example: got %d, %v, want 2", n, err)
		}
		if counts, err := s.RemoteMakeCounts(ctx); err != nil || len(counts) != 2 || counts["d1"] != 3 || counts["d2"] != 1 {
			t.Errorf("RemoteMakeCounts: got %v, %v, want d1: 3, d2: 1", counts, err)
		}
		// Dropping a host (it was blocked) drops its makes, of every port.
		if err := s.DropHost(ctx, "b.example"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.RemoteMakes(ctx, "d1", 10); err != nil || len(got) != 1 || got[0] != ms[2] {
			t.Errorf("RemoteMakes of d1 after dropping b.example: got %+v, %v, want c.example's alone", got, err)
		}
	})
}
