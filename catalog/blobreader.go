package catalog

import (
	"context"
	"io"
	"sync"

	"github.com/fabcommons/fabcommons/storage"
)

// Blobs is what the catalog needs of blob storage (storage.Blobs has it).
type Blobs interface {
	Put(ctx context.Context, r io.Reader, limit int64, want string) (storage.BlobInfo, error)
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// blobReaderAt reads a blob at offsets. Readers of meshes read mostly forward, so it
// keeps one stream open and only reopens it (one request) when a read jumps.
type blobReaderAt struct {
	ctx   context.Context
	blobs Blobs
	key   string
	size  int64

	mu     sync.Mutex
	stream io.ReadCloser
	pos    int64 // offset of the stream's next byte
}

func (b *blobReaderAt) ReadAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if off >= b.size {
		return 0, io.EOF
	}
	if b.stream == nil || off != b.pos {
		if b.stream != nil {
			b.stream.Close()
		}
		rc, err := b.blobs.Get(b.ctx, b.key, off, -1)
		if err != nil {
			b.stream = nil
			return 0, err
		}
		b.stream, b.pos = rc, off
	}
	want := min(int64(len(p)), b.size-off)
	n, err := io.ReadFull(b.stream, p[:want])
	b.pos += int64(n)
	if err != nil {
		b.stream.Close()
		b.stream = nil
		return n, err
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

func (b *blobReaderAt) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stream != nil {
		return b.stream.Close()
	}
	return nil
}
