package web

import (
	"context"
	"errors"
	"io"
)

// blobSeeker is an io.ReadSeeker over a stored blob, for http.ServeContent: a seek only
// moves the offset; the next read opens the blob there (one request for a Range).
type blobSeeker struct {
	ctx  context.Context
	open func(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	key  string
	size int64
	off  int64
	rc   io.ReadCloser
}

func (b *blobSeeker) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	if b.rc == nil {
		rc, err := b.open(b.ctx, b.key, b.off, -1)
		if err != nil {
			return 0, err
		}
		b.rc = rc
	}
	n, err := b.rc.Read(p)
	b.off += int64(n)
	return n, err
}

func (b *blobSeeker) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	}
	if offset < 0 {
		return 0, errors.New("seek before the start")
	}
	if offset != b.off && b.rc != nil {
		b.rc.Close()
		b.rc = nil
	}
	b.off = offset
	return offset, nil
}

func (b *blobSeeker) Close() error {
	if b.rc != nil {
		return b.rc.Close()
	}
	return nil
}
