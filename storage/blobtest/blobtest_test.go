package blobtest_test

import (
	"context"
	"testing"

	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/blobtest"
	"github.com/fabcommons/fabcommons/storage/externaltest"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/s3blob"
)

func TestBlobConformance(t *testing.T) {
	t.Parallel()
	t.Run("local", func(t *testing.T) {
		t.Parallel()
		blobtest.Exercise(t, func(t *testing.T) storage.Blobs {
			s, err := localblob.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("minio", func(t *testing.T) {
		t.Parallel()
		m := externaltest.NeedMinIO(t)
		blobtest.Exercise(t, func(t *testing.T) storage.Blobs {
			s, err := s3blob.Open(context.Background(), s3blob.Config{
				Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey,
				Bucket: externaltest.UniqueName("blobtest-"),
			})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}
