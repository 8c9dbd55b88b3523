package catalog

import (
	"maps"
	"mime"
	"path"
	"strings"
)

// File kinds: how the hub treats a file of a design.
const (
	FileMesh     = "mesh"     // analysed and shown in the 3D viewer
	FileCAD      = "source"   // what the design is made in: CAD models, OpenSCAD, KiCad
	FileDrawing  = "drawing"  // 2D: SVG, DXF, PDF drawings
	FileImage    = "image"    // pictures: shown in the design's gallery
	FileDocument = "document" // everything else: text, tables, archives
)

// FileType is what a file is, by its name: the kind the hub treats it as, a label a
// person reads on the design and upload pages, and the media type it is served with.
type FileType struct {
	Kind  string `json:"kind"`
	Label string `json:"label"`
	Media string `json:"media"`
}

// fileTypes by lower-case extension. KiCad's extensions have underscores, so they are
// matched whole.
var fileTypes = map[string]FileType{
	".stl": {FileMesh, "STL mesh", "model/stl"},
	".3mf": {FileMesh, "3MF model", "model/3mf"},

	".step":      {FileCAD, "STEP model (CAD)", "model/step"},
	".stp":       {FileCAD, "STEP model (CAD)", "model/step"},
	".iges":      {FileCAD, "IGES model (CAD)", "model/iges"},
	".igs":       {FileCAD, "IGES model (CAD)", "model/iges"},
	".scad":      {FileCAD, "OpenSCAD source", "text/plain; charset=utf-8"},
	".fcstd":     {FileCAD, "FreeCAD model", "application/zip"},
	".f3d":       {FileCAD, "Fusion 360 archive", "application/octet-stream"},
	".blend":     {FileCAD, "Blender scene", "application/octet-stream"},
	".obj":       {FileCAD, "Wavefront OBJ mesh", "model/obj"},
	".kicad_pro": {FileCAD, "KiCad project", "application/json"},
	".kicad_pcb": {FileCAD, "KiCad board", "text/plain; charset=utf-8"},
	".kicad_sch": {FileCAD, "KiCad schematic", "text/plain; charset=utf-8"},
	".kicad_sym": {FileCAD, "KiCad symbol library", "text/plain; charset=utf-8"},
	".kicad_mod": {FileCAD, "KiCad footprint", "text/plain; charset=utf-8"},
	".brd":       {FileCAD, "Eagle board", "application/xml"},
	".sch":       {FileCAD, "Eagle schematic", "application/xml"},
	".ino":       {FileCAD, "Arduino sketch", "text/plain; charset=utf-8"},
	".gbr":       {FileCAD, "Gerber file", "application/vnd.gerber"},

	".svg": {FileDrawing, "SVG drawing", "image/svg+xml"},
	".dxf": {FileDrawing, "DXF drawing", "image/vnd.dxf"},
	".dwg": {FileDrawing, "DWG drawing", "image/vnd.dwg"},
	".pdf": {FileDrawing, "PDF document", "application/pdf"},

	".png":  {FileImage, "PNG picture", "image/png"},
	".jpg":  {FileImage, "JPEG picture", "image/jpeg"},
	".jpeg": {FileImage, "JPEG picture", "image/jpeg"},
	".gif":  {FileImage, "GIF picture", "image/gif"},
	".webp": {FileImage, "WebP picture", "image/webp"},

	".md":    {FileDocument, "Markdown text", "text/markdown; charset=utf-8"},
	".txt":   {FileDocument, "Text", "text/plain; charset=utf-8"},
	".csv":   {FileDocument, "CSV table", "text/csv; charset=utf-8"},
	".gcode": {FileDocument, "G-code", "text/x.gcode"},
	".zip":   {FileDocument, "Zip archive", "application/zip"},
}

// TypeOf says what a file is by its name. Names the hub does not know are documents
// labelled by their extension.
func TypeOf(name string) FileType {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := fileTypes[ext]; ok {
		return t
	}
	t := FileType{Kind: FileDocument, Label: "File", Media: "application/octet-stream"}
	if ext != "" {
		t.Label = strings.ToUpper(ext[1:]) + " file"
	}
	// The media type of an unknown extension comes from the system's table, but never
	// one a browser would run (HTML, SVG, script).
	if m := mime.TypeByExtension(ext); m != "" && !strings.Contains(m, "html") && !strings.Contains(m, "svg") &&
		!strings.Contains(m, "javascript") && !strings.Contains(m, "xml") {
		t.Media = m
	}
	return t
}

// FileTypes is the table TypeOf reads, by lower-case extension (".stl").
func FileTypes() map[string]FileType { return maps.Clone(fileTypes) }

// KindOf says how a file is treated: STL files are analysed as meshes, pictures shown
// in a gallery, and so on (TypeOf).
func KindOf(p string) string { return TypeOf(p).Kind }
