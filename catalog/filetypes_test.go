package catalog

import (
	"strings"
	"testing"
)

func TestTypeOf(t *testing.T) {
	for name, want := range map[string]FileType{
		"parts/Base.STL":     {FileMesh, "STL mesh", "model/stl"},
		"cad/frame.FCStd":    {FileCAD, "FreeCAD model", "application/zip"},
		"pcb/main.kicad_pcb": {FileCAD, "KiCad board", "text/plain; charset=utf-8"},
		"a.scad":             {FileCAD, "OpenSCAD source", "text/plain; charset=utf-8"},
		"drawings/side.dxf":  {FileDrawing, "DXF drawing", "image/vnd.dxf"},
		"photo.JPG":          {FileImage, "JPEG picture", "image/jpeg"},
		"README":             {FileDocument, "File", "application/octet-stream"},
		"page.html":          {FileDocument, "HTML file", "application/octet-stream"},
		"tool.js":            {FileDocument, "JS file", "application/octet-stream"},
		"odd.name.xyz":       {FileDocument, "XYZ file", "application/octet-stream"},
		"dir.stl/notes":      {FileDocument, "File", "application/octet-stream"},
	} {
		if got := TypeOf(name); got != want {
			t.Errorf("TypeOf(%q) = %+v, want %+v", name, got, want)
		}
	}
	// A media type the browser would run is never given out, whatever the system knows.
	for ext := range map[string]bool{".htm": true, ".xhtml": true, ".mjs": true, ".xml": true, ".svgz": true} {
		if m := TypeOf("x" + ext).Media; strings.Contains(m, "html") || strings.Contains(m, "script") || strings.Contains(m, "xml") || strings.Contains(m, "svg") {
			t.Errorf("%s is served as %s", ext, m)
		}
	}
}
