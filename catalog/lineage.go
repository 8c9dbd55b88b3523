package catalog

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/fabcommons/fabcommons/storage"
)

// Node is one design in a lineage. A hidden design is a tombstone: its title, owner
// and license stay, because attribution must survive curation.
type Node struct {
	Slug    string   `json:"slug"`
	Title   string   `json:"title"`
	Owner   string   `json:"owner"`
	Credit  string   `json:"credit"` // who it is credited to: its licensor, else its owner
	License string   `json:"license"`
	Version int      `json:"version,omitempty"` // for an ancestor: the version that was built on
	Hidden  bool     `json:"hidden"`
	Parents []string `json:"parents"` // slugs (URLs for ancestors on other hubs not copied here), for drawing the graph
	// URL is an ancestor on another hub that this hub has no copy of: its object's id.
	URL string `json:"url,omitempty"`
	// Origin is the hub a design of another hub comes from (nil for this hub's own).
	Origin *Origin `json:"origin,omitempty"`
}

// Lineage is a design with everything it came from and everything that came from it.
type Lineage struct {
	Design      Node   `json:"design"`
	Ancestors   []Node `json:"ancestors"`
	Descendants []Node `json:"descendants"`
	Truncated   bool   `json:"truncated"` // more than maxLineage nodes on a side
}

const maxLineage = 500

func nodeOf(d Design) Node {
	n := Node{Slug: d.Slug, Title: d.Title, Owner: d.Owner, Credit: d.Credit(), License: d.License, Hidden: d.Hidden, Parents: []string{}, Origin: d.Origin}
	for _, p := range d.Parents {
		key := p.Slug
		if key == "" {
			key = p.URL // a parent on another hub, not copied here
		}
		n.Parents = append(n.Parents, key)
	}
	return n
}

// Lineage walks a design's ancestors and descendants, breadth first.
func (s *Service) Lineage(ctx context.Context, slug string) (Lineage, error) {
	d, err := s.store.DesignBySlug(ctx, slug)
	if err != nil {
		return Lineage{}, fmt.Errorf("design %s: %w", slug, err)
	}
	l := Lineage{Design: nodeOf(d), Ancestors: []Node{}, Descendants: []Node{}}
	seen := map[string]bool{d.ID: true}
	queue := d.Parents
	for len(queue) > 0 {
		ref := queue[0]
		queue = queue[1:]
		key := ref.DesignID
		if key == "" {
			key = ref.URL // on another hub, not copied here: known by its URL alone
		}
		if seen[key] {
			continue
		}
		if len(l.Ancestors) >= maxLineage {
			l.Truncated = true
			break
		}
		seen[key] = true
		if ref.DesignID == "" && ref.URL != "" {
			// On another hub, not copied here: the child's snapshot credits it, by URL.
			l.Ancestors = append(l.Ancestors, Node{Title: ref.Title, Owner: ref.Owner, Credit: ref.Owner, License: ref.License,
				Version: ref.Version, URL: ref.URL, Parents: []string{}, Origin: &Origin{Hub: hostOf(ref.URL), Object: ref.URL, URL: ref.URL}})
			continue
		}
		p, err := s.store.DesignByID(ctx, ref.DesignID)
		if errors.Is(err, storage.ErrNotFound) {
			// Gone entirely: the snapshot in the child still credits it.
			l.Ancestors = append(l.Ancestors, Node{Slug: ref.Slug, Title: ref.Title, Owner: ref.Owner, Credit: Design{Owner: ref.Owner, Licensor: ref.Licensor}.Credit(), License: ref.License, Version: ref.Version, Hidden: true, Parents: []string{}})
			continue
		}
		if err != nil {
			return Lineage{}, err
		}
		n := nodeOf(p)
		n.Version, n.License = ref.Version, ref.License
		l.Ancestors = append(l.Ancestors, n)
		queue = append(queue, p.Parents...)
	}
	next := []string{d.ID}
	for len(next) > 0 && !l.Truncated {
		id := next[0]
		next = next[1:]
		children, err := s.store.Children(ctx, id)
		if err != nil {
			return Lineage{}, err
		}
		for _, c := range children {
			if seen[c.ID] {
				continue
			}
			if len(l.Descendants) >= maxLineage {
				l.Truncated = true
				break
			}
			seen[c.ID] = true
			l.Descendants = append(l.Descendants, nodeOf(c))
			next = append(next, c.ID)
		}
	}
	return l, nil
}

// Attribution is the ATTRIBUTION.md of a version: the design, its license, and every
// ancestor with its author, license and the version built on.
func (s *Service) Attribution(ctx context.Context, baseURL string, d Design, v Version) (string, error) {
	l, err := s.Lineage(ctx, d.Slug)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", oneLine(d.Title))
	fmt.Fprintf(&b, "- Design: %s/designs/%s (version %d of %s)\n", baseURL, d.Slug, v.Number, v.CreatedAt.Format(time.DateOnly))
	if d.Licensor != "" {
		fmt.Fprintf(&b, "- Licensor: %s (published here by %s)\n- License: %s\n", oneLine(d.Licensor), oneLine(d.Owner), oneLine(v.License))
	} else {
		fmt.Fprintf(&b, "- Author: %s\n- License: %s\n", oneLine(d.Owner), oneLine(v.License))
	}
	if d.Origin != nil {
		fmt.Fprintf(&b, "- Published on %s: %s\n", oneLine(d.Origin.Hub), oneLine(d.Origin.URL))
	}
	if v.Message != "" {
		fmt.Fprintf(&b, "- Changes in this version: %s\n", oneLine(v.Message))
	}
	if len(l.Ancestors) == 0 {
		b.WriteString("\nThis is an original design: it names no parent designs.\n")
		return b.String(), nil
	}
	b.WriteString("\n## Built on\n\nThis design is derived from the designs below. Keep this file with anything made or shared from it.\n\n")
	for _, a := range l.Ancestors {
		state := ""
		if a.Hidden {
			state = " (since hidden from the catalog; credited here all the same)"
		}
		hub, where := hostOf(baseURL), baseURL+"/designs/"+a.Slug
		if a.Origin != nil {
			hub, where = a.Origin.Hub, a.Origin.URL
		}
		fmt.Fprintf(&b, "- %s by %s, version %d, licensed %s, published on %s: %s%s\n", oneLine(a.Title), oneLine(a.Credit), a.Version, oneLine(a.License), oneLine(hub), oneLine(where), state)
	}
	return b.String(), nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// hostOf is the host (and port) of a URL, or "" when it has none.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// WriteArchive streams a zip of the version: its files, bom.csv (when it has a BOM),
// ATTRIBUTION.md and okh.toml. Blobs are copied straight into the zip, never held whole
// in memory.
func (s *Service) WriteArchive(ctx context.Context, w io.Writer, baseURL string, d Design, v Version) error {
	attribution, err := s.Attribution(ctx, baseURL, d, v)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	prefix := fmt.Sprintf("%s-v%d/", d.Slug, v.Number)
	written := map[string]bool{}
	add := func(name string, method uint16, r io.Reader) error {
		// No two entries with one name (nor one differing only in case, which unzips
		// onto the same file on many systems): a file stored before its name was
		// reserved for a generated one goes under uploaded/.
		for written[strings.ToLower(name)] {
			name = "uploaded/" + name
		}
		written[strings.ToLower(name)] = true
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + name, Method: method, Modified: v.CreatedAt})
		if err != nil {
			return err
		}
		_, err = io.Copy(fw, r)
		return err
	}
	if err := add("ATTRIBUTION.md", zip.Deflate, strings.NewReader(attribution)); err != nil {
		return err
	}
	// The manifest makes the download an OKH package, which POST /designs/import takes.
	manifest, err := OKH(baseURL, d, v)
	if err != nil {
		return err
	}
	if err := add("okh.toml", zip.Deflate, bytes.NewReader(manifest)); err != nil {
		return err
	}
	if len(v.BOM) > 0 {
		var buf bytes.Buffer
		if err := WriteBOMCSV(&buf, v.BOM); err != nil {
			return err
		}
		if err := add("bom.csv", zip.Deflate, &buf); err != nil {
			return err
		}
	}
	for _, f := range v.Files {
		rc, err := s.blobs.Get(ctx, f.SHA256, 0, -1)
		if err != nil {
			return fmt.Errorf("archive %s: %w", f.Path, err)
		}
		err = add(f.Path, zip.Deflate, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("archive %s: %w", f.Path, err)
		}
	}
	return zw.Close()
}

// okhManifest is the subset of OKH-LOSH v1 fabcommons fills in.
type okhManifest struct {
	OKHV            string         `toml:"okhv"`
	Name            string         `toml:"name"`
	Repo            string         `toml:"repo"`
	Version         string         `toml:"version"`
	License         string         `toml:"license"`
	Licensor        string         `toml:"licensor"`
	Function        string         `toml:"function"`
	DocumentationLn string         `toml:"documentation-language"`
	BOM             string         `toml:"bom,omitempty"`
	Source          []string       `toml:"source"`
	Export          []string       `toml:"export"`
	OuterDimensions *okhDimensions `toml:"outer-dimensions,omitempty"`
}

type okhDimensions struct {
	Width  float64 `toml:"width"`
	Depth  float64 `toml:"depth"`
	Height float64 `toml:"height"`
}

// OKH returns the version's Open Know-How manifest (OKH-LOSH okh.toml). Meshes are its
// exports, other files its sources; the outer dimensions are the union of the meshes'
// bounding boxes, in millimetres.
func OKH(baseURL string, d Design, v Version) ([]byte, error) {
	m := okhManifest{
		OKHV: "OKH-LOSHv1.0", Name: d.Title, Repo: baseURL + "/designs/" + d.Slug, Version: fmt.Sprint(v.Number),
		License: v.License, Licensor: d.Credit(), Function: d.Summary, DocumentationLn: "en",
		Source: []string{}, Export: []string{},
	}
	if len(v.BOM) > 0 {
		m.BOM = "bom.csv"
	}
	var lo, hi [3]float64
	boxes := 0
	for _, f := range v.Files {
		if f.Kind != FileMesh {
			m.Source = append(m.Source, f.Path)
			continue
		}
		m.Export = append(m.Export, f.Path)
		if f.Mesh == nil || f.Mesh.Triangles == 0 {
			continue
		}
		for k := range 3 {
			if boxes == 0 || f.Mesh.BBox.Min[k] < lo[k] {
				lo[k] = f.Mesh.BBox.Min[k]
			}
			if boxes == 0 || f.Mesh.BBox.Max[k] > hi[k] {
				hi[k] = f.Mesh.BBox.Max[k]
			}
		}
		boxes++
	}
	if boxes > 0 {
		m.OuterDimensions = &okhDimensions{Width: hi[0] - lo[0], Depth: hi[1] - lo[1], Height: hi[2] - lo[2]}
	}
	return toml.Marshal(m)
}
