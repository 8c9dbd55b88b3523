package catalog

import (
	"context"
	"time"

	"github.com/fabcommons/fabcommons/catalog/mesh"
)

// Design is a published open-hardware design. Its versions hold the files.
type Design struct {
	ID      string `json:"id"`
	Slug    string `json:"slug"`
	OwnerID string `json:"-"`
	Owner   string `json:"owner"` // the owner's handle
	// Licensor holds the rights and is credited when that is not the owner: a design
	// published on someone's behalf, or imported from an OKH manifest naming one.
	Licensor      string      `json:"licensor,omitempty"`
	Title         string      `json:"title"`
	Summary       string      `json:"summary"`
	Tags          []string    `json:"tags"`
	License       string      `json:"license"` // of the latest version
	Hidden        bool        `json:"hidden"`  // hidden by a maintainer: a tombstone keeps title, owner and license
	Featured      bool        `json:"featured"`
	Parents       []ParentRef `json:"parents"`
	LatestVersion int         `json:"latest_version"`
	Counters      Counters    `json:"counters"`
	CreatedAt     time.Time   `json:"created_at"`
	UpdatedAt     time.Time   `json:"updated_at"`
	// Origin is where a remote design comes from (nil for a design published here):
	// this hub heard of it from a hub it follows, and keeps a copy of its metadata.
	Origin *Origin `json:"origin,omitempty"`
}

// Origin names the hub a remote design comes from and its object there.
type Origin struct {
	Hub    string `json:"hub" bson:"hub"`       // its host (and port)
	Object string `json:"object" bson:"object"` // the design object's id (a URL) on that hub
	URL    string `json:"url" bson:"url"`       // its page there, for people
}

// Remote reports whether the design comes from another hub.
func (d Design) Remote() bool { return d.Origin != nil }

// Credit is who a design is credited to: its licensor, else its owner.
func (d Design) Credit() string {
	if d.Licensor != "" {
		return d.Licensor
	}
	return d.Owner
}

// ParentRef names the design version a fork or remix came from, with a snapshot of
// who made it and under what license, so attribution survives the parent being hidden.
type ParentRef struct {
	DesignID string `json:"design_id"`
	Slug     string `json:"slug"`
	Version  int    `json:"version"`
	Title    string `json:"title"`
	Owner    string `json:"owner"`
	Licensor string `json:"licensor,omitempty"`
	License  string `json:"license"`
	// URL names a parent on another hub by its design object's id; DesignID is then
	// the local copy's id when this hub has one, else "".
	URL string `json:"url,omitempty"`
}

// Counters are derived figures, recomputed by the maintenance cron.
type Counters struct {
	Forks      int `json:"forks"`
	Makes      int `json:"makes"` // jobs done at labs here, and makes at other hubs' labs they told of
	JobsOK     int `json:"jobs_ok"`
	JobsFailed int `json:"jobs_failed"`
}

// Version is an immutable, numbered snapshot of a design's files and BOM.
type Version struct {
	DesignID  string    `json:"design_id"`
	Number    int       `json:"number"`
	Message   string    `json:"message"`
	License   string    `json:"license"`
	Files     []File    `json:"files"`
	BOM       []BOMLine `json:"bom"`
	CreatedBy string    `json:"created_by"` // handle
	CreatedAt time.Time `json:"created_at"`
}

// File is one file of a version, stored under the SHA-256 of its content.
type File struct {
	Path   string       `json:"path"`
	SHA256 string       `json:"sha256"`
	Size   int64        `json:"size"`
	Kind   string       `json:"kind"` // FileMesh, FileSource, ... (filetypes.go)
	Mesh   *mesh.Report `json:"mesh,omitempty"`
	// Picture is an image's size in pixels; pictures are shown in the gallery.
	Picture *PictureSize `json:"picture,omitempty"`
	// Origin is where a remote design's file is fetched from, when first needed; its
	// bytes must hash to SHA256 before they are stored under it.
	Origin string `json:"origin,omitempty"`
	// Fetched says its origin served its bytes here once (checked): they are served
	// from here since, whatever the origin does.
	Fetched bool `json:"fetched,omitempty"`
}

// PictureSize is a picture's width and height in pixels.
type PictureSize struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// MeshFiles lists the paths of the version's meshes.
func (v Version) MeshFiles() []string {
	var paths []string
	for _, f := range v.Files {
		if f.Kind == FileMesh {
			paths = append(paths, f.Path)
		}
	}
	return paths
}

// File finds one of the version's files by path.
func (v Version) File(path string) (File, bool) {
	for _, f := range v.Files {
		if f.Path == path {
			return f, true
		}
	}
	return File{}, false
}

// Query selects designs for a listing or search. All set fields must match.
type Query struct {
	Text    string // words that must all appear (as word prefixes) in title, summary or tags
	Tag     string
	License string
	Owner   string // handle
	Cursor  string // from the previous page's NextCursor
	Limit   int
	// Featured lists only featured designs.
	Featured bool
	// Origin lists only the remote designs from this hub: host:port exactly, or a host
	// name on any port (as a block of a host name covers every port).
	Origin string
	// Hidden lists hidden designs (tombstones) too: for the hub's own counts, never for
	// a listing people see.
	Hidden bool
}

// Page is one page of a listing.
type Page struct {
	Designs    []Design `json:"designs"`
	NextCursor string   `json:"next_cursor"`
}

// Store keeps designs and versions. Backends return storage.ErrNotFound and
// storage.ErrConflict (a slug or version number already taken).
type Store interface {
	// CreateDesign stores a new design with its first version. A crash part way leaves
	// at most a version no design points to, which nothing shows.
	CreateDesign(ctx context.Context, d Design, v Version) error
	// AddVersion stores version v.Number of its design, which must be more than the
	// design's latest (one more, for a design of this hub; a remote design's may skip
	// versions this hub did not hear of); if another version got there first it
	// returns storage.ErrConflict.
	AddVersion(ctx context.Context, v Version, updated Design) error
	DesignBySlug(ctx context.Context, slug string) (Design, error)
	DesignByID(ctx context.Context, id string) (Design, error)
	Version(ctx context.Context, designID string, number int) (Version, error)
	// Versions lists a design's versions, newest first, without files or BOM.
	Versions(ctx context.Context, designID string) ([]Version, error)
	// Children lists the designs that name designID among their parents.
	Children(ctx context.Context, designID string) ([]Design, error)
	// DesignByOrigin finds the remote design whose Origin.Object is object.
	DesignByOrigin(ctx context.Context, object string) (Design, error)
	// Search lists visible designs matching q, newest first, in stable pages.
	Search(ctx context.Context, q Query) (Page, error)
	SetHidden(ctx context.Context, designID string, hidden bool, at time.Time) error
	// SetText overwrites a design's title, summary, tags and licensor, and its
	// UpdatedAt (a remote design's Update); the search index follows.
	SetText(ctx context.Context, d Design) error
	SetFeatured(ctx context.Context, designID string, featured bool) error
	// SetCounters overwrites the derived counters (the cron recomputes them).
	SetCounters(ctx context.Context, designID string, c Counters) error
	// SetMeshReports sets the mesh report of the named files of one version (a remote
	// design's meshes are analysed here when first made, and their reports kept): the
	// other files, and everything else of the version, stay as they are. It is
	// storage.ErrNotFound when there is no such version.
	SetMeshReports(ctx context.Context, designID string, number int, reports map[string]mesh.Report) error
	// SetFetched marks the named files of one version as Fetched, the rest staying as
	// they are; storage.ErrNotFound when there is no such version.
	SetFetched(ctx context.Context, designID string, number int, paths []string) error
	// ReferencedBlobs calls fn with every blob key any version uses, and every key of a
	// photo of a make (fabrication.Job's photos, in the same database): blobs it does not
	// name are orphans, which the maintenance cron deletes.
	ReferencedBlobs(ctx context.Context, fn func(key string) error) error
	// AddFlag records a person's report on a design; a second from the same person on
	// the same design is storage.ErrConflict.
	AddFlag(ctx context.Context, f Flag) error
	// Flags lists open reports, newest first.
	Flags(ctx context.Context, limit int) ([]Flag, error)
	// ClearFlags closes every report on a design (a maintainer dealt with it).
	ClearFlags(ctx context.Context, designID string) error
}

// Flag is someone's report that a design needs a maintainer's look: curation comes
// after contribution, and flags are how it hears.
type Flag struct {
	DesignID  string    `json:"design_id"`
	UserID    string    `json:"-"`
	Handle    string    `json:"handle"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
}
