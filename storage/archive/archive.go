package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
)

// Store is what a backend gives the archive. Values are the domain types: account.User,
// account.Token, catalog.Design, catalog.Version, catalog.Flag, fabrication.Lab,
// fabrication.Member, fabrication.JoinToken, fabrication.Machine, fabrication.Order,
// fabrication.Job, fabrication.Usage, fabrication.LedgerEntry, webhook.Hook,
// webhook.Delivery, federation.Key, federation.Follow, federation.Follower,
// federation.Block and federation.RemoteMake.
type Store interface {
	// Dump calls put with every value the store holds, kinds in Kinds order and each
	// kind in the order of its key, all read from one snapshot where the backend can
	// take one.
	Dump(ctx context.Context, put func(v any) error) error
	// Load writes the values next returns (in Kinds order) until it returns io.EOF,
	// into a store that holds no users and no designs; it refuses any other before
	// writing anything.
	Load(ctx context.Context, next func() (any, error)) error
}

// The archive's layout: a tar stream of the header, then every blob, then the records,
// so that an import whose blobs fail has written nothing but blobs (which the orphan
// collector removes), and records arrive only when what they refer to is in place.
const (
	headerName  = "fabcommons-archive.json"
	recordsName = "records.jsonl"
	blobPrefix  = "blobs/"
	format      = "fabcommons-archive"
	// version 2 added photos of makes on jobs, pictures' sizes on files, a design's
	// licensor, hooks for the whole hub, the federation kinds, remote designs and remote makes; a version 1 archive is
	// read as it is (it has none of them). A hub refuses a newer archive, whose records
	// it would otherwise load without what it does not know.
	version   = 2
	maxLine   = 64 << 20 // one record; a job's log is the longest
	maxHeader = 1 << 20
)

// Header is the archive's first entry.
type Header struct {
	Format    string           `json:"format"`
	Version   int              `json:"version"`
	CreatedAt time.Time        `json:"created_at"`
	Public    bool             `json:"public"` // secrets were left out
	Records   map[string]int64 `json:"records"`
	Blobs     int64            `json:"blobs"`
	BlobBytes int64            `json:"blob_bytes"`
}

// Options tune Export and Import.
type Options struct {
	// Public leaves out every secret (password and token hashes, emails, leases,
	// reports, webhooks, federation's keys, follows and blocks, and the files of hidden
	// designs): an archive to share a
	// commons' content.
	Public bool
	// Progress, if set, hears the bytes of blobs copied so far and in all.
	Progress func(done, total int64)
}

// ErrNotEmpty refuses an import into a store that already holds users or designs.
var ErrNotEmpty = fmt.Errorf("the target store is not empty: import only loads into a new store: %w", storage.ErrConflict)

// Export writes everything src and blobs hold to w. The records are read first, from
// one snapshot, into a spool file; blobs never change once written and are not deleted
// while a version names them, so those the records name are all there to copy after.
func Export(ctx context.Context, src Store, blobs storage.Blobs, w io.Writer, opt Options) (Header, error) {
	spool, err := os.CreateTemp("", "fabcommons-export-*.jsonl")
	if err != nil {
		return Header{}, err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	h := Header{Format: format, Version: version, CreatedAt: time.Now().UTC().Truncate(time.Millisecond), Public: opt.Public,
		Records: map[string]int64{}}
	sizes := map[string]int64{}
	local := map[string]bool{}  // blobs a local file names: they must be there
	remote := map[string]bool{} // blobs a remote design's file names: there once fetched
	hidden := map[string]bool{}
	bw := bufio.NewWriterSize(spool, 1<<20)
	err = src.Dump(ctx, func(v any) error {
		kind, rec, keep := record(v, opt.Public, hidden)
		if !keep {
			return nil
		}
		if ver, ok := v.(catalog.Version); ok {
			for _, f := range ver.Files {
				sizes[f.SHA256] = f.Size
				if f.Origin != "" {
					remote[f.SHA256] = true
				} else {
					local[f.SHA256] = true
				}
			}
		}
		if j, ok := rec.(Job); ok {
			for _, p := range j.Photos {
				sizes[p.Key] = p.Size
			}
		}
		line, err := json.Marshal(struct {
			Kind string `json:"kind"`
			Data any    `json:"data"`
		}{kind, rec})
		if err != nil {
			return err
		}
		h.Records[kind]++
		bw.Write(line)
		return bw.WriteByte('\n')
	})
	if err != nil {
		return Header{}, fmt.Errorf("read the store: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return Header{}, fmt.Errorf("spool the records: %w", err)
	}
	// A remote design's file not fetched yet has no blob: it is fetched when first
	// needed, on the hub that imports the archive as on this one.
	for k := range remote {
		if local[k] {
			continue
		}
		if _, err := blobs.Stat(ctx, k); errors.Is(err, storage.ErrNotFound) {
			delete(sizes, k)
		} else if err != nil {
			return Header{}, fmt.Errorf("blob %s: %w", k, err)
		}
	}
	keys := make([]string, 0, len(sizes))
	for k, n := range sizes {
		keys = append(keys, k)
		h.BlobBytes += n
	}
	slices.Sort(keys)
	h.Blobs = int64(len(keys))

	tw := tar.NewWriter(w)
	head, _ := json.MarshalIndent(h, "", "  ")
	if err := writeEntry(tw, headerName, int64(len(head)), bytes.NewReader(head)); err != nil {
		return Header{}, err
	}
	var done int64
	for _, key := range keys {
		n, err := copyBlob(ctx, tw, blobs, key, sizes[key])
		if err != nil {
			return Header{}, err
		}
		done += n
		if opt.Progress != nil {
			opt.Progress(done, h.BlobBytes)
		}
	}
	size, err := spool.Seek(0, io.SeekEnd)
	if err != nil {
		return Header{}, err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return Header{}, err
	}
	if err := writeEntry(tw, recordsName, size, spool); err != nil {
		return Header{}, err
	}
	return h, tw.Close()
}

func writeEntry(tw *tar.Writer, name string, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := io.CopyN(tw, r, size); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// copyBlob writes one blob, checking that what the store gave is what its key says.
func copyBlob(ctx context.Context, tw *tar.Writer, blobs storage.Blobs, key string, want int64) (int64, error) {
	info, err := blobs.Stat(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("blob %s, which a version names: %w (run fabhub check)", key, err)
	}
	if info.Size != want {
		return 0, fmt.Errorf("blob %s is %d bytes, its version says %d (run fabhub check)", key, info.Size, want)
	}
	rc, err := blobs.Get(ctx, key, 0, -1)
	if err != nil {
		return 0, fmt.Errorf("read blob %s: %w", key, err)
	}
	defer rc.Close()
	sum := sha256.New()
	if err := writeEntry(tw, blobPrefix+key, info.Size, io.TeeReader(rc, sum)); err != nil {
		return 0, err
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != key {
		return 0, fmt.Errorf("blob %s: the store gave bytes that hash to %s (run fabhub check)", key, got)
	}
	return info.Size, nil
}

// record turns a domain value into its kind and what the archive writes, or says to
// leave it out of a public archive. hidden collects the hidden designs, whose versions
// a public archive leaves out (Dump gives designs before versions).
func record(v any, public bool, hidden map[string]bool) (string, any, bool) {
	switch v := v.(type) {
	case account.User:
		if public {
			v.PasswordHash, v.Email = "", ""
		}
		return KindUser, FromUser(v), true
	case account.Token:
		return KindToken, FromToken(v), !public
	case catalog.Design:
		list(&v.Tags)
		list(&v.Parents)
		if v.Hidden {
			hidden[v.ID] = true
		}
		return KindDesign, FromDesign(v), true
	case catalog.Version:
		list(&v.Files)
		list(&v.BOM)
		return KindVersion, v, !public || !hidden[v.DesignID]
	case catalog.Flag:
		return KindFlag, FromFlag(v), !public
	case fabrication.Lab:
		return KindLab, v, true
	case fabrication.Member:
		return KindMember, FromMember(v), true
	case fabrication.JoinToken:
		return KindJoinToken, FromJoinToken(v), !public
	case fabrication.Machine:
		list(&v.Materials)
		list(&v.Tags)
		if public {
			v.TokenHash = ""
		}
		return KindMachine, FromMachine(v), true
	case fabrication.Order:
		list(&v.Files)
		list(&v.BOMRefs)
		return KindOrder, FromOrder(v), true
	case fabrication.Job:
		list(&v.Events)
		list(&v.Tags)
		if public {
			v.LeaseHash = ""
		}
		if public && hidden[v.DesignID] {
			v.Photos = nil // photos of a hidden design's makes stay with its files
		}
		return KindJob, FromJob(v), true
	case fabrication.Usage:
		return KindUsage, FromUsage(v), true
	case fabrication.LedgerEntry:
		list(&v.Holds)
		return KindLedger, FromLedger(v), true
	case webhook.Hook: // its secret and its URL are the owner's
		list(&v.Events)
		return KindWebhook, FromWebhook(v), !public
	case webhook.Delivery:
		return KindDelivery, v, !public
	case federation.Key: // the private key signs as the hub: never in a public archive
		return KindFedKey, FromFedKey(v), !public
	case federation.Follow:
		return KindFollow, v, !public
	case federation.Follower:
		return KindFollower, v, !public
	case federation.Block:
		return KindBlock, v, !public
	case federation.RemoteMake: // a public record, as a design's makes here are; not a hidden design's
		return KindMake, v, !public || !hidden[v.DesignID]
	}
	panic(fmt.Sprintf("archive: a store dumped a %T", v)) // a backend's bug, found by its conformance test
}

// list writes an empty list as [] whether a backend read it as empty or as absent, so
// that every backend's archive of the same data is the same.
func list[T any](s *[]T) {
	if *s == nil {
		*s = []T{}
	}
}

// decode reads one record line into its domain value.
func decode(line []byte) (string, any, error) {
	var rec struct {
		Kind string          `json:"kind"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(line, &rec); err != nil {
		return "", nil, err
	}
	var err error
	var v any
	switch rec.Kind {
	case KindUser:
		v, err = into[User](rec.Data)
	case KindToken:
		v, err = into[Token](rec.Data)
	case KindDesign:
		v, err = into[Design](rec.Data)
	case KindVersion:
		v, err = intoValue[Version](rec.Data)
	case KindFlag:
		v, err = into[Flag](rec.Data)
	case KindLab:
		v, err = intoValue[Lab](rec.Data)
	case KindMember:
		v, err = into[Member](rec.Data)
	case KindJoinToken:
		v, err = into[JoinToken](rec.Data)
	case KindMachine:
		v, err = into[Machine](rec.Data)
	case KindOrder:
		v, err = into[Order](rec.Data)
	case KindJob:
		v, err = into[Job](rec.Data)
	case KindUsage:
		v, err = into[Usage](rec.Data)
	case KindLedger:
		v, err = into[Ledger](rec.Data)
	case KindWebhook:
		v, err = into[Webhook](rec.Data)
	case KindDelivery:
		v, err = intoValue[Delivery](rec.Data)
	case KindFedKey:
		v, err = into[FedKey](rec.Data)
	case KindFollow:
		v, err = intoValue[Follow](rec.Data)
	case KindFollower:
		v, err = intoValue[Follower](rec.Data)
	case KindBlock:
		v, err = intoValue[Block](rec.Data)
	case KindMake:
		v, err = intoValue[RemoteMake](rec.Data)
	default:
		return "", nil, fmt.Errorf("unknown kind %q", rec.Kind)
	}
	return rec.Kind, v, err
}

// into decodes a record type and returns the domain value it holds.
func into[R interface{ Value() V }, V any](data []byte) (V, error) {
	var r R
	if err := strictJSON(data, &r); err != nil {
		var zero V
		return zero, err
	}
	return r.Value(), nil
}

func intoValue[V any](data []byte) (V, error) {
	var v V
	return v, strictJSON(data, &v)
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more after the record")
	}
	return nil
}

// Import loads an archive from r into dst and blobs. dst must be empty. Every blob is
// checked against its hash as it is stored, and every file a version names must be in
// the archive or already in blobs.
func Import(ctx context.Context, r io.Reader, dst Store, blobs storage.Blobs, opt Options) (Header, error) {
	tr := tar.NewReader(r)
	next := func(want string) (*tar.Header, error) {
		th, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("the archive ends before its %s: is it whole?", want)
		}
		if err != nil {
			return nil, fmt.Errorf("not a fabcommons archive (%v)", err)
		}
		return th, nil
	}
	th, err := next(headerName)
	if err != nil {
		return Header{}, err
	}
	if th.Name != headerName || th.Size > maxHeader {
		return Header{}, fmt.Errorf("not a fabcommons archive: it starts with %q, want %s", th.Name, headerName)
	}
	var h Header
	if err := json.NewDecoder(io.LimitReader(tr, maxHeader)).Decode(&h); err != nil {
		return Header{}, fmt.Errorf("read %s: %w", headerName, err)
	}
	if h.Format != format {
		return Header{}, fmt.Errorf("not a fabcommons archive: format %q", h.Format)
	}
	if h.Version < 1 || h.Version > version {
		return Header{}, fmt.Errorf("archive version %d: this fabhub reads versions 1 to %d; a newer fabhub wrote it", h.Version, version)
	}
	have := map[string]bool{}
	var done int64
	for {
		th, err = next(recordsName)
		if err != nil {
			return h, err
		}
		if th.Name == recordsName {
			break
		}
		key, ok := strings.CutPrefix(th.Name, blobPrefix)
		if !ok || !storage.ValidKey(key) || th.Typeflag != tar.TypeReg {
			return h, fmt.Errorf("unexpected entry %q in the archive", th.Name)
		}
		if _, err := blobs.Put(ctx, tr, th.Size, key); err != nil {
			return h, fmt.Errorf("store blob %s: %w", key, whole(err))
		}
		have[key] = true
		done += th.Size
		if opt.Progress != nil {
			opt.Progress(done, h.BlobBytes)
		}
	}
	br := bufio.NewReaderSize(tr, 1<<20)
	lineNo, at := 0, 0
	counts := map[string]int64{}
	load := func() (any, error) {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		lineNo++
		kind, v, err := decode(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", recordsName, lineNo, err)
		}
		i := slices.Index(Kinds, kind)
		if i < at {
			return nil, fmt.Errorf("%s line %d: a %s after the %ss: records are out of order", recordsName, lineNo, kind, Kinds[at])
		}
		at = i
		counts[kind]++
		if ver, ok := v.(catalog.Version); ok {
			for _, f := range ver.Files {
				if f.Origin != "" {
					continue // a remote design's file is fetched from its origin when needed
				}
				if err := present(ctx, blobs, have, f.SHA256); err != nil {
					return nil, fmt.Errorf("%s line %d: version %d of design %s names %s: %w", recordsName, lineNo, ver.Number, ver.DesignID, f.Path, err)
				}
			}
		}
		if j, ok := v.(fabrication.Job); ok {
			for _, p := range j.Photos {
				if err := present(ctx, blobs, have, p.Key); err != nil {
					return nil, fmt.Errorf("%s line %d: a photo of job %s: %w", recordsName, lineNo, j.ID, err)
				}
			}
		}
		return v, nil
	}
	if err := dst.Load(ctx, load); err != nil {
		return h, err
	}
	for kind, n := range h.Records {
		if counts[kind] != n {
			return h, fmt.Errorf("the archive's header counts %d %s records, it holds %d", n, kind, counts[kind])
		}
	}
	return h, nil
}

// present checks that a blob a version or a photo names was in the archive or is stored already.
func present(ctx context.Context, blobs storage.Blobs, have map[string]bool, key string) error {
	if have[key] {
		return nil
	}
	if _, err := blobs.Stat(ctx, key); err != nil {
		return fmt.Errorf("blob %s is neither in the archive nor in the blob store: %w", key, err)
	}
	have[key] = true
	return nil
}

// readLine reads one line of at most maxLine bytes, without its newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, err := br.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > maxLine {
			return nil, fmt.Errorf("%s: a record longer than %d bytes", recordsName, maxLine)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, fmt.Errorf("%s ends in the middle of a record: is the archive whole?", recordsName)
		default:
			return nil, whole(err)
		}
	}
}

// whole names a read that ended before the archive did.
func whole(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the archive ends in the middle of an entry: is it whole?")
	}
	return err
}
