// Package s3blob stores content-addressed blobs in an S3 bucket (MinIO or any S3
// service) through minio-go. Uploads go to tmp/<random> while hashed, then are copied
// server-side to sha256/<key>: a final key only ever holds complete, verified content.
package s3blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/fabcommons/fabcommons/storage"
)

// Config says where the bucket is.
type Config struct {
	Endpoint  string // host:port
	AccessKey string
	SecretKey string
	Bucket    string
	Region    string
	TLS       bool
}

// ParseURL reads s3://KEY:SECRET@host:port/bucket?tls=false&region=us-east-1.
// Without KEY:SECRET the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are used.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("blob URL: %w", err)
	}
	if u.Scheme != "s3" {
		return Config{}, fmt.Errorf("blob URL: scheme %q, want s3", u.Scheme)
	}
	c := Config{Endpoint: u.Host, Bucket: strings.Trim(u.Path, "/"), TLS: true, Region: u.Query().Get("region")}
	if c.Endpoint == "" || c.Bucket == "" || strings.Contains(c.Bucket, "/") {
		return Config{}, fmt.Errorf("blob URL: want s3://KEY:SECRET@host:port/bucket")
	}
	if v := u.Query().Get("tls"); v != "" {
		if c.TLS, err = strconv.ParseBool(v); err != nil {
			return Config{}, fmt.Errorf("blob URL: tls=%q: want true or false", v)
		}
	}
	if u.User != nil {
		c.AccessKey = u.User.Username()
		c.SecretKey, _ = u.User.Password()
	}
	return c, nil
}

// Store is a blob store in one bucket.
type Store struct {
	client *minio.Client
	bucket string
	// uploadAge is the least age at which Sweep aborts an upload under way: a slow
	// one may still be sending.
	uploadAge time.Duration
}

var _ storage.Blobs = (*Store)(nil)

// An upload of unknown length is sent in parts of partSize, partThreads at once, each
// from a buffer of its own (partThreads x partSize bytes held per upload): while one
// part is sent the next is read, so an upload that is analysed as it is read (see
// catalog) is not held up part by part. One part at a time of 16 MiB, a 200 MB upload
// took 4.4-5.4 s on loopback MinIO; scripts/bench-upload.sh.
const (
	partSize    = 8 << 20
	partThreads = 2
)

// Open connects and creates the bucket if it does not exist.
func Open(ctx context.Context, c Config) (*Store, error) {
	creds := credentials.NewStaticV4(c.AccessKey, c.SecretKey, "")
	if c.AccessKey == "" {
		creds = credentials.NewEnvAWS()
	}
	// Three tries, not the client's ten: with the server away, ten took 3 to 7 s a call
	// here (backoff from 200 ms, capped at 1 s) before the hub could answer 503, three
	// under 1 s; the hub's clients retry on their own.
	client, err := minio.New(c.Endpoint, &minio.Options{Creds: creds, Secure: c.TLS, Region: c.Region, MaxRetries: 3})
	if err != nil {
		return nil, fmt.Errorf("open s3 %s: %w", c.Endpoint, err)
	}
	exists, err := client.BucketExists(ctx, c.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open s3 bucket %s: %w", c.Bucket, err)
	}
	if !exists {
		err := client.MakeBucket(ctx, c.Bucket, minio.MakeBucketOptions{Region: c.Region})
		if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return nil, fmt.Errorf("create s3 bucket %s: %w", c.Bucket, err)
		}
	}
	return &Store{client: client, bucket: c.Bucket, uploadAge: time.Hour}, nil
}

func objectName(key string) string { return "sha256/" + key }

func (s *Store) Put(ctx context.Context, r io.Reader, limit int64, want string) (storage.BlobInfo, error) {
	if want != "" && !storage.ValidKey(want) {
		return storage.BlobInfo{}, storage.ErrInvalidKey
	}
	tmp := "tmp/" + randomName()
	d := storage.NewDigestReader(r, limit)
	_, err := s.client.PutObject(ctx, s.bucket, tmp, d, -1, minio.PutObjectOptions{PartSize: partSize, NumThreads: partThreads, ConcurrentStreamParts: true})
	// The temporary object goes whatever happens next; a crash before this line leaves
	// it for Sweep.
	defer s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, tmp, minio.RemoveObjectOptions{})
	if d.Err() != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob: %w", d.Err())
	}
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob: %w", mapErr(err))
	}
	if err := d.Check(want); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob: %w", err)
	}
	key := d.Key()
	if info, err := s.Stat(ctx, key); err == nil {
		return info, nil // already stored: content addressing makes this a no-op
	}
	_, err = s.client.CopyObject(ctx,
		minio.CopyDestOptions{Bucket: s.bucket, Object: objectName(key)},
		minio.CopySrcOptions{Bucket: s.bucket, Object: tmp})
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("put blob %s: promote: %w", key, mapErr(err))
	}
	return s.Stat(ctx, key)
}

func randomName() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if !storage.ValidKey(key) {
		return nil, storage.ErrInvalidKey
	}
	if offset < 0 {
		return nil, fmt.Errorf("get blob %s: negative offset", key)
	}
	if length == 0 {
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	opts := minio.GetObjectOptions{}
	switch {
	case length > 0:
		opts.SetRange(offset, offset+length-1)
	case offset > 0:
		opts.SetRange(offset, 0)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, objectName(key), opts)
	if err == nil {
		_, err = obj.Stat() // GetObject is lazy: this sends the request
	}
	if err != nil {
		if obj != nil {
			obj.Close()
		}
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			return io.NopCloser(strings.NewReader("")), nil // offset at or past the end
		}
		return nil, fmt.Errorf("get blob %s: %w", key, mapErr(err))
	}
	return mappedReader{obj}, nil
}

// mappedReader maps the errors of a stream from the bucket, so a server that goes away
// mid-read is ErrUnavailable to whoever reads.
type mappedReader struct{ obj *minio.Object }

func (r mappedReader) Read(p []byte) (int, error) {
	n, err := r.obj.Read(p)
	if err != nil && err != io.EOF {
		err = mapErr(err)
	}
	return n, err
}

func (r mappedReader) Close() error { return r.obj.Close() }

func (s *Store) Stat(ctx context.Context, key string) (storage.BlobInfo, error) {
	if !storage.ValidKey(key) {
		return storage.BlobInfo{}, storage.ErrInvalidKey
	}
	oi, err := s.client.StatObject(ctx, s.bucket, objectName(key), minio.StatObjectOptions{})
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("stat blob %s: %w", key, mapErr(err))
	}
	return storage.BlobInfo{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

func (s *Store) Delete(ctx context.Context, key string) error {
	if !storage.ValidKey(key) {
		return storage.ErrInvalidKey
	}
	if err := s.client.RemoveObject(ctx, s.bucket, objectName(key), minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete blob %s: %w", key, mapErr(err))
	}
	return nil
}

func (s *Store) List(ctx context.Context, prefix string, fn func(storage.BlobInfo) error) error {
	if !storage.ValidPrefix(prefix) {
		return storage.ErrInvalidKey
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn ends the walk early
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: objectName(prefix), Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("list blobs: %w", mapErr(oi.Err))
		}
		key := strings.TrimPrefix(oi.Key, "sha256/")
		if !storage.ValidKey(key) {
			continue
		}
		if err := fn(storage.BlobInfo{Key: key, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) Sweep(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: "tmp/", Recursive: true}) {
		if oi.Err != nil {
			return removed, fmt.Errorf("sweep blob uploads: %w", mapErr(oi.Err))
		}
		if oi.LastModified.After(cutoff) {
			continue
		}
		if err := s.client.RemoveObject(ctx, s.bucket, oi.Key, minio.RemoveObjectOptions{}); err == nil {
			removed++
		}
	}
	// The parts of an upload a crash cut off stay in the bucket until the upload is
	// aborted (MinIO drops them after a day; S3 keeps them, and bills them, unless a
	// lifecycle rule says otherwise). Every upload is under tmp/; they are listed
	// without a prefix, as MinIO lists by a prefix only an object's whole name (and
	// lists only the uploads begun through it since it started: its own clean-up has
	// the rest). An upload is aborted only when begun uploadAge (an hour) ago at least,
	// whatever olderThan says.
	core := minio.Core{Client: s.client}
	uploadCutoff := time.Now().Add(-max(olderThan, s.uploadAge))
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, "", true) {
		if u.Err != nil {
			return removed, fmt.Errorf("sweep blob uploads: %w", mapErr(u.Err))
		}
		if !strings.HasPrefix(u.Key, "tmp/") || u.Initiated.After(uploadCutoff) {
			continue
		}
		if err := core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID); err == nil {
			removed++
		}
	}
	return removed, nil
}

func (s *Store) Ping(ctx context.Context) error {
	_, err := s.client.BucketExists(ctx, s.bucket)
	return mapErr(err)
}

// mapErr turns the client's errors into storage kinds: a missing object is
// ErrNotFound; a server that cannot be reached, cuts a connection or answers 5xx (down,
// restarting, overloaded) is ErrUnavailable, which the hub answers with 503. The
// client's error stays in the chain for the log.
func mapErr(err error) error {
	if err == nil || errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrNotFound) {
		return err
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || resp.Code == "NotFound":
		return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
	case resp.Code == "XMinioStorageFull" || resp.Code == "QuotaExceeded" || resp.Code == "XMinioAdminBucketQuotaExceeded": // MinIO's cmd/api-errors.go
		return fmt.Errorf("s3: %w: %w", storage.ErrFull, err)
	case unreachable(err, resp):
		return fmt.Errorf("s3: %w: %w", storage.ErrUnavailable, err)
	}
	return err
}

// unreachable: a transport error (refused, reset, cut mid-body, timed out), a deadline,
// or an answer of 5xx.
func unreachable(err error, resp minio.ErrorResponse) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded) || resp.StatusCode >= 500
}
