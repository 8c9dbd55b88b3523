package blobtest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/externaltest"
	"github.com/fabcommons/fabcommons/storage/localblob"
	"github.com/fabcommons/fabcommons/storage/s3blob"
)

// crashContent is what the child process uploads: 8 MiB, of which it sends half
// before it is killed.
func crashContent() []byte {
	b := make([]byte, 8<<20)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// stallingReader hands out the first half, says so on stdout, then blocks forever,
// so the parent can kill the process in the middle of the upload.
type stallingReader struct {
	data []byte
	sent int
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.sent >= len(r.data)/2 {
		fmt.Println("uploading")
		select {}
	}
	n := copy(p, r.data[r.sent:len(r.data)/2])
	r.sent += n
	return n, nil
}

func openFromSpec(spec string) (storage.Blobs, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "local":
		return localblob.Open(arg)
	case "minio":
		return s3blob.Open(context.Background(), s3blob.Config{
			Endpoint: os.Getenv("FAB_TEST_MINIO_ENDPOINT"), AccessKey: os.Getenv("FAB_TEST_MINIO_ACCESS_KEY"),
			SecretKey: os.Getenv("FAB_TEST_MINIO_SECRET_KEY"), Bucket: arg})
	}
	return nil, fmt.Errorf("bad store spec %q", spec)
}

// TestMain runs the child process of TestCrashMidUpload when FAB_CRASH_HELPER names a
// store: it starts an upload and is killed in the middle of it.
func TestMain(m *testing.M) {
	spec := os.Getenv("FAB_CRASH_HELPER")
	if spec == "" {
		os.Exit(m.Run())
	}
	bs, err := openFromSpec(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	bs.Put(context.Background(), &stallingReader{data: crashContent()}, 1<<30, "")
	fmt.Fprintln(os.Stderr, "the upload finished; it should have been killed")
	os.Exit(2)
}

func TestCrashMidUpload(t *testing.T) {
	t.Parallel()
	t.Run("local", func(t *testing.T) {
		t.Parallel()
		crashAndCheck(t, "local:"+t.TempDir())
	})
	t.Run("minio", func(t *testing.T) {
		t.Parallel()
		externaltest.NeedMinIO(t)
		crashAndCheck(t, "minio:"+externaltest.UniqueName("crash-"))
	})
}

func crashAndCheck(t *testing.T, spec string) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "FAB_CRASH_HELPER="+spec)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	started := false
	for sc.Scan() {
		if sc.Text() == "uploading" {
			started = true
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred cleanup runs
		t.Fatal(err)
	}
	cmd.Wait()
	if !started {
		t.Fatal("the child never reached the middle of its upload")
	}

	bs, err := openFromSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := crashContent()
	sum := sha256.Sum256(data)
	key := hex.EncodeToString(sum[:])
	half := sha256.Sum256(data[:len(data)/2])
	for _, k := range []string{key, hex.EncodeToString(half[:])} {
		if _, err := bs.Stat(ctx, k); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after the crash, Stat(%s): got %v, want ErrNotFound", k[:8], err)
		}
	}
	listed := 0
	if err := bs.List(ctx, "", func(storage.BlobInfo) error { listed++; return nil }); err != nil {
		t.Fatal(err)
	}
	if listed != 0 {
		t.Fatalf("after the crash: got %d objects under final keys, want 0", listed)
	}
	if _, err := bs.Sweep(ctx, 0); err != nil {
		t.Fatalf("Sweep after the crash: %v", err)
	}
	info, err := bs.Put(ctx, bytes.NewReader(data), 1<<30, key)
	if err != nil || info.Key != key {
		t.Fatalf("Put after the crash: got %+v, %v", info, err)
	}
}
