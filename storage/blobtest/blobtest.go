// Package blobtest is the conformance suite every storage.Blobs backend passes.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

func keyOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func readAll(t *testing.T, bs storage.Blobs, key string, off, n int64) []byte {
	t.Helper()
	rc, err := bs.Get(context.Background(), key, off, n)
	if err != nil {
		t.Fatalf("Get(%s, %d, %d): %v", key[:8], off, n, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key[:8], err)
	}
	return b
}

// failingReader yields its data, then an error, as a client that drops mid-upload.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// Exercise runs the suite. newStore returns an empty store that the test may fill.
func Exercise(t *testing.T, newStore func(t *testing.T) storage.Blobs) {
	ctx := context.Background()

	t.Run("PutGetStat", func(t *testing.T) {
		t.Parallel()
		bs := newStore(t)
		data := []byte("solid cube\nendsolid cube\n")
		info, err := bs.Put(ctx, bytes.NewReader(data), 1<<20, "")
		if err != nil {
			t.Fatal(err)
		}
		if info.Key != keyOf(data) || info.Size != int64(len(data)) {
			t.Fatalf("got %+v, want key %s size %d", info, keyOf(data), len(data))
		}
		if got := readAll(t, bs, info.Key, 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("got %q, want %q", got, data)
		}
		st, err := bs.Stat(ctx, info.Key)
		if err != nil || st.Size != int64(len(data)) {
			t.Fatalf("Stat: got %+v, %v; want size %d", st, err, len(data))
		}
	})

	t.Run("Ranges", func(t *testing.T) {
		t.Parallel()
		bs := newStore(t)
		data := []byte("0123456789abcdefghij")
		info, err := bs.Put(ctx, bytes.NewReader(data), 1<<20, keyOf(data))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			off, n int64
			want   string
		}{
			{0, 5, "01234"}, {5, 5, "56789"}, {15, -1, "fghij"}, {18, 10, "ij"}, {3, 0, ""}, {20, -1, ""},
		} {
			if got := string(readAll(t, bs, info.Key, tc.off, tc.n)); got != tc.want {
				t.Errorf("Get(off %d, n %d): got %q, want %q", tc.off, tc.n, got, tc.want)
			}
		}
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		bs := newStore(t)
		key := keyOf([]byte("never stored"))
		if _, err := bs.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat: got %v, want ErrNotFound", err)
		}
		if _, err := bs.Get(ctx, key, 0, -1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get: got %v, want ErrNotFound", err)
		}
		if err := bs.Delete(ctx, key); err != nil {
			t.Errorf("Delete of a missing blob: got %v, want nil", err)
		}
	})

	t.Run("BadKeys", func(t *testing.T) {
		t.Parallel()
		bs := newStore(t)
		for _, key := range []string{"", "../../etc/passwd", strings.Repeat("A", 64), strings.Repeat("a", 63), strings.Repeat("a", 63) + "/"} {
			if _, err := bs.Stat(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("Stat(%q): got %v, want ErrInvalidKey", key, err)
			}
			if _, err := bs.Get(ctx, key, 0, -1); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("Get(%q): got %v, want ErrInvalidKey", key, err)
			}
			if err := bs.Delete(ctx, key); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("Delete(%q): got %v, want ErrInvalidKey", key, err)
			}
		}
		if err := bs.List(ctx, "../", func(storage.BlobInfo) error { return nil }); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("List(\"../\"): got %v, want ErrInvalidKey", err)
		}
	})

	t.Run("LimitStoresNothing", func(t *testing.T) {
		t.Parallel()
		bs := newStore(t)
		data := bytes.Repeat([]byte("x"), 1000)
		if _, err := bs.Put(ctx, bytes.NewReader(data), 999, ""); !errors.Is(err, storage.ErrTooLarge) {
			t.Fatalf("Put over limit: got %v, want ErrTooLarge", err)
		}
		if _, err := bs.Stat(ctx, keyOf(data)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after a refused Put: got %v, want ErrNotFound", err)
		}
		if _, err := bs.Put(ctx, bytes.NewReader(data), 1000, ""); err != nil {
			t.Fatalf("Put at exactly the limit: %v", err)
		}
	})

	t.Run("DigestMismatchStoresNothing", func(t *testing.T) {
		t.Parallel()
		bs := newStore(t)
		data := []byte("what arrived")
		wrong := keyOf([]byte("what was promised"))
		if _, err := bs.Put(ctx, bytes.NewReader(data), 1<<20, wrong); !errors.Is(err, storage.ErrDigestMismatch) {
			t.Fatalf("got %v, want ErrDigestMismatch", err)
		}
		for _, key := range []string{wrong, keyOf(data)} {
			if _, err := bs.Stat(ctx, key); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Stat(%s): got %v, want ErrNotFound", key[:8], err)
			}
		}
	})

	t.Run("BrokenUploadStoresNothing", func(t *testing.T) {
		t.Parallel()
		bs := newStore(t)
		data := bytes.Repeat([]byte("partial"), 1000)
		_, err := bs.Put(ctx, &failingReader{data: data, err: io.ErrUnexpectedEOF}, 1<<20, "")
		if err == nil {
			t.Fatal("Put from a failing reader: got nil error")
		}
		if _, err := bs.Stat(ctx, keyOf(data)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
		n := 0
		bs.List(ctx, "", func(storage.BlobInfo) error { n++; return nil })
		if n != 0 {
			t.Fatalf("got %d blobs listed after a broken upload, want 0", n)
		}
	})

	t.Run("SameContentTwice", func(t *testing.T) {
		t.Parallel()
		bs := newStore(t)
		data := []byte("fork that changes nothing")
		a, err := bs.Put(ctx, bytes.NewReader(data), 1<<20, "")
		if err != nil {
			t.Fatal(err)
		}
		b, err := bs.Put(ctx, bytes.NewReader(data), 1<<20, "")
		if err != nil {
			t.Fatal(err)
		}
		if a.Key != b.Key {
			t.Fatalf("got keys %s and %s, want one", a.Key, b.Key)
		}
	})

	t.Run("ConcurrentWritersOfOneKey", func(t *testing.T) {
		t.Parallel()
		bs := newStore(t)
		data := bytes.Repeat([]byte("facet normal 0 0 1\n"), 20000)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := bs.Put(ctx, bytes.NewReader(data), 1<<24, keyOf(data))
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent Put: %v", err)
			}
		}
		if got := readAll(t, bs, keyOf(data), 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes back, want the %d written", len(got), len(data))
		}
	})

	t.Run("ListAndDelete", func(t *testing.T) {
		t.Parallel()
		bs := newStore(t)
		want := map[string]bool{}
		for i := range 20 {
			data := []byte(strings.Repeat("v", i+1))
			info, err := bs.Put(ctx, bytes.NewReader(data), 1<<20, "")
			if err != nil {
				t.Fatal(err)
			}
			want[info.Key] = true
		}
		got := map[string]bool{}
		if err := bs.List(ctx, "", func(b storage.BlobInfo) error { got[b.Key] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("List: got %d keys, want %d", len(got), len(want))
		}
		var some string
		for k := range want {
			some = k
			break
		}
		prefixed := 0
		bs.List(ctx, some[:3], func(b storage.BlobInfo) error {
			if !strings.HasPrefix(b.Key, some[:3]) {
				t.Errorf("List(%q) gave %s", some[:3], b.Key)
			}
			prefixed++
			return nil
		})
		if prefixed < 1 {
			t.Errorf("List(%q): got %d, want at least 1", some[:3], prefixed)
		}
		stop := errors.New("stop")
		calls := 0
		if err := bs.List(ctx, "", func(storage.BlobInfo) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
			t.Errorf("List stopping early: got %v after %d calls, want stop after 1", err, calls)
		}
		if err := bs.Delete(ctx, some); err != nil {
			t.Fatal(err)
		}
		if _, err := bs.Stat(ctx, some); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after Delete: got %v, want ErrNotFound", err)
		}
	})

	t.Run("SweepKeepsFreshUploads", func(t *testing.T) {
		t.Parallel()
		bs := newStore(t)
		if _, err := bs.Put(ctx, strings.NewReader("kept"), 100, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := bs.Sweep(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := bs.Stat(ctx, keyOf([]byte("kept"))); err != nil {
			t.Fatalf("Sweep removed a stored blob: %v", err)
		}
		if err := bs.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}
