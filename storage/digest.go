package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// DigestReader hashes what is read through it and fails with ErrTooLarge once more than
// its limit has been read. Backends use it to stream uploads without holding them.
type DigestReader struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	limit int64
	err   error // the first error other than io.EOF, kept for callers that lose it
}

// NewDigestReader reads r, allowing at most limit bytes.
func NewDigestReader(r io.Reader, limit int64) *DigestReader {
	return &DigestReader{r: r, h: sha256.New(), limit: limit}
}

func (d *DigestReader) Read(p []byte) (int, error) {
	if d.n > d.limit {
		return 0, fmt.Errorf("blob over %d bytes: %w", d.limit, ErrTooLarge)
	}
	// Read one byte past the limit so that exactly-limit content is accepted and
	// limit+1 is refused without reading the rest of the stream.
	if max := d.limit - d.n + 1; int64(len(p)) > max {
		p = p[:max]
	}
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	d.n += int64(n)
	if d.n > d.limit {
		err = fmt.Errorf("blob over %d bytes: %w", d.limit, ErrTooLarge)
	}
	if err != nil && err != io.EOF && d.err == nil {
		d.err = err
	}
	return n, err
}

// Err is the first error the source returned other than io.EOF, or the limit error.
// Some clients (minio-go) read io.ErrUnexpectedEOF as a normal end of data; checking Err
// after the copy keeps a dropped upload from being stored as if complete.
func (d *DigestReader) Err() error { return d.err }

// Size is the number of bytes read so far.
func (d *DigestReader) Size() int64 { return d.n }

// Key is the lowercase hex SHA-256 of what was read so far.
func (d *DigestReader) Key() string { return hex.EncodeToString(d.h.Sum(nil)) }

// Check compares the finished digest with want (ignored when empty).
func (d *DigestReader) Check(want string) error {
	if want != "" && d.Key() != want {
		return fmt.Errorf("got sha256 %s, want %s: %w", d.Key(), want, ErrDigestMismatch)
	}
	return nil
}
