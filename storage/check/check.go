// Package check walks a hub's records and blobs and reports every inconsistency, one
// line each, as `fabhub check` prints them: what git fsck is to a repository.
package check

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
	"github.com/fabcommons/fabcommons/storage/archive"
)

// The kinds of problem.
const (
	MissingBlob   = "missing-blob"   // a version or a photo of a make names a blob the store does not have
	DamagedBlob   = "damaged-blob"   // a blob's size or content does not match its name
	OrphanBlob    = "orphan-blob"    // a blob nothing names, older than the grace period
	VersionFiles  = "version-files"  // a version's file list or BOM is inconsistent
	Versions      = "versions"       // a design's versions are not 1..latest (or, of a remote design, do not end at its latest)
	Lineage       = "lineage"        // a parent or a referenced design that does not exist
	Dangling      = "dangling"       // a record naming a user, lab, machine or order that does not exist
	LedgerProblem = "ledger"         // balances do not sum to zero, a floor is passed, or the chain is broken
	DatabaseCheck = "database-check" // the database's own check failed
)

// Problem is one inconsistency.
type Problem struct {
	Kind    string
	Subject string
	Message string
}

func (p Problem) String() string { return fmt.Sprintf("%s %s: %s", p.Kind, p.Subject, p.Message) }

// Options tune Run.
type Options struct {
	Hashes   bool          // read every referenced blob and hash it, not only compare sizes
	Grace    time.Duration // unreferenced blobs younger than this are uploads in flight
	Now      time.Time
	Progress func(done, total int64) // bytes hashed
	// Verify checks the ledger's chain and balances (fabrication.Ledger.Verify).
	Verify func(ctx context.Context) (fabrication.Verification, error)
	// DatabaseCheck runs the backend's own check, if it has one.
	DatabaseCheck func(ctx context.Context) error
}

// Summary counts what Run looked at.
type Summary struct {
	Records      int64
	Blobs        int64 // referenced
	BlobBytes    int64
	Unreferenced int64 // blobs nothing names, of any age
	Problems     int
}

type design struct {
	slug     string
	remote   bool // of another hub: its versions are those this hub heard of
	latest   int
	parents  []string
	versions []int
}

// Run walks src and blobs and calls report with every problem it finds.
func Run(ctx context.Context, src archive.Store, blobs storage.Blobs, opt Options, report func(Problem)) (Summary, error) {
	var sum Summary
	problem := func(kind, subject, format string, args ...any) {
		sum.Problems++
		report(Problem{Kind: kind, Subject: subject, Message: fmt.Sprintf(format, args...)})
	}
	users, labs, machines, orders, hooks := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	designs := map[string]*design{}
	type use struct {
		size   int64
		where  string
		remote bool // named only by remote designs' files, which may not be fetched yet
	}
	referenced := map[string]use{}
	var jobs []fabrication.Job
	var others []any // records checked once every kind they name was read

	err := src.Dump(ctx, func(v any) error {
		sum.Records++
		switch v := v.(type) {
		case account.User:
			users[v.ID] = true
		case catalog.Design:
			designs[v.ID] = &design{slug: v.Slug, remote: v.Remote(), latest: v.LatestVersion}
			for _, p := range v.Parents {
				if p.DesignID == "" && p.URL != "" {
					continue // a parent on another hub, named by its URL
				}
				designs[v.ID].parents = append(designs[v.ID].parents, p.DesignID)
			}
		case catalog.Version:
			where := fmt.Sprintf("%s v%d", v.DesignID, v.Number)
			if d := designs[v.DesignID]; d != nil {
				d.versions = append(d.versions, v.Number)
				where = fmt.Sprintf("%s v%d", d.slug, v.Number)
			} else {
				problem(Versions, where, "a version of a design that does not exist")
			}
			paths := map[string]bool{}
			for _, f := range v.Files {
				switch {
				case paths[f.Path]:
					problem(VersionFiles, where, "file %q is listed twice", f.Path)
				case !storage.ValidKey(f.SHA256):
					problem(VersionFiles, where, "file %q has no valid sha256 (%q)", f.Path, f.SHA256)
				case f.Size < 0:
					problem(VersionFiles, where, "file %q has a negative size", f.Path)
				default:
					if u, ok := referenced[f.SHA256]; ok && u.size != f.Size {
						problem(VersionFiles, where, "file %q says blob %s is %d bytes; %s says %d", f.Path, f.SHA256, f.Size, u.where, u.size)
					}
					if u, ok := referenced[f.SHA256]; !ok {
						referenced[f.SHA256] = use{f.Size, where + " " + f.Path, f.Origin != ""}
					} else if u.remote && f.Origin == "" {
						u.remote = false
						referenced[f.SHA256] = u
					}
				}
				paths[f.Path] = true
			}
			for _, l := range v.BOM {
				if l.File != "" && !paths[l.File] {
					problem(VersionFiles, where, "BOM line %s names file %q, which the version does not have", l.Ref, l.File)
				}
			}
		case fabrication.Lab:
			labs[v.ID] = true
		case fabrication.Machine:
			machines[v.ID] = true
			others = append(others, v)
		case fabrication.Order:
			orders[v.ID] = true
			others = append(others, v)
		case fabrication.Job:
			v.Events = nil // not needed here: keep memory to the job's fields
			for _, p := range v.Photos {
				where := "a photo of job " + v.ID
				switch u, ok := referenced[p.Key]; {
				case !storage.ValidKey(p.Key):
					problem(Dangling, "job "+v.ID, "a photo has no valid key (%q)", p.Key)
				case !ok:
					referenced[p.Key] = use{size: p.Size, where: where}
				case u.size != p.Size:
					problem(DamagedBlob, p.Key, "%s says it is %d bytes; %s says %d", where, p.Size, u.where, u.size)
				}
			}
			v.Photos = nil
			jobs = append(jobs, v)
		case webhook.Hook:
			hooks[v.ID] = true
			others = append(others, v)
		case account.Token, catalog.Flag, fabrication.Member, fabrication.JoinToken, webhook.Delivery, federation.Key, federation.RemoteMake:
			others = append(others, v)
		}
		return nil
	})
	if err != nil {
		return sum, fmt.Errorf("read the store: %w", err)
	}

	named := func(subject, what, id string, set map[string]bool) {
		if !set[id] {
			problem(Dangling, subject, "names %s %q, which does not exist", what, id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(designs)) {
		d := designs[id]
		slices.Sort(d.versions)
		if d.remote {
			// Heard of from its hub: the versions this hub heard, which end at the latest.
			if len(d.versions) == 0 || d.versions[len(d.versions)-1] != d.latest || len(slices.Compact(slices.Clone(d.versions))) != len(d.versions) {
				problem(Versions, d.slug, "has versions %v, but its latest is %d: want versions heard of its hub, each once, up to %d", d.versions, d.latest, d.latest)
			}
		} else {
			want := make([]int, d.latest)
			for i := range want {
				want[i] = i + 1
			}
			if !slices.Equal(d.versions, want) {
				problem(Versions, d.slug, "has versions %v, but its latest is %d: want 1 to %d", d.versions, d.latest, d.latest)
			}
		}
		for _, p := range d.parents {
			if designs[p] == nil {
				problem(Lineage, d.slug, "names parent design %q, which does not exist", p)
			}
		}
	}
	for _, v := range others {
		switch v := v.(type) {
		case account.Token:
			named("token "+v.ID, "user", v.UserID, users)
		case catalog.Flag:
			if designs[v.DesignID] == nil {
				problem(Dangling, "report by "+v.Handle, "names design %q, which does not exist", v.DesignID)
			}
			named("report by "+v.Handle, "user", v.UserID, users)
		case fabrication.Member:
			named("member "+v.Handle, "lab", v.LabID, labs)
			named("member "+v.Handle, "user", v.UserID, users)
		case fabrication.JoinToken:
			named("join token "+v.ID, "lab", v.LabID, labs)
		case fabrication.Machine:
			named("machine "+v.ID, "lab", v.LabID, labs)
		case webhook.Hook:
			named("webhook "+v.ID, "user", v.OwnerID, users)
			if v.LabID != "" {
				named("webhook "+v.ID, "lab", v.LabID, labs)
			}
		case webhook.Delivery:
			named("delivery "+v.ID, "webhook", v.HookID, hooks)
		case federation.Key: // a person's or a lab's key pair names them
			if id, ok := strings.CutPrefix(v.Owner, "person:"); ok {
				named("federation key "+v.Owner, "user", id, users)
			} else if id, ok := strings.CutPrefix(v.Owner, "lab:"); ok {
				named("federation key "+v.Owner, "lab", id, labs)
			}
		case federation.RemoteMake:
			if designs[v.DesignID] == nil {
				problem(Dangling, "remote make "+v.ID, "names design %q, which does not exist", v.DesignID)
			}
		case fabrication.Order:
			named("order "+v.ID, "lab", v.LabID, labs)
			if designs[v.DesignID] == nil {
				problem(Lineage, "order "+v.ID, "names design %q, which does not exist", v.DesignID)
			}
		}
	}
	for _, j := range jobs {
		subject := "job " + j.ID
		if j.MachineID != "" && !machines[j.MachineID] {
			problem(Dangling, subject, "is held by machine %q, which does not exist", j.MachineID)
		}
		named(subject, "order", j.OrderID, orders)
		named(subject, "lab", j.LabID, labs)
		if designs[j.DesignID] == nil {
			problem(Lineage, subject, "names design %q, which does not exist", j.DesignID)
		}
	}

	if opt.Verify != nil {
		v, err := opt.Verify(ctx)
		if err != nil {
			return sum, fmt.Errorf("verify the ledger: %w", err)
		}
		if !v.OK {
			problem(LedgerProblem, "chain", "%s (sum %d, chain ok %v, floors ok %v, %d entries)", v.Problem, v.Sum, v.ChainOK, v.FloorsOK, v.Checked)
		}
	}
	if opt.DatabaseCheck != nil {
		if err := opt.DatabaseCheck(ctx); err != nil {
			problem(DatabaseCheck, "database", "%v", err)
		}
	}

	// The blobs: every one named is there, of its size (and content, with Hashes);
	// every one there is named, or young.
	stored := map[string]storage.BlobInfo{}
	if err := blobs.List(ctx, "", func(b storage.BlobInfo) error { stored[b.Key] = b; return nil }); err != nil {
		return sum, fmt.Errorf("list the blobs: %w", err)
	}
	keys := slices.Sorted(maps.Keys(referenced))
	for _, k := range keys {
		sum.Blobs++
		sum.BlobBytes += referenced[k].size
	}
	var hashed int64
	for _, k := range keys {
		u := referenced[k]
		b, ok := stored[k]
		switch {
		case !ok && u.remote:
			continue // not fetched from its origin yet
		case !ok:
			problem(MissingBlob, k, "named by %s, not in the blob store", u.where)
			continue
		case b.Size != u.size:
			problem(DamagedBlob, k, "is %d bytes; %s says %d", b.Size, u.where, u.size)
			continue
		}
		if opt.Hashes {
			if err := hashBlob(ctx, blobs, k, u.size); err != nil {
				problem(DamagedBlob, k, "(%s): %v", u.where, err)
			}
			hashed += u.size
			if opt.Progress != nil {
				opt.Progress(hashed, sum.BlobBytes)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(stored)) {
		if _, ok := referenced[k]; ok {
			continue
		}
		sum.Unreferenced++
		if age := opt.Now.Sub(stored[k].ModTime); age >= opt.Grace {
			problem(OrphanBlob, k, "%d bytes, named by nothing for %s (--repair deletes it)", stored[k].Size, age.Round(time.Minute))
		}
	}
	return sum, nil
}

func hashBlob(ctx context.Context, blobs storage.Blobs, key string, size int64) error {
	rc, err := blobs.Get(ctx, key, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	d := storage.NewDigestReader(rc, size)
	if _, err := io.Copy(io.Discard, d); err != nil {
		return err
	}
	if d.Key() != key {
		return fmt.Errorf("its content hashes to %s", d.Key())
	}
	return nil
}
