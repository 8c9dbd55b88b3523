package localblob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// setup is a store holding n blobs of different sizes, and their contents by key.
func setup(t *testing.T, n int) (*Store, map[string][]byte) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for i := range n {
		data := bytes.Repeat([]byte(fmt.Sprintf("blob %d;", i)), 1+i*300)
		info, err := s.Put(context.Background(), bytes.NewReader(data), 1<<30, "")
		if err != nil {
			t.Fatal(err)
		}
		want[info.Key] = data
	}
	// A half-written upload is not a blob and must not be copied.
	os.WriteFile(filepath.Join(s.root, "tmp", "upload-123"), []byte("half"), 0o600)
	return s, want
}

func TestCopyTo(t *testing.T) {
	t.Parallel()
	for _, link := range []bool{true, false} {
		t.Run(fmt.Sprint("link=", link), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, want := setup(t, 20)
			var total int64
			for _, d := range want {
				total += int64(len(d))
			}
			dest := filepath.Join(t.TempDir(), "copy")
			var lastDone, lastTotal int64
			stats, err := s.copyTo(ctx, dest, link, func(done, total int64) { lastDone, lastTotal = done, total })
			if err != nil {
				t.Fatal(err)
			}
			wantLinked := 0
			if link {
				wantLinked = len(want)
			}
			if stats != (CopyStats{Blobs: len(want), Bytes: total, Linked: wantLinked}) {
				t.Fatalf("got %+v, want %d blobs, %d bytes, %d linked", stats, len(want), total, wantLinked)
			}
			if lastDone != total || lastTotal != total {
				t.Errorf("progress ended at %d of %d, want %d of %d", lastDone, lastTotal, total, total)
			}
			out, err := Open(dest)
			if err != nil {
				t.Fatal(err)
			}
			for key, data := range want {
				r, err := out.Get(ctx, key, 0, -1)
				if err != nil {
					t.Fatalf("blob %s missing from the copy: %v", key, err)
				}
				got, _ := io.ReadAll(r)
				r.Close()
				if !bytes.Equal(got, data) {
					t.Fatalf("blob %s: got %d bytes, want %d", key, len(got), len(data))
				}
			}
			if tmp, _ := os.ReadDir(filepath.Join(dest, "tmp")); len(tmp) != 0 {
				t.Errorf("the copy's tmp holds %d files, want none", len(tmp))
			}
		})
	}
}

func TestCopyToRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, want := setup(t, 8)

	taken := t.TempDir()
	if _, err := s.CopyTo(ctx, taken, nil); err == nil || !strings.Contains(err.Error(), "file exists") {
		t.Errorf("dest exists: got %v, want an error saying so", err)
	}

	// Damage two blobs on disk (a new file in place, as bit rot would leave it).
	var damaged []string
	for key := range want {
		if len(damaged) == 2 {
			break
		}
		os.Remove(s.path(key))
		os.WriteFile(s.path(key), bytes.Repeat([]byte("x"), len(want[key])), 0o600)
		damaged = append(damaged, key)
	}
	for _, link := range []bool{true, false} {
		dest := filepath.Join(t.TempDir(), "copy")
		_, err := s.copyTo(ctx, dest, link, nil)
		if err == nil || !strings.Contains(err.Error(), "2 of 8 blobs") ||
			!strings.Contains(err.Error(), damaged[0]) || !strings.Contains(err.Error(), damaged[1]) {
			t.Errorf("link=%v: got %v, want an error naming the 2 damaged blobs", link, err)
		}
		if _, err := os.Stat(dest); !os.IsNotExist(err) {
			t.Errorf("link=%v: a failed copy left %s (%v), want it removed", link, dest, err)
		}
	}
	for key := range want {
		if sum := sha256.Sum256(mustRead(t, s.path(key))); hex.EncodeToString(sum[:]) != key && !slices.Contains(damaged, key) {
			t.Errorf("the source blob %s changed", key)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
