package federation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/storage"
)

// The JSON-LD context of a design object: ActivityStreams, Manyfold's f3di vocabulary
// (whose concreteType 3DModel names a 3D model, as Manyfold's models do), SPDX for the
// license, and fabcommons' own terms for what neither has (version, files' hashes,
// BOM, parents).
var designContext = []any{contextAS, map[string]any{
	"f3di": "http://purl.org/f3di/ns#",
	"spdx": "http://spdx.org/rdf/terms#",
	"fab":  "https://fabcommons.org/ns#",
}}

// The paths of a design's page and its files, as web serves them.
const (
	pathDesignPage = "/designs/"
	pathDesignAPI  = "/api/v1/designs/"
)

// DesignID is the id of a local design's object: its page.
func (s *Service) DesignID(slug string) string { return s.base + pathDesignPage + slug }

// DesignObject is a local design's ActivityPub object, of its latest version v: a
// Document with f3di:concreteType 3DModel, its license as an SPDX id, its version, its
// files (each with its SHA-256, size and URL), its thumbnail, its BOM, its parents by
// their objects' ids, attributed to its owner's actor.
func (s *Service) DesignObject(d catalog.Design, v catalog.Version) map[string]any {
	id := s.DesignID(d.Slug)
	author := s.base + pathPersonPage + d.Owner
	files := []any{}
	for _, f := range v.Files {
		files = append(files, map[string]any{"type": "Document", "name": f.Path, "mediaType": mediaTypeOf(f.Path),
			"url": s.FileURL(d.Slug, v.Number, f.Path), "fab:sha256": f.SHA256, "fab:size": f.Size})
	}
	parents := []any{}
	for _, p := range d.Parents {
		pid := p.URL
		if pid == "" {
			pid = s.DesignID(p.Slug)
		}
		parents = append(parents, map[string]any{"id": pid, "fab:version": p.Version, "name": p.Title,
			"fab:owner": p.Owner, "spdx:licenseId": p.License})
	}
	tags := []any{}
	for _, t := range d.Tags {
		tags = append(tags, map[string]any{"type": "Hashtag", "name": "#" + t, "href": s.base + "/designs?tag=" + url.QueryEscape(t)})
	}
	bom := v.BOM
	if bom == nil {
		bom = []catalog.BOMLine{}
	}
	o := map[string]any{
		"@context": designContext, "id": id, "type": "Document", "f3di:concreteType": "3DModel",
		"name": d.Title, "summary": html.EscapeString(d.Summary), "fab:summaryText": d.Summary, "fab:slug": d.Slug,
		"url": id, "attributedTo": author, "published": d.CreatedAt.UTC().Format(time.RFC3339), "updated": d.UpdatedAt.UTC().Format(time.RFC3339),
		"spdx:licenseId": v.License, "fab:version": v.Number, "fab:versionMessage": v.Message,
		"icon":       map[string]any{"type": "Image", "mediaType": "image/png", "url": id + "/thumbnail.png"},
		"attachment": files, "fab:bom": bom, "fab:parents": parents, "tag": tags,
		"to": []string{publicAddress}, "cc": []string{s.base + PathPeople + "/" + d.Owner + "/followers", s.base + PathInstance + "/followers"},
	}
	if d.Licensor != "" {
		o["fab:licensor"] = d.Licensor
	}
	return o
}

// FileURL is where a local design's file is downloaded.
func (s *Service) FileURL(slug string, n int, p string) string {
	segs := strings.Split(p, "/")
	for i := range segs {
		segs[i] = url.PathEscape(segs[i])
	}
	return fmt.Sprintf("%s%s%s/versions/%d/files/%s", s.base, pathDesignAPI, slug, n, strings.Join(segs, "/"))
}

func mediaTypeOf(p string) string {
	switch strings.ToLower(path.Ext(p)) {
	case ".stl":
		return "model/stl"
	case ".3mf":
		return "model/3mf"
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".md":
		return "text/markdown"
	}
	return "application/octet-stream"
}

// MaxDesignObjectBytes bounds a design object read (embedded in an activity or alone).
const MaxDesignObjectBytes = MaxActivityBytes

// isDesignObject reports whether an object is a design as fabcommons publishes it
// (other objects — Mastodon's notes, Manyfold's — are not kept as designs).
func isDesignObject(m map[string]any) bool {
	_, ok := m["fab:version"]
	return ok && typeOf(m["type"]) == "Document"
}

// ParseDesignObject reads a design object into what a hub keeps of a remote design,
// and returns the actor it is attributed to. It is storage.ErrInvalid when data is not
// one JSON object of at most MaxDesignObjectBytes, or is not a design object, or lacks
// an http(s) id, url or attributedTo, or has fields of the wrong shape. What the values
// may be (lengths, counts, the license) is catalog.RemoteDesign.Check's to say.
func ParseDesignObject(data []byte) (catalog.RemoteDesign, string, error) {
	if len(data) > MaxDesignObjectBytes {
		return catalog.RemoteDesign{}, "", storage.Invalid("object", fmt.Sprintf("over %d bytes", MaxDesignObjectBytes))
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return catalog.RemoteDesign{}, "", storage.Invalid("object", "not a JSON object")
	}
	return designFrom(m)
}

// designFrom is ParseDesignObject of a decoded object (numbers as json.Number).
func designFrom(m map[string]any) (catalog.RemoteDesign, string, error) {
	if !isDesignObject(m) {
		return catalog.RemoteDesign{}, "", storage.Invalid("object", "not a design object (a Document with fab:version)")
	}
	str := func(v any) string { s, _ := first(v).(string); return s }
	num := func(v any) (int64, bool) {
		n, ok := v.(json.Number)
		if !ok {
			return 0, false
		}
		i, err := n.Int64()
		return i, err == nil
	}
	id, author := idOf(m["id"]), idOf(m["attributedTo"])
	page := idOf(m["url"])
	if page == "" {
		page = id
	}
	if !isHTTPURL(id) || !isHTTPURL(author) || !isHTTPURL(page) {
		return catalog.RemoteDesign{}, "", storage.Invalid("object", "a design object needs an id, a url and an attributedTo that are http(s) URLs")
	}
	version, ok := num(m["fab:version"])
	if !ok {
		return catalog.RemoteDesign{}, "", storage.Invalid("fab:version", "want a whole number")
	}
	r := catalog.RemoteDesign{
		Origin:  catalog.Origin{Hub: hostOf(id), Object: id, URL: page},
		Slug:    str(m["fab:slug"]),
		Author:  handleOf(author),
		Title:   str(m["name"]),
		Summary: str(m["fab:summaryText"]),
		License: str(m["spdx:licenseId"]), Licensor: str(m["fab:licensor"]),
		Version: int(min(max(version, -1), 1<<30)), Message: str(m["fab:versionMessage"]),
	}
	if r.Slug == "" {
		r.Slug = path.Base(id)
	}
	if t, err := time.Parse(time.RFC3339, str(m["published"])); err == nil {
		r.Published = t
	}
	tags, _ := m["tag"].([]any)
	if len(tags) > 100 {
		return catalog.RemoteDesign{}, "", storage.Invalid("tag", "too many tags")
	}
	for _, t := range tags {
		if t, ok := t.(map[string]any); ok && typeOf(t["type"]) == "Hashtag" {
			r.Tags = append(r.Tags, strings.ToLower(strings.TrimPrefix(str(t["name"]), "#")))
		}
	}
	files, _ := m["attachment"].([]any)
	if len(files) > catalog.MaxRemoteFiles {
		return catalog.RemoteDesign{}, "", storage.Invalid("attachment", fmt.Sprintf("at most %d files", catalog.MaxRemoteFiles))
	}
	for _, f := range files {
		f, ok := f.(map[string]any)
		if !ok {
			return catalog.RemoteDesign{}, "", storage.Invalid("attachment", "each file is an object")
		}
		size, _ := num(f["fab:size"])
		r.Files = append(r.Files, catalog.File{Path: str(f["name"]), SHA256: str(f["fab:sha256"]), Size: size, Origin: idOf(f["url"])})
	}
	if raw, ok := m["fab:bom"]; ok && raw != nil {
		lines, ok := raw.([]any)
		if !ok || len(lines) > catalog.MaxRemoteBOM {
			return catalog.RemoteDesign{}, "", storage.Invalid("fab:bom", fmt.Sprintf("want a list of at most %d lines", catalog.MaxRemoteBOM))
		}
		b, _ := json.Marshal(lines)
		if err := json.Unmarshal(b, &r.BOM); err != nil {
			return catalog.RemoteDesign{}, "", storage.Invalid("fab:bom", "a line is not of the BOM's shape")
		}
	}
	parents, _ := m["fab:parents"].([]any)
	if len(parents) > catalog.MaxRemoteParents {
		return catalog.RemoteDesign{}, "", storage.Invalid("fab:parents", fmt.Sprintf("at most %d parents", catalog.MaxRemoteParents))
	}
	for _, p := range parents {
		pm, _ := p.(map[string]any)
		n, _ := num(pm["fab:version"])
		r.Parents = append(r.Parents, catalog.RemoteParent{URL: idOf(p), Version: int(min(max(n, 0), 1<<30)),
			Title: str(pm["name"]), Owner: str(pm["fab:owner"]), License: str(pm["spdx:licenseId"])})
	}
	return r, author, nil
}

// handleOf is an actor's @handle@host, from the last segment of its id's path (a
// person's id on a hub is /people/<handle>).
func handleOf(actor string) string {
	u, err := url.Parse(actor)
	if err != nil {
		return ""
	}
	// The path as sent, its last segment kept to a handle's characters: a name decoded
	// from %0A and the like would carry line breaks into attribution.
	name := strings.Map(func(r rune) rune {
		if r < 128 && (r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return -1
	}, path.Base(strings.TrimSuffix(u.EscapedPath(), "/")))
	if name == "" || name == "." || name == ".." {
		name = "actor"
	}
	return "@" + name + "@" + strings.ToLower(u.Host)
}
