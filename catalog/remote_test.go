package catalog

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/storage"
)

func TestRemoteDesignCheck(t *testing.T) {
	t.Parallel()
	good := func() RemoteDesign {
		return RemoteDesign{
			Origin: Origin{Hub: "a.example", Object: "https://a.example/designs/clip", URL: "https://a.example/designs/clip"},
			Slug:   "clip", Author: "@ada@a.example", Title: "Clip", License: "MIT", Version: 1,
			Files: []File{{Path: "clip.stl", SHA256: strings.Repeat("a", 64), Size: 684, Origin: "https://a.example/f/clip.stl"}},
			BOM:   []BOMLine{{Ref: "C1", Kind: KindPrinted, Name: "Clip", Qty: 2, File: "clip.stl"}},
		}
	}
	manyFiles := good()
	for i := range MaxRemoteFiles {
		manyFiles.Files = append(manyFiles.Files, File{Path: strings.Repeat("x", 1+i%50) + string(rune('a'+i%26)) + ".md", SHA256: strings.Repeat("b", 64), Size: 1, Origin: "https://a.example/f"})
	}
	manyLines := good()
	for i := range MaxRemoteBOM + 1 {
		manyLines.BOM = append(manyLines.BOM, BOMLine{Ref: "S" + strings.Repeat("1", i+1), Kind: KindPurchased, Name: "Screw", Qty: 1})
	}
	for name, tc := range map[string]struct {
		edit  func(*RemoteDesign)
		field string
	}{
		"good":               {func(*RemoteDesign) {}, ""},
		"no title":           {func(r *RemoteDesign) { r.Title = " " }, "title"},
		"a long summary":     {func(r *RemoteDesign) { r.Summary = strings.Repeat("s", 5001) }, "summary"},
		"an unknown license": {func(r *RemoteDesign) { r.License = "Proprietary" }, "license"},
		"version 0":          {func(r *RemoteDesign) { r.Version = 0 }, "version"},
		"no files":           {func(r *RemoteDesign) { r.Files = nil }, "files"},
		"too many files":     {func(r *RemoteDesign) { *r = manyFiles }, "files"},
		"a path outside":     {func(r *RemoteDesign) { r.Files[0].Path = "../etc/passwd" }, "files"},
		"a bad hash":         {func(r *RemoteDesign) { r.Files[0].SHA256 = "ABC" }, "files"},
		"a file too large":   {func(r *RemoteDesign) { r.Files[0].Size = DefaultLimits.FileBytes + 1 }, "files"},
		"files too large together": {func(r *RemoteDesign) {
			for i := range DefaultLimits.VersionBytes/DefaultLimits.FileBytes + 1 {
				r.Files = append(r.Files, File{Path: fmt.Sprintf("part%d.stl", i), SHA256: strings.Repeat("c", 64), Size: DefaultLimits.FileBytes, Origin: "https://a.example/f"})
			}
		}, "files"},
		"a file URL not http":       {func(r *RemoteDesign) { r.Files[0].Origin = "file:///etc/passwd" }, "files"},
		"too many BOM lines":        {func(r *RemoteDesign) { *r = manyLines }, "bom"},
		"a printed line of no file": {func(r *RemoteDesign) { r.BOM[0].File = "other.stl" }, "bom"},
		"a parent not a URL":        {func(r *RemoteDesign) { r.Parents = []RemoteParent{{URL: "javascript:alert(1)"}} }, "parents"},
		"a parent's license unknown": {func(r *RemoteDesign) {
			r.Parents = []RemoteParent{{URL: "https://b.example/designs/vise", License: "MIT\n\n## Injected"}}
		}, "parents"},
		"no origin": {func(r *RemoteDesign) { r.Origin.Object = "" }, "id"},
	} {
		r := good()
		tc.edit(&r)
		err := r.Check(DefaultLimits)
		var inv *storage.InvalidError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: got %v, want nil", name, err)
		case tc.field != "" && (!errors.As(err, &inv) || inv.Field != tc.field):
			t.Errorf("%s: got %v, want invalid %s", name, err, tc.field)
		}
	}
}
