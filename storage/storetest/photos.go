package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
)

// ExercisePhotos runs the suite for photos of makes: they are kept on their job
// through every read, and the catalog's ReferencedBlobs names their blobs, so that
// orphan collection leaves them be. newStores returns both stores of one database.
func ExercisePhotos(t *testing.T, newStores func(t *testing.T) (catalog.Store, fabrication.Store)) {
	ctx := context.Background()
	t.Run("PhotosOfMakes", func(t *testing.T) {
		t.Parallel()
		cs, fs := newStores(t)
		o := fabrication.Order{ID: "o1", RequesterID: "u-ada", Requester: "ada", LabID: "lab-a", LabSlug: "a", DesignID: "d1", DesignSlug: "holder",
			Version: 1, Quantity: 2, Files: []string{"base.stl"}, BOMRefs: []string{}, CreatedAt: t0}
		bare := sampleJob("j2", "lab-a", 0, 0)
		if err := fs.CreateOrder(ctx, o, []fabrication.Job{sampleJob("j1", "lab-a", 0, 0), bare}); err != nil {
			t.Fatal(err)
		}
		j, err := fs.Job(ctx, "j1")
		if err != nil {
			t.Fatal(err)
		}
		if j.Photos != nil {
			t.Fatalf("a job without photos: got %v, want nil", j.Photos)
		}
		photos := []fabrication.Photo{
			{Key: fmt.Sprintf("%064d", 501), Size: 2048, ContentType: "image/jpeg", Width: 640, Height: 480, Source: fabrication.PhotoCamera, By: "machine:MK4", At: t0},
			{Key: fmt.Sprintf("%064d", 502), Size: 4096, ContentType: "image/png", Width: 800, Height: 600, Source: fabrication.PhotoOperator, By: "ada", At: t0.Add(1e9)},
		}
		j.State, j.Photos = fabrication.JobDone, photos
		if err := fs.SaveJob(ctx, j, j.Rev); err != nil {
			t.Fatal(err)
		}
		got, err := fs.Job(ctx, "j1")
		if err != nil || !reflect.DeepEqual(got.Photos, photos) {
			t.Fatalf("Job: got %+v, %v; want %+v", got.Photos, err, photos)
		}
		list, err := fs.DesignJobs(ctx, "d1", []string{fabrication.JobDone}, 10)
		if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0].Photos, photos) {
			t.Fatalf("DesignJobs: got %v, %v; want j1 with its photos", list, err)
		}
		keys := map[string]bool{}
		if err := cs.ReferencedBlobs(ctx, func(k string) error { keys[k] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		for _, p := range photos {
			if !keys[p.Key] {
				t.Errorf("ReferencedBlobs: got %v, missing photo %s (orphan collection would delete it)", keys, p.Key)
			}
		}
	})
}
