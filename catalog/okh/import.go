package okh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/catalog/license"
	"github.com/fabcommons/fabcommons/storage"
)

// Options are what the person importing adds to what the manifest says.
type Options struct {
	// License is used when the manifest names no license, or one this hub does not
	// know. It never overrides a license the manifest gives and the hub knows: the
	// licensor chose that one.
	License string
}

// Publisher publishes a design: catalog.Service does.
type Publisher interface {
	Create(ctx context.Context, actor catalog.Actor, nd catalog.NewDesign, files catalog.FileSource, bom catalog.BOMSource) (catalog.Design, catalog.Version, error)
	Limits() catalog.Limits
}

var _ Publisher = (*catalog.Service)(nil)

// maxBOMBytes bounds the BOM a manifest names, as an upload's BOM is bounded.
const maxBOMBytes = 5 << 20

// Import publishes the design an OKH package describes: the zip of size bytes in ra,
// with okh.toml at its root (or in its one top-level folder). The design takes the
// manifest's name, function (as its summary), license and keywords; its files are the
// ones the manifest names (parts' sources, exports and images, the readme, the
// instructions) that the archive holds; its BOM is the manifest's bom when it can be
// read. The licensor is the design's (Design.Licensor); version and repo go in the first
// version's message.
//
// It ends one of three ways: the design, its version and the report; a
// *storage.InvalidError (422) or storage.ErrTooLarge (413) saying what in the package
// cannot be taken, with nothing published; or another error from the publisher or
// reading ra.
func Import(ctx context.Context, pub Publisher, actor catalog.Actor, ra io.ReaderAt, size int64, opt Options) (catalog.Design, catalog.Version, Report, error) {
	a, err := openArchive(ra, size)
	if err != nil {
		return catalog.Design{}, catalog.Version{}, Report{}, err
	}
	raw, err := a.readManifest()
	if err != nil {
		return catalog.Design{}, catalog.Version{}, Report{}, err
	}
	m, rep, err := Parse(raw)
	if err != nil {
		return catalog.Design{}, catalog.Version{}, rep, err
	}
	nd, err := newDesign(m, &rep, opt)
	if err != nil {
		return catalog.Design{}, catalog.Version{}, rep, err
	}
	present, err := a.pick(m, &rep, pub.Limits())
	if err != nil {
		return catalog.Design{}, catalog.Version{}, rep, err
	}
	bom := a.bom(m, present, &rep)
	files := func(yield func(string, io.Reader) error) error {
		for _, p := range present {
			rc, err := a.entries[p].Open()
			if err != nil {
				return errArchive("%s cannot be read: %v", p, err)
			}
			err = yield(p, zipReader{rc, p})
			rc.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	d, v, err := pub.Create(ctx, actor, nd, files, func() []byte { return bom })
	if err != nil {
		return catalog.Design{}, catalog.Version{}, rep, err
	}
	return d, v, rep, nil
}

// newDesign is the design's description from the manifest, and the license settled.
func newDesign(m Manifest, rep *Report, opt Options) (catalog.NewDesign, error) {
	if m.Name == "" {
		return catalog.NewDesign{}, storage.Invalid("name", "the manifest names no design: give it a name (OKH v1: title)")
	}
	title := m.Name
	if r := []rune(title); len(r) > 200 {
		title = string(r[:200])
		rep.use("name", "", "cut to 200 characters")
	}
	lic, err := settleLicense(m.License, opt.License, rep)
	if err != nil {
		return catalog.NewDesign{}, err
	}
	var msg []string
	if m.Version != "" {
		msg = append(msg, "version "+m.Version)
	}
	if m.Licensor != "" {
		msg = append(msg, "licensor "+m.Licensor)
	}
	if m.Repo != "" {
		msg = append(msg, "from "+m.Repo)
	}
	message := "Imported from an OKH manifest"
	if len(msg) > 0 {
		message += ": " + strings.Join(msg, ", ")
	}
	if r := []rune(message); len(r) > 2000 {
		message = string(r[:2000])
	}
	licensor := strings.Join(strings.Fields(m.Licensor), " ")
	if r := []rune(licensor); len(r) > 200 {
		licensor = string(r[:200])
		rep.use("licensor", "", "cut to 200 characters")
	}
	return catalog.NewDesign{Title: title, Summary: m.Function, Tags: m.Tags, License: lic, Message: message, Licensor: licensor}, nil
}

// settleLicense decides the design's license. A manifest's SPDX id the hub knows is
// taken, written in any case; a deprecated GPL id (GPL-3.0, GPL-3.0+) is taken as the
// id SPDX replaced it with. A license that is missing, or one the hub does not know, is
// never guessed: the importer's choice (fallback) is used, and without one the import
// is refused, as a design without a license the hub can apply rules to cannot be
// published.
func settleLicense(given, fallback string, rep *Report) (string, error) {
	if given != "" {
		if id, ok := knownLicense(given); ok {
			if id != given {
				rep.use("license", "", fmt.Sprintf("%q read as %s", given, id))
			}
			if fallback != "" && fallback != id {
				rep.ignore("license (import form)", "", fmt.Sprintf("the manifest's license %s stands", id))
			}
			return id, nil
		}
	}
	why := "the manifest names no license"
	if given != "" {
		why = fmt.Sprintf("the manifest's license %q is not one this hub knows", given)
	}
	if fallback == "" {
		return "", storage.Invalid("license", why+"; choose one for the import (the license field) from the SPDX ids the hub knows, such as CERN-OHL-S-2.0, CC-BY-SA-4.0 or MIT")
	}
	if _, err := license.Lookup(fallback); err != nil {
		return "", storage.Invalid("license", err.Error())
	}
	rep.ignore("license", "", why+"; "+fallback+" was chosen on import")
	return fallback, nil
}

// deprecated are SPDX ids SPDX has replaced, with their replacements.
var deprecated = map[string]string{
	"gpl-2.0": "GPL-2.0-only", "gpl-2.0+": "GPL-2.0-or-later", "gpl-3.0": "GPL-3.0-only", "gpl-3.0+": "GPL-3.0-or-later",
}

func knownLicense(id string) (string, bool) {
	id = strings.TrimSpace(id)
	if r, ok := deprecated[strings.ToLower(id)]; ok {
		id = r
	}
	for _, l := range license.All() {
		if strings.EqualFold(l.ID, id) {
			return l.ID, true
		}
	}
	return "", false
}

// pick matches the manifest's files to the archive's entries: those present are
// returned in the manifest's order, those missing reported, those too large refused.
// Entries the manifest does not name are reported and left out.
func (a *archive) pick(m Manifest, rep *Report, limits catalog.Limits) ([]string, error) {
	var present []string
	named := map[string]bool{a.manifest: true}
	if p, _, ok := a.find(m.BOM); ok {
		named[p] = true
	}
	var total, packed uint64
	for _, ref := range m.Files {
		p, note, ok := a.find(ref.Path)
		if ok && named[p] {
			continue // named twice, differing in case
		}
		named[p] = true
		f := a.entries[p]
		switch {
		case !ok:
			rep.Missing = append(rep.Missing, Item{Key: ref.Key, Path: ref.Path, Note: "named but not in the archive"})
			continue
		case f.UncompressedSize64 == 0:
			rep.ignore(ref.Key, p, "an empty file")
			continue
		case f.UncompressedSize64 > uint64(limits.FileBytes):
			return nil, fmt.Errorf("%q is over %d bytes: %w", p, limits.FileBytes, storage.ErrTooLarge)
		}
		total += f.UncompressedSize64
		packed += f.CompressedSize64
		present = append(present, p)
		rep.use(ref.Key, p, note)
	}
	if total > uint64(limits.VersionBytes) {
		return nil, fmt.Errorf("the files the manifest names are %d bytes unpacked; at most %d: %w", total, limits.VersionBytes, storage.ErrTooLarge)
	}
	if total > maxRatio*packed+1<<20 {
		return nil, errArchive("its files unpack to %d bytes from %d: more than %d to 1 is refused as a likely zip bomb", total, packed, maxRatio)
	}
	if len(present) == 0 {
		return nil, storage.Invalid("files", fmt.Sprintf("none of the %d files the manifest names is in the archive", len(m.Files)))
	}
	for _, p := range a.order {
		if named[p] || strings.EqualFold(p, "ATTRIBUTION.md") || strings.HasPrefix(p, "__MACOSX/") {
			continue // ATTRIBUTION.md: the hub writes its own, with the lineage
		}
		if len(rep.Unnamed) == 100 {
			rep.Unnamed = append(rep.Unnamed, fmt.Sprintf("and %d more", len(a.order)-100))
			break
		}
		rep.Unnamed = append(rep.Unnamed, p)
	}
	return present, nil
}

// bom reads the manifest's BOM when it is in the archive and parses against the meshes
// taken; what cannot be read is reported, and the design is published without it.
func (a *archive) bom(m Manifest, present []string, rep *Report) []byte {
	if m.BOM == "" {
		return nil
	}
	p, note, ok := a.find(m.BOM)
	if !ok {
		rep.Missing = append(rep.Missing, Item{Key: "bom", Path: m.BOM, Note: "named but not in the archive"})
		return nil
	}
	b, err := a.readSmall(p, maxBOMBytes)
	if err != nil {
		rep.ignore("bom", p, err.Error())
		return nil
	}
	var meshes []string
	for _, p := range present {
		if catalog.KindOf(p) == catalog.FileMesh {
			meshes = append(meshes, p)
		}
	}
	lines, err := catalog.ParseBOM(b, meshes)
	if err != nil {
		rep.ignore("bom", p, "not read: "+err.Error())
		return nil
	}
	n := fmt.Sprintf("%d lines", len(lines))
	if len(lines) == 1 {
		n = "1 line"
	}
	if note != "" {
		n += "; " + note
	}
	rep.use("bom", p, n)
	return b
}

// zipReader turns a failure to unpack an entry (a bad checksum, more bytes than the
// directory says) into a refusal of the archive.
type zipReader struct {
	r    io.Reader
	path string
}

func (z zipReader) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = errArchive("%s cannot be unpacked: %v", z.path, err)
	}
	return n, err
}

// find looks a named path up in the archive: as named, or else differing only in case
// when one entry does (manifests written on systems that ignore case often differ so).
// note says which entry was taken when it is not the one named.
func (a *archive) find(p string) (found, note string, ok bool) {
	if p == "" {
		return "", "", false
	}
	if _, ok := a.entries[p]; ok {
		return p, "", true
	}
	for _, e := range a.order {
		if strings.EqualFold(e, p) {
			if found != "" {
				return "", "", false // two candidates: neither is taken
			}
			found = e
		}
	}
	if found == "" {
		return "", "", false
	}
	return found, fmt.Sprintf("named %q, which the archive has as %q", p, found), true
}
