// Package mesh reads STL files (through github.com/hschendel/stl's streaming Writer)
// and 3MF packages (archive/zip and encoding/xml: the build as placed, in millimetres)
// and reports their geometry and defects: facet count, bounding box, volume, area,
// open and non-manifold edges, degenerate facets, connected parts, and lint codes.
// Figures follow admesh's conventions so the two can be compared on the same file.
package mesh

// Lint codes. Each names one thing a maker would want to know before printing.
const (
	CodeEmpty               = "STL_EMPTY"                 // no facets at all
	CodeNotSTL              = "STL_NOT_STL"               // neither binary nor ASCII STL
	CodeSolidHeaderBinary   = "STL_SOLID_HEADER_BINARY"   // binary file whose header begins with "solid"
	CodeCountMismatch       = "STL_COUNT_MISMATCH"        // header facet count disagrees with the file size
	CodeTruncated           = "STL_TRUNCATED"             // file ends inside a facet (binary) or before endsolid (ASCII)
	CodeParseError          = "STL_PARSE_ERROR"           // ASCII syntax errors; facets were skipped
	CodeNaN                 = "MESH_NAN"                  // NaN or infinite coordinates
	CodeDegenerate          = "MESH_DEGENERATE"           // facets with two identical vertices
	CodeOpenEdges           = "MESH_OPEN_EDGES"           // edges used by one facet only: holes
	CodeNonmanifoldEdges    = "MESH_NONMANIFOLD_EDGES"    // edges shared by more than two facets
	CodeInverted            = "MESH_INVERTED"             // facets wound inside-out (negative volume)
	CodeInconsistentWinding = "MESH_INCONSISTENT_WINDING" // neighbouring facets wound opposite ways
	CodeUnitsSuspect        = "UNITS_SUSPECT"             // too small or too large to be millimetres
)

// BBox is an axis-aligned bounding box in file units.
type BBox struct {
	Min  [3]float64 `json:"min"`
	Max  [3]float64 `json:"max"`
	Size [3]float64 `json:"size"`
}

// Report is what Analyze finds in one STL file, or Analyze3MF in the build of a 3MF.
type Report struct {
	Format           string   `json:"format"`         // binary or ascii (STL), 3mf
	Unit             string   `json:"unit,omitempty"` // 3MF: the model's unit; figures are in millimetres
	Triangles        int      `json:"triangles"`
	BBox             BBox     `json:"bbox"`
	Volume           float64  `json:"volume"` // signed: negative when facets are wound inside-out
	Area             float64  `json:"area"`
	OpenEdges        int      `json:"open_edges"`
	NonmanifoldEdges int      `json:"nonmanifold_edges"`
	BackwardsEdges   int      `json:"backwards_edges"` // shared edges both facets walk the same way
	Degenerate       int      `json:"degenerate"`
	Parts            int      `json:"parts"`
	Watertight       bool     `json:"watertight"`
	Codes            []string `json:"codes"`
	Notes            []string `json:"notes,omitempty"` // the codes in words

	Objects []ObjectReport `json:"objects,omitempty"` // 3MF: each build item as placed
}

func (r *Report) lint(code, note string) {
	for _, c := range r.Codes {
		if c == code {
			return
		}
	}
	r.Codes = append(r.Codes, code)
	r.Notes = append(r.Notes, note)
}
