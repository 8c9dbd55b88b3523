package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/mesh"
	"github.com/fabcommons/fabcommons/storage"
)

func sampleDesign(i int, title string, tags ...string) (catalog.Design, catalog.Version) {
	id := fmt.Sprintf("d%03d", i)
	at := t0.Add(time.Duration(i) * time.Minute)
	if tags == nil {
		tags = []string{}
	}
	d := catalog.Design{
		ID: id, Slug: fmt.Sprintf("design-%d", i), OwnerID: "u-ada", Owner: "ada", Title: title, Summary: "A " + title + " for makers",
		Tags: tags, License: "CERN-OHL-S-2.0", Parents: []catalog.ParentRef{}, LatestVersion: 1, CreatedAt: at, UpdatedAt: at,
	}
	cost := 0.25
	v := catalog.Version{
		DesignID: id, Number: 1, Message: "First version", License: "CERN-OHL-S-2.0", CreatedBy: "ada", CreatedAt: at,
		Files: []catalog.File{
			{Path: "parts/base.stl", SHA256: fmt.Sprintf("%064d", i), Size: 684, Kind: catalog.FileMesh, Mesh: &mesh.Report{
				Format: "binary", Triangles: 12, Volume: 1000, Area: 600, Parts: 1, Watertight: true, Codes: []string{},
				BBox: mesh.BBox{Min: [3]float64{0, 0, 0}, Max: [3]float64{10, 10, 10}, Size: [3]float64{10, 10, 10}}}},
			{Path: "README.md", SHA256: fmt.Sprintf("%064d", 1000+i), Size: 10, Kind: catalog.FileDocument},
			// A 3MF's report has a unit and each build item's figures: they must come back.
			{Path: "parts/lid.3mf", SHA256: fmt.Sprintf("%064d", 2000+i), Size: 900, Kind: catalog.FileMesh, Mesh: &mesh.Report{
				Format: "3mf", Unit: "inch", Triangles: 12, Volume: 16387.064, Area: 3870.96, Parts: 1, Watertight: true, Codes: []string{"3MF_MIRRORED"},
				Notes: []string{"mirrored"}, BBox: mesh.BBox{Max: [3]float64{25.4, 25.4, 25.4}, Size: [3]float64{25.4, 25.4, 25.4}},
				Objects: []mesh.ObjectReport{{Item: 1, ObjectID: 3, Name: "lid", Triangles: 12, Volume: 16387.064, Area: 3870.96, Mirrored: true,
					BBox: mesh.BBox{Max: [3]float64{25.4, 25.4, 25.4}, Size: [3]float64{25.4, 25.4, 25.4}}}}}},
		},
		BOM: []catalog.BOMLine{
			{Ref: "B1", Kind: catalog.KindPrinted, Name: "Base", Qty: 1, File: "parts/base.stl", Material: "PETG"},
			{Ref: "S1", Kind: catalog.KindPurchased, Name: "M3 screw", Qty: 4, UnitCost: &cost},
		},
	}
	return d, v
}

// ExerciseCatalog runs the catalog.Store suite.
func ExerciseCatalog(t *testing.T, newStore func(t *testing.T) catalog.Store) {
	ctx := context.Background()

	t.Run("CreateAndRead", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		d, v := sampleDesign(1, "Filament spool holder", "spool", "fdm")
		d.Parents = []catalog.ParentRef{{DesignID: "d999", Slug: "old-holder", Version: 3, Title: "Old holder", Owner: "grace", Licensor: "Bea's Workshop", License: "CERN-OHL-W-2.0"}}
		d.Licensor = "Ada Lovelace Makerspace e.V."
		v.Files = append(v.Files, catalog.File{Path: "photos/front.png", SHA256: fmt.Sprintf("%064d", 2001), Size: 4096,
			Kind: catalog.FileImage, Picture: &catalog.PictureSize{Width: 640, Height: 480}})
		if err := s.CreateDesign(ctx, d, v); err != nil {
			t.Fatal(err)
		}
		got, err := s.DesignBySlug(ctx, d.Slug)
		if err != nil || !reflect.DeepEqual(got, d) {
			t.Fatalf("DesignBySlug:\ngot  %+v, %v\nwant %+v", got, err, d)
		}
		if got, err := s.DesignByID(ctx, d.ID); err != nil || got.Slug != d.Slug {
			t.Fatalf("DesignByID: got %+v, %v", got, err)
		}
		gotV, err := s.Version(ctx, d.ID, 1)
		if err != nil || !reflect.DeepEqual(gotV, v) {
			t.Fatalf("Version:\ngot  %+v, %v\nwant %+v", gotV, err, v)
		}
		if _, err := s.Version(ctx, d.ID, 2); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("missing version: got %v, want ErrNotFound", err)
		}
		if _, err := s.DesignBySlug(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("missing design: got %v, want ErrNotFound", err)
		}
		d2, v2 := sampleDesign(2, "Other")
		d2.Slug = d.Slug
		if err := s.CreateDesign(ctx, d2, v2); !errors.Is(err, storage.ErrConflict) {
			t.Errorf("taken slug: got %v, want ErrConflict", err)
		}
		d2.Slug = "design-2" // the same design id may retry under another slug
		if err := s.CreateDesign(ctx, d2, v2); err != nil {
			t.Errorf("retry under a free slug: %v", err)
		}
	})

	t.Run("RemoteDesigns", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		local, lv := sampleDesign(1, "Local clamp")
		remote, rv := sampleDesign(2, "Remote clamp")
		remote.OwnerID, remote.Owner = "remote:b.example", "@grace@b.example"
		remote.Origin = &catalog.Origin{Hub: "b.example", Object: "https://b.example/designs/clamp", URL: "https://b.example/designs/clamp"}
		remote.Parents = []catalog.ParentRef{{URL: "https://c.example/designs/vise", Title: "Vise", Owner: "@lin@c.example", License: "CERN-OHL-S-2.0"}}
		rv.Files[0].Origin = "https://b.example/files/base.stl"
		for _, dv := range [][2]any{{local, lv}, {remote, rv}} {
			if err := s.CreateDesign(ctx, dv[0].(catalog.Design), dv[1].(catalog.Version)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.DesignByOrigin(ctx, remote.Origin.Object)
		if err != nil || !reflect.DeepEqual(got, remote) {
			t.Fatalf("DesignByOrigin:\ngot  %+v, %v\nwant %+v", got, err, remote)
		}
		if gotV, err := s.Version(ctx, remote.ID, 1); err != nil || !reflect.DeepEqual(gotV, rv) {
			t.Fatalf("the remote version:\ngot  %+v, %v\nwant %+v", gotV, err, rv)
		}
		if got, err := s.DesignBySlug(ctx, local.Slug); err != nil || got.Origin != nil {
			t.Fatalf("a local design: got origin %+v, %v; want none", got.Origin, err)
		}
		for _, object := range []string{"", "https://b.example/designs/other"} {
			if _, err := s.DesignByOrigin(ctx, object); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("DesignByOrigin(%q): got %v, want ErrNotFound", object, err)
			}
		}
		for origin, want := range map[string]int{"b.example": 1, "b.example:8443": 0, "b_example": 0, "b.": 0} {
			page, err := s.Search(ctx, catalog.Query{Origin: origin, Limit: 10})
			if err != nil || len(page.Designs) != want || (want == 1 && page.Designs[0].ID != remote.ID) {
				t.Fatalf("Search by origin %q: got %+v, %v; want %d (the remote design)", origin, page.Designs, err, want)
			}
		}
		remote2, rv2 := sampleDesign(3, "Remote vise")
		remote2.OwnerID, remote2.Owner = "remote:b.example:8443", "@grace@b.example:8443"
		remote2.Origin = &catalog.Origin{Hub: "b.example:8443", Object: "https://b.example:8443/designs/vise", URL: "https://b.example:8443/designs/vise"}
		if err := s.CreateDesign(ctx, remote2, rv2); err != nil {
			t.Fatal(err)
		}
		for origin, want := range map[string]int{"b.example": 2, "b.example:8443": 1} {
			if page, err := s.Search(ctx, catalog.Query{Origin: origin, Limit: 10}); err != nil || len(page.Designs) != want {
				t.Errorf("Search by origin %q: got %d designs, %v; want %d", origin, len(page.Designs), err, want)
			}
		}
		// A tombstone leaves listings, but not a count that asks for hidden designs too.
		if err := s.SetHidden(ctx, remote2.ID, true, t0); err != nil {
			t.Fatal(err)
		}
		for hidden, want := range map[bool]int{false: 1, true: 2} {
			if page, err := s.Search(ctx, catalog.Query{Origin: "b.example", Limit: 10, Hidden: hidden}); err != nil || len(page.Designs) != want {
				t.Errorf("Search by origin b.example, hidden %v: got %d designs, %v; want %d", hidden, len(page.Designs), err, want)
			}
		}
		if err := s.SetHidden(ctx, remote2.ID, false, t0); err != nil {
			t.Fatal(err)
		}
		page, err := s.Search(ctx, catalog.Query{Text: "clamp", Limit: 10})
		if err != nil || len(page.Designs) != 2 {
			t.Fatalf("Search for clamp: got %d designs, %v; want both", len(page.Designs), err)
		}

		// Its text changes (an Update from its hub): read back, searched by the new
		// words and tags only.
		remote.Title, remote.Summary, remote.Tags, remote.Licensor = "Bench vise", "Holds work", []string{"vise", "bench"}, "Grace's shop"
		remote.UpdatedAt = remote.UpdatedAt.Add(time.Hour)
		if err := s.SetText(ctx, remote); err != nil {
			t.Fatal(err)
		}
		if got, err := s.DesignByID(ctx, remote.ID); err != nil || !reflect.DeepEqual(got, remote) {
			t.Fatalf("after SetText:\ngot  %+v, %v\nwant %+v", got, err, remote)
		}
		for q, want := range map[catalog.Query]int{{Text: "clamp"}: 1, {Text: "bench"}: 1, {Text: "holds"}: 1, {Tag: "bench"}: 1, {Tag: "fdm"}: 0} {
			q.Limit = 10
			if page, err := s.Search(ctx, q); err != nil || len(page.Designs) != want {
				t.Errorf("after SetText, search %+v: got %d designs, %v; want %d", q, len(page.Designs), err, want)
			}
		}
		if err := s.SetText(ctx, catalog.Design{ID: "nope", Tags: []string{}}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetText of no design: got %v, want ErrNotFound", err)
		}
	})

	t.Run("MeshReportsOfARemoteVersion", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		d, v := sampleDesign(4, "Remote hinge")
		d.Origin = &catalog.Origin{Hub: "b.example", Object: "https://b.example/designs/hinge", URL: "https://b.example/designs/hinge"}
		for i := range v.Files {
			v.Files[i].Mesh, v.Files[i].Origin = nil, "https://b.example/files/"+v.Files[i].Path
		}
		if err := s.CreateDesign(ctx, d, v); err != nil {
			t.Fatal(err)
		}
		base := mesh.Report{Format: "binary", Triangles: 12, Volume: 8000, Area: 2400, Parts: 1, Watertight: true, Codes: []string{},
			BBox: mesh.BBox{Max: [3]float64{20, 20, 20}, Size: [3]float64{20, 20, 20}}}
		if err := s.SetMeshReports(ctx, d.ID, 1, map[string]mesh.Report{"parts/base.stl": base, "no/such.stl": base}); err != nil {
			t.Fatal(err)
		}
		want := v
		want.Files = slices.Clone(v.Files)
		want.Files[0].Mesh = &base
		if got, err := s.Version(ctx, d.ID, 1); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("after SetMeshReports:\ngot  %+v, %v\nwant %+v (the base's report alone set)", got, err, want)
		}
		if err := s.SetMeshReports(ctx, d.ID, 2, map[string]mesh.Report{"parts/base.stl": base}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetMeshReports of no such version: got %v, want ErrNotFound", err)
		}
		// A file its origin served is marked so; the report set before stays.
		if err := s.SetFetched(ctx, d.ID, 1, []string{"parts/base.stl", "no/such.stl"}); err != nil {
			t.Fatal(err)
		}
		want.Files[0].Fetched = true
		if got, err := s.Version(ctx, d.ID, 1); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("after SetFetched:\ngot  %+v, %v\nwant %+v (the base alone fetched, with its report)", got, err, want)
		}
		if err := s.SetFetched(ctx, d.ID, 2, []string{"parts/base.stl"}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetFetched of no such version: got %v, want ErrNotFound", err)
		}
	})

	t.Run("Versions", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		d, v := sampleDesign(1, "Bracket")
		if err := s.CreateDesign(ctx, d, v); err != nil {
			t.Fatal(err)
		}
		v2 := v
		v2.Number, v2.Message, v2.CreatedAt, v2.License = 2, "Thicker walls", t0.Add(time.Hour), "CERN-OHL-W-2.0"
		d.LatestVersion, d.License, d.UpdatedAt = 2, "CERN-OHL-W-2.0", v2.CreatedAt
		if err := s.AddVersion(ctx, v2, d); err != nil {
			t.Fatal(err)
		}
		if err := s.AddVersion(ctx, v2, d); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("the same number twice: got %v, want ErrConflict", err)
		}
		got, _ := s.DesignBySlug(ctx, d.Slug)
		if got.LatestVersion != 2 || got.License != "CERN-OHL-W-2.0" || !got.UpdatedAt.Equal(v2.CreatedAt) {
			t.Fatalf("after AddVersion: got %+v", got)
		}
		list, err := s.Versions(ctx, d.ID)
		if err != nil || len(list) != 2 || list[0].Number != 2 || list[1].Number != 1 || list[0].Message != "Thicker walls" {
			t.Fatalf("Versions: got %+v, %v", list, err)
		}
		old, _ := s.Version(ctx, d.ID, 1)
		if old.Message != "First version" || old.License != "CERN-OHL-S-2.0" {
			t.Fatalf("version 1 changed: %+v", old)
		}
		// A remote design's next version heard may skip some; an older one is refused.
		v5 := v2
		v5.Number, v5.Message = 5, "Heard after a gap"
		d.LatestVersion = 5
		if err := s.AddVersion(ctx, v5, d); err != nil {
			t.Fatalf("version 5 after 2: %v", err)
		}
		v4 := v2
		v4.Number, d.LatestVersion = 4, 4
		if err := s.AddVersion(ctx, v4, d); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("version 4 after 5: got %v, want ErrConflict", err)
		}
		if got, _ := s.DesignBySlug(ctx, d.Slug); got.LatestVersion != 5 {
			t.Fatalf("after versions 5 and 4: latest %d, want 5", got.LatestVersion)
		}
	})

	t.Run("ConcurrentVersionsOneWins", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		d, v := sampleDesign(1, "Hinge")
		if err := s.CreateDesign(ctx, d, v); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		results := make(chan error, 6)
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v2 := v
				v2.Number, v2.Message = 2, fmt.Sprint("writer ", i)
				d2 := d
				d2.LatestVersion = 2
				results <- s.AddVersion(ctx, v2, d2)
			}()
		}
		wg.Wait()
		close(results)
		ok := 0
		for err := range results {
			if err == nil {
				ok++
			} else if !errors.Is(err, storage.ErrConflict) {
				t.Errorf("got %v, want nil or ErrConflict", err)
			}
		}
		if ok != 1 {
			t.Fatalf("got %d writers of version 2, want 1", ok)
		}
	})

	t.Run("SearchAndPages", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		titles := []string{"Spool holder", "Spool winder", "Cable clip", "Bench vise", "Spoon rest", "Raspberry Pi case", "Tool wall"}
		for i, title := range titles {
			d, v := sampleDesign(i, title, "tag"+fmt.Sprint(i%2))
			if i == 6 {
				d.CreatedAt, d.UpdatedAt = t0.Add(5*time.Minute), t0.Add(5*time.Minute) // a tie with design 5
				d.Owner, d.License = "grace", "MIT"
			}
			if err := s.CreateDesign(ctx, d, v); err != nil {
				t.Fatal(err)
			}
		}
		slugs := func(p catalog.Page) []string {
			var out []string
			for _, d := range p.Designs {
				out = append(out, d.Slug)
			}
			return out
		}
		for _, tc := range []struct {
			q    catalog.Query
			want []string
		}{
			{catalog.Query{Text: "spool", Limit: 10}, []string{"design-1", "design-0"}},
			{catalog.Query{Text: "SPO", Limit: 10}, []string{"design-4", "design-1", "design-0"}},
			{catalog.Query{Text: "spool wind", Limit: 10}, []string{"design-1"}},
			{catalog.Query{Text: "makers raspberry", Limit: 10}, []string{"design-5"}},
			{catalog.Query{Text: "tag1", Limit: 10}, []string{"design-5", "design-3", "design-1"}},
			{catalog.Query{Tag: "tag1", Limit: 10}, []string{"design-5", "design-3", "design-1"}},
			{catalog.Query{License: "MIT", Limit: 10}, []string{"design-6"}},
			{catalog.Query{Owner: "grace", Limit: 10}, []string{"design-6"}},
			{catalog.Query{Text: "nothing-like-this", Limit: 10}, nil},
		} {
			p, err := s.Search(ctx, tc.q)
			if err != nil {
				t.Fatalf("%+v: %v", tc.q, err)
			}
			if got := slugs(p); !slices.Equal(got, tc.want) || p.NextCursor != "" {
				t.Errorf("%+v: got %v (cursor %q), want %v", tc.q, got, p.NextCursor, tc.want)
			}
		}
		// Paging newest first, ties broken by id, every design exactly once.
		var all []string
		cursor := ""
		for range 10 {
			p, err := s.Search(ctx, catalog.Query{Limit: 3, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, slugs(p)...)
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		want := []string{"design-6", "design-5", "design-4", "design-3", "design-2", "design-1", "design-0"}
		if !slices.Equal(all, want) {
			t.Fatalf("pages: got %v, want %v", all, want)
		}
		if _, err := s.Search(ctx, catalog.Query{Limit: 3, Cursor: "garbage!"}); err == nil {
			t.Error("a bad cursor: got nil error")
		}
		d4, _ := s.DesignBySlug(ctx, "design-4")
		if err := s.SetHidden(ctx, d4.ID, true, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if p, _ := s.Search(ctx, catalog.Query{Text: "spo", Limit: 10}); slices.Contains(slugs(p), "design-4") {
			t.Error("a hidden design is still listed")
		}
		if got, _ := s.DesignBySlug(ctx, "design-4"); !got.Hidden || got.Title != "Spoon rest" {
			t.Errorf("hidden design: got %+v, want a tombstone with its title", got)
		}
		d2, _ := s.DesignBySlug(ctx, "design-2")
		if err := s.SetFeatured(ctx, d2.ID, true); err != nil {
			t.Fatal(err)
		}
		if p, _ := s.Search(ctx, catalog.Query{Featured: true, Limit: 10}); !slices.Equal(slugs(p), []string{"design-2"}) {
			t.Errorf("featured: got %v", slugs(p))
		}
	})

	t.Run("Flags", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		for i := 1; i <= 2; i++ {
			d, v := sampleDesign(i, fmt.Sprint("Flagged ", i))
			if err := s.CreateDesign(ctx, d, v); err != nil {
				t.Fatal(err)
			}
		}
		flags := []catalog.Flag{
			{DesignID: "d001", UserID: "u1", Handle: "ada", Reason: "not open: the STL is a paid model", CreatedAt: base},
			{DesignID: "d001", UserID: "u2", Handle: "grace", Reason: "spam", CreatedAt: base.Add(time.Minute)},
			{DesignID: "d002", UserID: "u1", Handle: "ada", Reason: "copied without credit", CreatedAt: base.Add(2 * time.Minute)},
		}
		for _, f := range flags {
			if err := s.AddFlag(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddFlag(ctx, catalog.Flag{DesignID: "d001", UserID: "u1", Handle: "ada", Reason: "again", CreatedAt: base.Add(time.Hour)}); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("a second flag from the same person: got %v, want ErrConflict", err)
		}
		got, err := s.Flags(ctx, 10)
		if err != nil || len(got) != 3 || got[0].DesignID != "d002" || got[2].Reason != flags[0].Reason || !got[1].CreatedAt.Equal(flags[1].CreatedAt) {
			t.Fatalf("Flags: got %+v, %v, want the three, newest first", got, err)
		}
		if got, _ := s.Flags(ctx, 1); len(got) != 1 {
			t.Fatalf("Flags with limit 1: got %d", len(got))
		}
		if err := s.ClearFlags(ctx, "d001"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Flags(ctx, 10); err != nil || len(got) != 1 || got[0].DesignID != "d002" {
			t.Fatalf("after clearing d1: got %+v, %v, want only d2's", got, err)
		}
		if err := s.AddFlag(ctx, catalog.Flag{DesignID: "d001", UserID: "u1", Handle: "ada", Reason: "still a problem", CreatedAt: base.Add(time.Hour)}); err != nil {
			t.Fatalf("flagging again after a maintainer cleared it: %v", err)
		}
	})

	t.Run("ChildrenCountersBlobs", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		parent, pv := sampleDesign(1, "Parent")
		if err := s.CreateDesign(ctx, parent, pv); err != nil {
			t.Fatal(err)
		}
		for i := 2; i <= 3; i++ {
			c, cv := sampleDesign(i, fmt.Sprint("Child ", i))
			c.Parents = []catalog.ParentRef{{DesignID: parent.ID, Slug: parent.Slug, Version: 1, Title: parent.Title, Owner: "ada", License: parent.License}}
			if err := s.CreateDesign(ctx, c, cv); err != nil {
				t.Fatal(err)
			}
		}
		children, err := s.Children(ctx, parent.ID)
		if err != nil || len(children) != 2 || children[0].Slug != "design-2" || children[1].Slug != "design-3" {
			t.Fatalf("Children: got %+v, %v", children, err)
		}
		if err := s.SetCounters(ctx, parent.ID, catalog.Counters{Forks: 2, Makes: 5, JobsOK: 4, JobsFailed: 1}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.DesignByID(ctx, parent.ID); got.Counters != (catalog.Counters{Forks: 2, Makes: 5, JobsOK: 4, JobsFailed: 1}) {
			t.Fatalf("counters: got %+v", got.Counters)
		}
		if err := s.SetCounters(ctx, "no-such-design", catalog.Counters{}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("counters of a missing design: got %v", err)
		}
		keys := map[string]bool{}
		if err := s.ReferencedBlobs(ctx, func(k string) error { keys[k] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 3; i++ {
			if !keys[fmt.Sprintf("%064d", i)] || !keys[fmt.Sprintf("%064d", 1000+i)] {
				t.Fatalf("ReferencedBlobs: got %v, missing design %d's files", keys, i)
			}
		}
	})
}
