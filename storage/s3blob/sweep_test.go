package s3blob

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/fabcommons/fabcommons/storage/externaltest"
)

// TestSweepAbortsUploadsLeftBehind: the parts of a multipart upload that a crash cut
// off (begun under tmp/, never completed nor aborted) are dropped by Sweep once old
// enough, as leftover objects under tmp/ are, and an hour old at least; a younger one
// is left to finish.
func TestSweepAbortsUploadsLeftBehind(t *testing.T) {
	t.Parallel()
	m := externaltest.NeedMinIO(t)
	ctx := context.Background()
	s, err := Open(ctx, Config{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey, Bucket: externaltest.UniqueName("sweep-")})
	if err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: s.client}
	id, err := core.NewMultipartUpload(ctx, s.bucket, "tmp/cut-off", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.PutObjectPart(ctx, s.bucket, "tmp/cut-off", id, 1, bytes.NewReader(make([]byte, 1<<20)), 1<<20, minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
	uploads := func() int {
		n := 0
		for u := range s.client.ListIncompleteUploads(ctx, s.bucket, "", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			n++
		}
		return n
	}
	if n := uploads(); n != 1 {
		t.Fatalf("uploads under way before the sweep: %d, want 1", n)
	}
	if n, err := s.Sweep(ctx, 0); err != nil || n != 0 || uploads() != 1 {
		t.Fatalf("a sweep of all: %d, %v; want the upload begun under an hour ago left, as it may still be sending", n, err)
	}
	s.uploadAge = 0 // as if it had begun an hour ago
	if n, err := s.Sweep(ctx, time.Hour); err != nil || n != 0 || uploads() != 1 {
		t.Fatalf("a sweep of what is over an hour old: %d, %v; want the young upload left", n, err)
	}
	if n, err := s.Sweep(ctx, 0); err != nil || n != 1 {
		t.Fatalf("a sweep of all: %d, %v; want the upload aborted", n, err)
	}
	if n := uploads(); n != 0 {
		t.Fatalf("uploads under way after the sweep: %d, want none", n)
	}
}
