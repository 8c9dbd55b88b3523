package mesh

import (
	"bytes"
	"io"
	"reflect"
	"testing"

	"github.com/hschendel/stl"

	"github.com/fabcommons/fabcommons/catalog/mesh/meshtest"
)

// FuzzAnalyze: any bytes are analysed without a panic or a hang, and the report does
// not depend on how the tables were sized (sampled, grown from nothing).
func FuzzAnalyze(f *testing.F) {
	cube := meshtest.Cube(stl.Vec3{0, 0, 0}, 10)
	f.Add(meshtest.Binary("cube", cube))
	f.Add(meshtest.ASCII("cube", cube))
	f.Add(meshtest.Binary("torus", meshtest.Torus(6, 8, 10, 3)))
	f.Add(meshtest.Binary("cube", cube)[:300])                               // truncated
	f.Add([]byte("solid x\nfacet normal 0 0 0\nouter loop\nvertex 1 2 3\n")) // ends early
	f.Add([]byte("solid \x00\x01 binary-looking header"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		sized, err := Analyze(r, int64(len(data)))
		grown, err2 := analyze(r, int64(len(data)), func(io.ReaderAt, layout) (int, int, int) { return 0, 0, 0 })
		if (err == nil) != (err2 == nil) {
			t.Fatalf("sized: %v; grown: %v", err, err2)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(sized, grown) && !(hasNaN(sized) && hasNaN(grown)) {
			t.Fatalf("reports differ:\nsized %+v\ngrown %+v", sized, grown)
		}
		if sized.Triangles < 0 || sized.OpenEdges < 0 || sized.Parts < 0 || sized.Degenerate > sized.Triangles {
			t.Fatalf("impossible report: %+v", sized)
		}
	})
}

// hasNaN: NaN figures never compare equal, even to themselves.
func hasNaN(r Report) bool {
	return r.Volume != r.Volume || r.Area != r.Area || r.BBox.Min[0] != r.BBox.Min[0]
}
