package mesh

import (
	"archive/zip"
	"bufio"
	"compress/flate"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strconv"
	"strings"
	"unicode"

	"github.com/hschendel/stl"
)

// 3MF (the 3MF Consortium's core specification): an OPC zip package whose root
// relationship names a model part (usually 3D/3dmodel.model). The model lists objects
// (a mesh of vertices and triangles, or components: other objects under a transform) and
// a build: the items to make, each an object under a transform. Coordinates are in the
// model's unit. Everything here reads the build as placed, in millimetres.

// Lint codes a 3MF can carry besides the mesh codes.
const (
	Code3MFMirrored        = "3MF_MIRRORED"              // a transform with a negative determinant mirrors an object
	Code3MFBadIndex        = "3MF_BAD_VERTEX_INDEX"      // a triangle names a vertex the mesh does not have
	Code3MFRepeatedIndex   = "3MF_REPEATED_VERTEX_INDEX" // a triangle names one vertex twice (the spec forbids it)
	Code3MFUnplaced        = "3MF_UNPLACED_OBJECT"       // an object no build item or component uses
	Code3MFMissingObject   = "3MF_MISSING_OBJECT"        // a build item or component names an object that is not there
	Code3MFUnsupportedExt  = "3MF_UNSUPPORTED_EXTENSION" // requiredextensions names an extension this reader does not know
	Code3MFUnknownUnit     = "3MF_UNKNOWN_UNIT"          // a unit the spec does not define; millimetres assumed
	Code3MFNoBuild         = "3MF_NO_BUILD"              // the build has no items: nothing to make
	Code3MFOtherInBuild    = "3MF_OTHER_IN_BUILD"        // a build item places an object of type "other" (the spec forbids it)
	Code3MFExternalPart    = "3MF_EXTERNAL_COMPONENT"    // a component outside the root part names another part (the production extension forbids it)
	Code3MFSupportInBuild  = "3MF_SUPPORT_IN_BUILD"      // a build item places a support object; slicers treat it apart
	Code3MFMeshAndChildren = "3MF_MESH_AND_COMPONENTS"   // an object with both a mesh and components (the spec forbids it)
)

// Err3MF means the bytes cannot be read as a 3MF package, or the package is beyond
// the reader's bounds. It is always the file's fault, never the hub's.
var Err3MF = errors.New("not a readable 3MF file")

// Bounds on what a 3MF may hold. A 3MF is a zip: a few megabytes can expand to
// gigabytes, and components can place an object many times over, so each is bounded
// on what is really read, never on what a header claims.
const (
	max3MFEntries    = 4096
	max3MFModel      = 1 << 30 // bytes of model XML, uncompressed
	max3MFSmallPart  = 1 << 20 // bytes of a relationships part
	max3MFThumbnail  = 16 << 20
	max3MFVertices   = 8_000_000 // stored: 12 bytes each
	max3MFTriangles  = 8_000_000 // stored: 12 bytes each
	max3MFPlaced     = 8_000_000 // the topology's tables grow with these, as with a 400 MB STL
	max3MFPlacements = 1_000_000 // objects placed, through items and components
	max3MFDepth      = 32        // nesting of components
	max3MFObjects    = 100_000
	max3MFItems      = 100_000
)

// Namespaces and relationship types from the 3MF core and OPC specifications.
const (
	ns3MFCore       = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
	relModel        = "http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"
	relThumbnail    = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail"
	ns3MFProduction = "http://schemas.microsoft.com/3dmanufacturing/production/2015/06"
)

// known3MFExtensions: true for those that change nothing in the geometry this reader
// takes (materials and colours, UUIDs, parts), so a file that requires them is read in
// full; the false ones are listed to say that they do change it (lattices, slices,
// volumes, booleans), as does any extension not listed.
var known3MFExtensions = map[string]bool{
	ns3MFProduction: true,
	"http://schemas.microsoft.com/3dmanufacturing/material/2015/02":         true,
	"http://schemas.microsoft.com/3dmanufacturing/trianglesets/2021/07":     true,
	"http://schemas.3mf.io/3dmanufacturing/trianglesets/2021/07":            true,
	"http://schemas.microsoft.com/3dmanufacturing/securecontent/2019/04":    false,
	"http://schemas.microsoft.com/3dmanufacturing/beamlattice/2017/02":      false,
	"http://schemas.microsoft.com/3dmanufacturing/slice/2015/07":            false,
	"http://schemas.microsoft.com/3dmanufacturing/volumetric/2018/11":       false,
	"http://schemas.3mf.io/3dmanufacturing/displacement/2022/07":            false,
	"http://schemas.3mf.io/3dmanufacturing/booleanoperations/2023/07":       false,
	"http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel/obsolete": false,
}

// unitsToMM are the units of the core specification in millimetres.
var unitsToMM = map[string]float64{
	"micron": 0.001, "millimeter": 1, "centimeter": 10, "inch": 25.4, "foot": 304.8, "meter": 1000,
}

// ObjectReport is what a 3MF build item adds up to as placed: its own figures, in
// millimetres. The edges and parts are counted over the whole build, in the Report.
type ObjectReport struct {
	Item      int     `json:"item"` // 1-based, in build order
	ObjectID  int     `json:"object_id"`
	Part      string  `json:"part,omitempty"` // the model part holding the object, when not the root (production extension)
	Name      string  `json:"name,omitempty"`
	Triangles int     `json:"triangles"`
	BBox      BBox    `json:"bbox"`
	Volume    float64 `json:"volume"`
	Area      float64 `json:"area"`
	Mirrored  bool    `json:"mirrored,omitempty"` // the item's transform is a mirror image
}

// transform is a 3MF matrix: the first three rows of a 4×4 affine matrix applied to
// row vectors, in the file's order m00 m01 m02 m10 m11 m12 m20 m21 m22 m30 m31 m32.
type transform [12]float64

var identity = transform{1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0}

func (m *transform) apply(p [3]float64) [3]float64 {
	return [3]float64{
		p[0]*m[0] + p[1]*m[3] + p[2]*m[6] + m[9],
		p[0]*m[1] + p[1]*m[4] + p[2]*m[7] + m[10],
		p[0]*m[2] + p[1]*m[5] + p[2]*m[8] + m[11],
	}
}

// then is m followed by o: a point goes through m first.
func (m transform) then(o transform) transform {
	var r transform
	for row := range 4 {
		for col := range 3 {
			var s float64
			for k := range 3 {
				s += m[3*row+k] * o[3*k+col]
			}
			if row == 3 {
				s += o[9+col]
			}
			r[3*row+col] = s
		}
	}
	return r
}

func (m *transform) det() float64 {
	return m[0]*(m[4]*m[8]-m[5]*m[7]) - m[1]*(m[3]*m[8]-m[5]*m[6]) + m[2]*(m[3]*m[7]-m[4]*m[6])
}

func parseTransform(s string) (transform, error) {
	f := strings.Fields(s)
	if len(f) != 12 {
		return identity, fmt.Errorf("transform %q: want 12 numbers, got %d", clip(s), len(f))
	}
	var m transform
	for i, x := range f {
		v, err := strconv.ParseFloat(x, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return identity, fmt.Errorf("transform %q: %q is not a number", clip(s), clip(x))
		}
		m[i] = v
	}
	return m, nil
}

// object3MF is one object of the model.
type object3MF struct {
	id         int
	name, kind string
	vertices   []float32 // x, y, z
	triangles  []uint32  // v1, v2, v3
	components []component3MF
	hasMesh    bool
	used       bool
}

// objRef names an object: its id within a model part ("" for the root model part).
// The production extension lets the root's components and items name objects in other
// parts (Bambu Studio and OrcaSlicer keep every mesh in a part of its own).
type objRef struct {
	part string // lower-cased part name, "" for the root
	id   int
}

func (r objRef) String() string {
	if r.part == "" {
		return strconv.Itoa(r.id)
	}
	return fmt.Sprintf("%d of /%s", r.id, clip(r.part))
}

type component3MF struct {
	object objRef
	m      transform
}

type item3MF struct {
	object objRef
	m      transform
}

// model3MF is the parsed model: the root part and the parts it names.
type model3MF struct {
	unit      string
	scale     float64
	objects   map[objRef]*object3MF
	order     []objRef // in file order
	items     []item3MF
	vertices  int
	triangles int
	plain     bool // scanItems reads plain vertices and triangles (tests compare with the decoder alone)
}

// Package3MF is an opened 3MF: its model part read and checked, ready to be placed.
type Package3MF struct {
	model     *model3MF
	thumbnail *zip.File
	codes     Report // lint found while reading, merged into the analysis
	placed    int    // triangles the build places, counted before placing
}

// Open3MF reads the package in r (size bytes). It fails with Err3MF when the bytes are
// not a 3MF package, the model cannot be parsed, components form a cycle or nest too
// deep, or a bound is passed; a file that breaks a rule of the specification without
// leaving its geometry in doubt opens, and the broken rule is a lint code.
func Open3MF(r io.ReaderAt, size int64) (*Package3MF, error) {
	return open3MF(r, size, true)
}

// open3MF is Open3MF with scanItems' fast path as a choice, for tests.
func open3MF(r io.ReaderAt, size int64, plain bool) (*Package3MF, error) {
	zr, err := zip.NewReader(&within{r: r, size: size}, size)
	if err != nil {
		return nil, readError("not a zip package", err)
	}
	if len(zr.File) > max3MFEntries {
		return nil, fmt.Errorf("%w: %d entries in the package, over %d", Err3MF, len(zr.File), max3MFEntries)
	}
	parts := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		name, ok := cleanPartName(f.Name)
		if !ok {
			return nil, fmt.Errorf("%w: part name %q is not a clean path", Err3MF, clip(f.Name))
		}
		if f.FileInfo().IsDir() {
			continue
		}
		key := strings.ToLower(name) // OPC part names compare without case
		if parts[key] != nil {
			return nil, fmt.Errorf("%w: part %q appears twice", Err3MF, clip(name))
		}
		parts[key] = f
	}
	p := &Package3MF{codes: Report{Codes: []string{}}}
	modelName, thumbName := "3D/3dmodel.model", ""
	if rels := parts["_rels/.rels"]; rels != nil {
		got, err := readRels(rels)
		if err != nil {
			return nil, err
		}
		for _, rel := range got {
			target := strings.TrimPrefix(rel.Target, "/")
			switch rel.Type {
			case relModel:
				modelName = target
			case relThumbnail:
				thumbName = target
			}
		}
	}
	model := parts[strings.ToLower(modelName)]
	if model == nil {
		return nil, fmt.Errorf("%w: the package has no model part (%s)", Err3MF, clip(modelName))
	}
	if thumbName != "" {
		p.thumbnail = parts[strings.ToLower(thumbName)]
	}
	m := &model3MF{unit: "millimeter", scale: 1, objects: map[objRef]*object3MF{}, plain: plain}
	others, err := m.parsePart(model, "", &p.codes)
	if err != nil {
		return nil, err
	}
	// Parts the root names (production extension), each read once; they may not name
	// parts in turn, so this is one level.
	for _, name := range others {
		f := parts[name]
		if f == nil {
			p.codes.lint(Code3MFMissingObject, fmt.Sprintf("the model names the part /%s, which the package does not have", clip(name)))
			continue
		}
		if _, err := m.parsePart(f, name, &p.codes); err != nil {
			return nil, err
		}
	}
	p.model = m
	if p.placed, err = p.model.check(&p.codes); err != nil {
		return nil, err
	}
	return p, nil
}

// within keeps reads inside the file: a damaged directory can point anywhere, and
// that is the file's fault (Err3MF), not a failure of the store underneath.
type within struct {
	r    io.ReaderAt
	size int64
}

func (w *within) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > w.size {
		return 0, fmt.Errorf("%w: an offset outside the file", Err3MF)
	}
	if rest := w.size - off; int64(len(p)) > rest {
		n, err := w.r.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return w.r.ReadAt(p, off)
}

// cleanPartName: a zip entry name must be a plain relative path (OPC part names are
// absolute URIs written without the leading slash).
func cleanPartName(name string) (string, bool) {
	if name == "" || len(name) > 1024 || strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/") ||
		strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", false
	}
	trimmed := strings.TrimSuffix(name, "/")
	for _, part := range strings.Split(trimmed, "/") {
		if part == "" || part == "." || part == ".." {
			return "", false
		}
	}
	return path.Clean(trimmed), true
}

// openPart opens a part and reads at most limit bytes of it, whatever its header says.
func openPart(f *zip.File, limit int64) (io.ReadCloser, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%w: part %s is %d bytes, over %d", Err3MF, clip(f.Name), f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, readError("part "+clip(f.Name), err)
	}
	return struct {
		io.Reader
		io.Closer
	}{&boundedReader{r: rc, left: limit, name: f.Name}, rc}, nil
}

// boundedReader fails once more than its limit has come out: the zip's own sizes are
// not trusted, a part that inflates past its bound is an error, not a truncation.
type boundedReader struct {
	r    io.Reader
	left int64
	name string
}

func (b *boundedReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return n, fmt.Errorf("%w: part %s expands past its bound", Err3MF, clip(b.name))
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = readError("part "+clip(b.name), err)
	}
	return n, err
}

// readError tells the file's faults (Err3MF: a damaged zip, a bad checksum, XML that
// does not parse) from failures to read the bytes at all (blob storage), which are
// not the file's and keep their own identity.
func readError(what string, err error) error {
	var syntax *xml.SyntaxError
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, Err3MF):
		return err
	case errors.As(err, &syntax), errors.As(err, &corrupt), errors.Is(err, zip.ErrFormat), errors.Is(err, zip.ErrChecksum),
		errors.Is(err, zip.ErrAlgorithm), errors.Is(err, zip.ErrInsecurePath), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %s: %v", Err3MF, what, firstLine(err.Error()))
	}
	var failed *readFailure
	if errors.As(err, &failed) {
		return err
	}
	return &readFailure{what: what, err: err}
}

// readFailure: the bytes could not be read (not the file's fault).
type readFailure struct {
	what string
	err  error
}

func (e *readFailure) Error() string { return "read 3MF " + e.what + ": " + e.err.Error() }
func (e *readFailure) Unwrap() error { return e.err }

// xmlError: whatever the XML decoder says is the file's fault, unless reading failed.
func xmlError(what string, err error) error {
	var failed *readFailure
	if errors.Is(err, Err3MF) || errors.As(err, &failed) {
		return err
	}
	return fmt.Errorf("%w: %s: %v", Err3MF, what, firstLine(err.Error()))
}

type relationship struct {
	Target string `xml:"Target,attr"`
	Type   string `xml:"Type,attr"`
}

func readRels(f *zip.File) ([]relationship, error) {
	rc, err := openPart(f, max3MFSmallPart)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var doc struct {
		Rels []relationship `xml:"Relationship"`
	}
	if err := xml.NewDecoder(rc).Decode(&doc); err != nil {
		return nil, xmlError("relationships", err)
	}
	return doc.Rels, nil
}

// parsePart streams one model part's XML into m: one token at a time, so memory holds
// the vertices and triangles (bounded over all parts) and never the text. part is ""
// for the root model part, whose unit and build count; it returns the other parts the
// root names (lower-cased, in order of first mention).
func (m *model3MF) parsePart(f *zip.File, part string, codes *Report) ([]string, error) {
	rc, err := openPart(f, max3MFModel)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var others []string
	named := map[string]bool{}
	// refOf reads a p:path: the root part itself, or another part it names.
	refOf := func(path string, id int) (objRef, bool) {
		target := strings.ToLower(strings.TrimPrefix(path, "/"))
		if path == "" || target == strings.ToLower(f.Name) {
			return objRef{part: part, id: id}, true
		}
		if part != "" {
			return objRef{}, false // only the root may name other parts
		}
		if !named[target] {
			named[target] = true
			others = append(others, target)
		}
		return objRef{part: target, id: id}, true
	}
	// The decoder reads from br byte by byte without buffering of its own (br is an
	// io.ByteReader), so scanItems can take over br between two of its tokens.
	br := bufio.NewReaderSize(rc, 64<<10)
	dec := xml.NewDecoder(br)
	var (
		obj     *object3MF
		inBuild bool
		seenTop bool
		depth   int
	)
	fail := func(format string, args ...any) error {
		line, _ := dec.InputPos()
		return fmt.Errorf("%w: model line %d: %s", Err3MF, line, fmt.Sprintf(format, args...))
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, xmlError("model XML", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > 64 {
				return nil, fail("elements nest deeper than 64")
			}
			if t.Name.Space != ns3MFCore {
				if !seenTop {
					return nil, fail("the root element is %s, not a 3MF core model", clip(t.Name.Space+" "+t.Name.Local))
				}
				dec.Skip() // another extension's element: nothing of the geometry
				depth--
				continue
			}
			switch t.Name.Local {
			case "model":
				if seenTop {
					return nil, fail("a model inside the model")
				}
				seenTop = true
				if err := m.readModelAttrs(t, part == "", codes); err != nil {
					return nil, fail("%v", err)
				}
			case "object":
				if obj != nil {
					return nil, fail("an object inside an object")
				}
				if len(m.objects) >= max3MFObjects {
					return nil, fail("over %d objects", max3MFObjects)
				}
				obj = &object3MF{kind: "model"}
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "id":
						if a.Name.Space == "" {
							obj.id, err = strconv.Atoi(a.Value)
							if err != nil || obj.id <= 0 {
								return nil, fail("object id %q is not a positive integer", clip(a.Value))
							}
						}
					case "name":
						obj.name = clip(a.Value)
					case "type":
						obj.kind = a.Value
					}
				}
				if obj.id == 0 {
					return nil, fail("an object without an id")
				}
				ref := objRef{part: part, id: obj.id}
				if m.objects[ref] != nil {
					return nil, fail("two objects have id %d", obj.id)
				}
				m.objects[ref] = obj
				m.order = append(m.order, ref)
			case "mesh":
				if obj == nil {
					return nil, fail("a mesh outside an object")
				}
				obj.hasMesh = true
			case "vertices", "triangles":
				if obj == nil {
					return nil, fail("%s outside an object", t.Name.Local)
				}
				// The bulk of a model: read straight from the bytes while they are in
				// the plain form producers write (see scanItems); the decoder takes
				// anything else, and the closing tag.
				if err := m.scanItems(br, t.Name.Local, obj); err != nil {
					return nil, fail("%v", err)
				}
			case "vertex":
				if obj == nil {
					return nil, fail("a vertex outside an object")
				}
				var vals [3]string
				got := 0
				for _, a := range t.Attr {
					if k := strings.Index("xyz", a.Name.Local); a.Name.Space == "" && len(a.Name.Local) == 1 && k >= 0 {
						vals[k], got = a.Value, got|1<<k
					}
				}
				if err := m.vertex(obj, vals, got); err != nil {
					return nil, fail("%v", err)
				}
			case "triangle":
				if obj == nil {
					return nil, fail("a triangle outside an object")
				}
				var vals [3]string
				got := 0
				for _, a := range t.Attr {
					if k, ok := triangleAttr(a.Name.Local); a.Name.Space == "" && ok {
						vals[k], got = a.Value, got|1<<k
					}
				}
				if err := m.triangle(obj, vals, got); err != nil {
					return nil, fail("%v", err)
				}
			case "component":
				if obj == nil {
					return nil, fail("a component outside an object")
				}
				id, at, pathAttr, err := placementAttrs(t.Attr, "component")
				if err != nil {
					return nil, fail("%v", err)
				}
				c := component3MF{m: at}
				var ok bool
				if c.object, ok = refOf(pathAttr, id); !ok {
					codes.lint(Code3MFExternalPart, "a component outside the root model part names another part, which the production extension forbids; it is left out")
					continue
				}
				obj.components = append(obj.components, c)
			case "item":
				if !inBuild {
					return nil, fail("an item outside the build")
				}
				if len(m.items) >= max3MFItems {
					return nil, fail("over %d build items", max3MFItems)
				}
				id, at, pathAttr, err := placementAttrs(t.Attr, "item")
				if err != nil {
					return nil, fail("%v", err)
				}
				it := item3MF{m: at}
				if part != "" {
					continue // only the root part's build counts
				}
				it.object, _ = refOf(pathAttr, id)
				m.items = append(m.items, it)
			case "build":
				inBuild = true
			}
		case xml.EndElement:
			depth--
			if t.Name.Space != ns3MFCore {
				continue
			}
			switch t.Name.Local {
			case "object":
				obj = nil
			case "build":
				inBuild = false
			}
		}
	}
	if !seenTop {
		return nil, fmt.Errorf("%w: the model part has no model element", Err3MF)
	}
	return others, nil
}

// placementAttrs reads what places an object, for a component or a build item (what):
// its objectid, its transform (the identity when there is none) and the production
// extension's path to the part that holds the object.
func placementAttrs(attrs []xml.Attr, what string) (id int, m transform, path string, err error) {
	m = identity
	for _, a := range attrs {
		switch {
		case a.Name.Space == "" && a.Name.Local == "objectid":
			if id, err = strconv.Atoi(a.Value); err != nil {
				return 0, m, "", fmt.Errorf("%s objectid %q is not an integer", what, clip(a.Value))
			}
		case a.Name.Space == "" && a.Name.Local == "transform":
			if m, err = parseTransform(a.Value); err != nil {
				return 0, m, "", fmt.Errorf("%s %v", what, err)
			}
		case a.Name.Space == ns3MFProduction && a.Name.Local == "path":
			path = a.Value
		}
	}
	return id, m, path, nil
}

func (m *model3MF) readModelAttrs(t xml.StartElement, root bool, codes *Report) error {
	prefixes := map[string]string{}
	var required []string
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns":
			prefixes[a.Name.Local] = a.Value
		case a.Name.Space == "" && a.Name.Local == "unit" && root:
			m.unit = a.Value
		case a.Name.Space == "" && a.Name.Local == "requiredextensions":
			required = strings.Fields(a.Value)
		}
	}
	if root { // other parts are read in the root's unit
		if s, ok := unitsToMM[m.unit]; ok {
			m.scale = s
		} else {
			codes.lint(Code3MFUnknownUnit, fmt.Sprintf("the unit %q is none the specification defines; read as millimetres", clip(m.unit)))
			m.unit = "millimeter"
		}
	}
	for _, prefix := range required {
		ns, ok := prefixes[prefix]
		if !ok {
			return fmt.Errorf("requiredextensions names the prefix %q, which the model does not declare", clip(prefix))
		}
		if !known3MFExtensions[ns] {
			codes.lint(Code3MFUnsupportedExt, fmt.Sprintf("the file requires the extension %s, which this reader does not apply: the figures may not be what a printer makes", clip(ns)))
		}
	}
	return nil
}

// check walks the component graph from every build item: a cycle or nesting past
// max3MFDepth is an error; so is a build that places over max3MFPlaced triangles or
// over max3MFPlacements objects (a few kilobytes of components can place an object
// billions of times). It returns the triangles placed and lints what the specification
// forbids.
func (m *model3MF) check(codes *Report) (int, error) {
	const (
		unseen = iota
		visiting
		done
	)
	// cost is what placing an object once takes: its triangles, and the placements of
	// it and its components (objects of components only, and no triangles, still take
	// time to walk: ten components of ten components ... is 10^depth placements).
	type cost struct{ triangles, placements int }
	tooMuch := func(c cost) error {
		switch {
		case c.triangles > max3MFPlaced:
			return fmt.Errorf("%w: the build places over %d triangles", Err3MF, max3MFPlaced)
		case c.placements > max3MFPlacements:
			return fmt.Errorf("%w: the build places objects over %d times", Err3MF, max3MFPlacements)
		}
		return nil
	}
	state := map[objRef]int{}
	costs := map[objRef]cost{}
	var visit func(id objRef, depth int) (cost, error)
	visit = func(id objRef, depth int) (cost, error) {
		o := m.objects[id]
		if o == nil {
			codes.lint(Code3MFMissingObject, fmt.Sprintf("a component names object %v, which the model does not have", id))
			return cost{}, nil
		}
		o.used = true
		switch state[id] {
		case visiting:
			return cost{}, fmt.Errorf("%w: object %v contains itself through its components", Err3MF, id)
		case done:
			return costs[id], nil
		}
		if depth > max3MFDepth {
			return cost{}, fmt.Errorf("%w: components nest deeper than %d", Err3MF, max3MFDepth)
		}
		state[id] = visiting
		c := cost{triangles: len(o.triangles) / 3, placements: 1}
		if o.hasMesh && len(o.components) > 0 {
			codes.lint(Code3MFMeshAndChildren, fmt.Sprintf("object %v has both a mesh and components; both are placed", id))
		}
		for _, comp := range o.components {
			k, err := visit(comp.object, depth+1)
			if err != nil {
				return cost{}, err
			}
			c.triangles += k.triangles
			c.placements += k.placements
			if err := tooMuch(c); err != nil {
				return cost{}, err
			}
		}
		state[id] = done
		costs[id] = c
		return c, nil
	}
	var total cost
	for _, it := range m.items {
		o := m.objects[it.object]
		if o == nil {
			codes.lint(Code3MFMissingObject, fmt.Sprintf("a build item names object %v, which the model does not have", it.object))
			continue
		}
		switch o.kind {
		case "other":
			codes.lint(Code3MFOtherInBuild, fmt.Sprintf("a build item places object %v of type \"other\", which the specification forbids", it.object))
		case "support", "solidsupport":
			codes.lint(Code3MFSupportInBuild, fmt.Sprintf("a build item places object %v of type %q: slicers treat it as support, not as a part", it.object, o.kind))
		}
		c, err := visit(it.object, 0)
		if err != nil {
			return 0, err
		}
		total.triangles += c.triangles
		total.placements += c.placements
		if err := tooMuch(total); err != nil {
			return 0, err
		}
	}
	if len(m.items) == 0 {
		codes.lint(Code3MFNoBuild, "the build has no items: a printer would make nothing")
	}
	// Objects the build never reaches, also through components of unplaced objects:
	// those are checked for cycles too, so every object was looked at.
	var unplaced []objRef
	for _, id := range m.order {
		if !m.objects[id].used {
			unplaced = append(unplaced, id)
		}
	}
	for _, id := range unplaced {
		if _, err := visit(id, 0); err != nil {
			return 0, err
		}
	}
	if len(unplaced) > 0 {
		codes.lint(Code3MFUnplaced, fmt.Sprintf("%d objects are in no build item (first: object %v): a printer leaves them out", len(unplaced), unplaced[0]))
	}
	return total.triangles, nil
}

// Unit is the model's unit as the file names it.
func (p *Package3MF) Unit() string { return p.model.unit }

// Place sends every triangle of the build to w as placed: transforms applied (a
// mirroring one reverses the triangle's winding, so the placed mesh still faces out)
// and coordinates in millimetres. item is called before each build item's triangles.
// Triangles naming a missing vertex, or one vertex twice, are left out and counted.
func (p *Package3MF) Place(w stl.Writer, item func(index int, it ObjectReport)) placeStats {
	var st placeStats
	w.SetTriangleCount(uint32(p.placed)) // at most max3MFPlaced
	scale := transform{p.model.scale, 0, 0, 0, p.model.scale, 0, 0, 0, p.model.scale, 0, 0, 0}
	var place func(id objRef, m transform)
	place = func(id objRef, m transform) {
		o := p.model.objects[id]
		if o == nil {
			return
		}
		mirrored := m.det() < 0
		if mirrored {
			st.mirrored++
		}
		nv := uint32(len(o.vertices) / 3)
		for i := 0; i+2 < len(o.triangles); i += 3 {
			a, b, c := o.triangles[i], o.triangles[i+1], o.triangles[i+2]
			if a >= nv || b >= nv || c >= nv {
				st.badIndex++
				continue
			}
			if a == b || b == c || a == c {
				st.repeated++
				continue
			}
			if mirrored {
				b, c = c, b
			}
			var t stl.Triangle
			for k, v := range [3]uint32{a, b, c} {
				q := m.apply([3]float64{float64(o.vertices[3*v]), float64(o.vertices[3*v+1]), float64(o.vertices[3*v+2])})
				t.Vertices[k] = stl.Vec3{float32(q[0]), float32(q[1]), float32(q[2])}
			}
			w.AppendTriangle(t)
		}
		for _, c := range o.components {
			place(c.object, c.m.then(m))
		}
	}
	for i, it := range p.model.items {
		o := p.model.objects[it.object]
		if o == nil {
			continue
		}
		m := it.m.then(scale)
		if item != nil {
			item(i, ObjectReport{Item: i + 1, ObjectID: it.object.id, Part: it.object.part, Name: o.name, Mirrored: it.m.det() < 0})
		}
		place(it.object, m)
	}
	return st
}

type placeStats struct{ mirrored, badIndex, repeated int }

// EmbeddedThumbnail returns the package's own thumbnail part (the OPC thumbnail relationship),
// at most max3MFThumbnail bytes, or ok false when it has none. The bytes are as the
// file carried them: decode and encode them afresh before serving them.
func (p *Package3MF) EmbeddedThumbnail() (data []byte, ok bool, err error) {
	if p.thumbnail == nil {
		return nil, false, nil
	}
	rc, err := openPart(p.thumbnail, max3MFThumbnail)
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	data, err = io.ReadAll(rc)
	if err != nil {
		return nil, false, readError("thumbnail", err)
	}
	return data, true, nil
}

// Analyze3MF reads the 3MF package in r (size bytes) and reports on its build as
// placed, in millimetres: the same figures as for an STL, over every build item
// together, and each item's own (Objects). It fails with Err3MF when the package
// cannot be read (see Open3MF); defects are lint codes.
func Analyze3MF(r io.ReaderAt, size int64) (Report, error) {
	p, err := Open3MF(r, size)
	if err != nil {
		return Report{Codes: []string{}}, err
	}
	return p.Analyze(), nil
}

// Analyze reports on the opened package's build; see Analyze3MF.
func (p *Package3MF) Analyze() Report {
	rep := Report{Format: "3mf", Unit: p.model.unit, Codes: []string{}}
	// One placement of each object is the common case: its vertices, and an edge for
	// every one and a half triangles; a short guess only means the tables grow.
	a := newAnalyzer(min(p.model.vertices, 3*p.placed), 3*p.placed/2, p.placed)
	defer a.close()
	per := &itemFigures{next: a}
	st := p.Place(per, func(_ int, it ObjectReport) {
		per.start(it)
	})
	per.flush()
	a.finish(&rep)
	rep.Objects = per.done
	for i, c := range p.codes.Codes {
		rep.lint(c, p.codes.Notes[i])
	}
	if st.mirrored > 0 {
		rep.lint(Code3MFMirrored, fmt.Sprintf("%d placements use a transform with a negative determinant (a mirror image); their triangles were turned round so the mesh faces out", st.mirrored))
	}
	if st.badIndex > 0 {
		rep.lint(Code3MFBadIndex, fmt.Sprintf("%d triangles name a vertex their mesh does not have; they were left out", st.badIndex))
	}
	if st.repeated > 0 {
		rep.lint(Code3MFRepeatedIndex, fmt.Sprintf("%d triangles name one vertex twice, which the specification forbids; they were left out", st.repeated))
	}
	return rep
}

// itemFigures passes triangles on and sums each build item's own box, volume and area.
type itemFigures struct {
	next     stl.Writer
	cur      *ObjectReport
	min, max [3]float64
	vol, ar  float64
	done     []ObjectReport
}

func (f *itemFigures) start(it ObjectReport) {
	f.flush()
	f.cur = &it
	f.vol, f.ar = 0, 0
	for k := range 3 {
		f.min[k], f.max[k] = math.Inf(1), math.Inf(-1)
	}
}

func (f *itemFigures) flush() {
	if f.cur == nil {
		return
	}
	o := *f.cur
	if o.Triangles > 0 {
		for k := range 3 {
			o.BBox.Min[k], o.BBox.Max[k], o.BBox.Size[k] = f.min[k], f.max[k], f.max[k]-f.min[k]
		}
	}
	o.Volume, o.Area = f.vol/6, f.ar/2
	f.done = append(f.done, o)
	f.cur = nil
}

func (f *itemFigures) SetName(string)            {}
func (f *itemFigures) SetBinaryHeader([]byte)    {}
func (f *itemFigures) SetASCII(bool)             {}
func (f *itemFigures) SetTriangleCount(n uint32) { f.next.SetTriangleCount(n) }

func (f *itemFigures) AppendTriangle(t stl.Triangle) {
	f.next.AppendTriangle(t)
	if f.cur == nil {
		return
	}
	f.cur.Triangles++
	var v [3][3]float64
	for i, p := range t.Vertices {
		for k := range 3 {
			x := float64(p[k])
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return
			}
			v[i][k] = x
		}
	}
	for i := range 3 {
		for k := range 3 {
			f.min[k], f.max[k] = min(f.min[k], v[i][k]), max(f.max[k], v[i][k])
		}
	}
	c := crossProduct(sub(v[1], v[0]), sub(v[2], v[0]))
	f.ar += math.Sqrt(dot(c, c))
	f.vol += dot(v[0], crossProduct(v[1], v[2]))
}

// clip shortens text from a file before it goes into a message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// Is3MF says whether a file is read as 3MF, by its name: .3mf, in any case.
func Is3MF(name string) bool { return strings.EqualFold(path.Ext(name), ".3mf") }

// AnalyzeFile reports on a mesh file of either format, chosen by its name (see Is3MF):
// Analyze3MF or Analyze. A file that is not what its name says fails with Err3MF or
// ErrNotSTL.
func AnalyzeFile(name string, r io.ReaderAt, size int64) (Report, error) {
	if Is3MF(name) {
		return Analyze3MF(r, size)
	}
	return Analyze(r, size)
}

// WriteSTL writes the build as placed, in millimetres, to w as binary STL through
// hschendel/stl's writer, with normals computed from each triangle's winding; it
// returns the triangles written. It holds the placed triangles in memory (52 bytes
// each, bounded by the placing limit), as that writer writes a whole solid.
func (p *Package3MF) WriteSTL(w io.Writer) (int, error) {
	solid := &stl.Solid{Name: "3mf build"}
	p.Place(solid, nil)
	solid.RecalculateNormals()
	if err := solid.WriteAll(w); err != nil {
		return 0, fmt.Errorf("write STL: %w", err)
	}
	return len(solid.Triangles), nil
}
