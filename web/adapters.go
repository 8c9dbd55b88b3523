package web

import (
	"context"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/storage"
)

// Printables shows catalog versions to fabrication as things to make.
type Printables struct{ Catalog *catalog.Service }

func (p Printables) Printable(ctx context.Context, slug string, version int) (fabrication.Printable, error) {
	var d catalog.Design
	var v catalog.Version
	var err error
	if version == 0 {
		var latest *catalog.Version
		d, latest, err = p.Catalog.Design(ctx, catalog.Actor{}, slug)
		if err == nil && latest == nil {
			return fabrication.Printable{}, storage.Invalid("design", "the design is hidden and cannot be made")
		}
		if latest != nil {
			v = *latest
		}
	} else {
		d, v, err = p.Catalog.Version(ctx, catalog.Actor{}, slug, version)
	}
	if err != nil {
		return fabrication.Printable{}, err
	}
	out := fabrication.Printable{DesignID: d.ID, Slug: d.Slug, Title: d.Title, Version: v.Number}
	for _, f := range v.Files {
		if f.Kind != catalog.FileMesh || f.Mesh == nil || f.Mesh.Triangles == 0 {
			continue
		}
		s := f.Mesh.BBox.Size
		out.Files = append(out.Files, fabrication.PrintableFile{Path: f.Path, SHA256: f.SHA256, Size: f.Size, BBox: fabrication.Volume{X: s[0], Y: s[1], Z: s[2]}})
	}
	for _, l := range v.BOM {
		if l.Kind == catalog.KindPrinted {
			out.BOM = append(out.BOM, fabrication.PrintableLine{Ref: l.Ref, File: l.File, Qty: int(l.Qty), Material: l.Material})
		}
	}
	return out, nil
}

// Users resolves handles for lab membership.
type Users struct{ Store account.Store }

func (u Users) UserIDByHandle(ctx context.Context, handle string) (string, error) {
	usr, err := u.Store.UserByHandle(ctx, account.NormalizeHandle(handle))
	return usr.ID, err
}
