package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/storage"
)

// memStore is a Store that keeps what it is loaded with.
type memStore struct{ loaded []any }

func (m *memStore) Dump(ctx context.Context, put func(any) error) error {
	for _, v := range m.loaded {
		if err := put(v); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Load(ctx context.Context, next func() (any, error)) error {
	for {
		v, err := next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		m.loaded = append(m.loaded, v)
	}
}

// memBlobs keeps blobs in a map; Put checks the hash as the real stores do.
type memBlobs struct{ m map[string][]byte }

func (b *memBlobs) Put(ctx context.Context, r io.Reader, limit int64, want string) (storage.BlobInfo, error) {
	d := storage.NewDigestReader(r, limit)
	data, err := io.ReadAll(d)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	if err := d.Check(want); err != nil {
		return storage.BlobInfo{}, err
	}
	b.m[d.Key()] = data
	return storage.BlobInfo{Key: d.Key(), Size: int64(len(data))}, nil
}

func (b *memBlobs) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	data, ok := b.m[key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (b *memBlobs) Stat(ctx context.Context, key string) (storage.BlobInfo, error) {
	data, ok := b.m[key]
	if !ok {
		return storage.BlobInfo{}, storage.ErrNotFound
	}
	return storage.BlobInfo{Key: key, Size: int64(len(data)), ModTime: time.Now()}, nil
}

func (b *memBlobs) Delete(ctx context.Context, key string) error { delete(b.m, key); return nil }
func (b *memBlobs) List(ctx context.Context, prefix string, fn func(storage.BlobInfo) error) error {
	return nil
}
func (b *memBlobs) Sweep(ctx context.Context, olderThan time.Duration) (int, error) { return 0, nil }
func (b *memBlobs) Ping(ctx context.Context) error                                  { return nil }

// archiveOf builds an archive of header and records (lines) with one blob.
func archiveOf(header, records, blob []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	key := storage.NewDigestReader(bytes.NewReader(blob), 1<<20)
	io.Copy(io.Discard, key)
	writeEntry(tw, headerName, int64(len(header)), bytes.NewReader(header))
	writeEntry(tw, blobPrefix+key.Key(), int64(len(blob)), bytes.NewReader(blob))
	writeEntry(tw, recordsName, int64(len(records)), bytes.NewReader(records))
	tw.Close()
	return buf.Bytes()
}

// FuzzImport: whatever the header and records hold, Import answers with an error or
// loads records that export again to the same lines; it never panics or hangs.
func FuzzImport(f *testing.F) {
	header := []byte(`{"format":"fabcommons-archive","version":1,"records":{"user":1,"version":1}}`)
	f.Add(header, []byte(`{"kind":"user","data":{"id":"u1","handle":"ada","admin":true,"created_at":"2026-03-01T12:00:00Z","password_hash":"$argon2id$x"}}
{"kind":"version","data":{"design_id":"d1","number":1,"message":"m","license":"CC0-1.0","files":[],"bom":[],"created_by":"ada","created_at":"2026-03-01T12:00:00Z"}}
`))
	f.Add(header, []byte(`{"kind":"job","data":{"id":"j1","events":null,"rev":3}}`+"\n"))
	f.Add([]byte(`{"format":"fabcommons-archive","version":2}`), []byte{})
	f.Add(header, []byte(`{"kind":"lab","data":{}}`+"\n"+`{"kind":"user","data":{}}`+"\n"))
	f.Fuzz(func(t *testing.T, header, records []byte) {
		ctx := context.Background()
		dst, blobs := &memStore{}, &memBlobs{m: map[string][]byte{}}
		_, err := Import(ctx, bytes.NewReader(archiveOf(header, records, []byte("a blob"))), dst, blobs, Options{})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		// What was accepted exports, and that export imports to the same records.
		var out bytes.Buffer
		if _, err := Export(ctx, dst, blobs, &out, Options{}); err != nil {
			t.Fatalf("export of what was imported: %v", err)
		}
		again := &memStore{}
		if _, err := Import(ctx, &out, again, &memBlobs{m: map[string][]byte{}}, Options{}); err != nil {
			t.Fatalf("import of the export: %v", err)
		}
		if len(again.loaded) != len(dst.loaded) {
			t.Fatalf("%d records, then %d", len(dst.loaded), len(again.loaded))
		}
	})
}
