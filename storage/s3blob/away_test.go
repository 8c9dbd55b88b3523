package s3blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/externaltest"
)

// TestServerAway stops the MinIO server: every call of the store fails with an error of
// kind storage.ErrUnavailable (the hub answers 503), within a few seconds, as does a
// read of a blob that was under way; once the server is back the same store serves
// again, and the blob stored before is whole.
func TestServerAway(t *testing.T) {
	t.Parallel()
	server, m := externaltest.StartMinIO(t)
	ctx := context.Background()
	s, err := Open(ctx, Config{Endpoint: m.Endpoint, AccessKey: m.AccessKey, SecretKey: m.SecretKey, Bucket: "away"})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 8<<20)
	rand.Read(data)
	info, err := s.Put(ctx, bytes.NewReader(data), int64(len(data)), "")
	if err != nil {
		t.Fatal(err)
	}
	reading, err := s.Get(ctx, info.Key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer reading.Close()
	if _, err := io.ReadFull(reading, make([]byte, 1<<10)); err != nil {
		t.Fatal(err)
	}

	server.Stop()
	_, err = io.Copy(io.Discard, reading)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("a read under way when the server stopped: got %v, want an error of kind ErrUnavailable", err)
	}
	calls := map[string]func() error{
		"Put":  func() error { _, err := s.Put(ctx, bytes.NewReader([]byte("new")), 10, ""); return err },
		"Get":  func() error { _, err := s.Get(ctx, info.Key, 0, -1); return err },
		"Stat": func() error { _, err := s.Stat(ctx, info.Key); return err },
		"Delete": func() error {
			return s.Delete(ctx, "0000000000000000000000000000000000000000000000000000000000000000")
		},
		"List":  func() error { return s.List(ctx, "", func(storage.BlobInfo) error { return nil }) },
		"Sweep": func() error { _, err := s.Sweep(ctx, time.Hour); return err },
		"Ping":  func() error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s with the server away: got %v, want an error of kind ErrUnavailable", name, err)
		}
		t.Logf("%s took %s", name, time.Since(start))
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s with the server away took %s, want an answer within 5 s", name, took)
		}
	}

	server.Start()
	deadline := time.Now().Add(30 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the server came back: %v", s.Ping(ctx))
		}
		time.Sleep(100 * time.Millisecond)
	}
	r, err := s.Get(ctx, info.Key, 0, -1)
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the restart: got %d bytes (%v), want the %d stored", len(got), err, len(data))
	}
}
