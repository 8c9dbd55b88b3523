package mesh

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
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
		grown, err2 := analyze(r, int64(len(data)), func(io.ReaderAt, layout) (int, int, int) { return 0, 0, 0 }, choosePath)
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

// FuzzAnalyze3MF: any bytes, taken both as a whole package and as the model document
// of a well-formed package (where the XML reader is reached far more often), are
// analysed without a panic or a hang; a failure is always Err3MF, a 4xx for the hub;
// and scanItems' fast path reads what encoding/xml alone reads, to the same report.
func FuzzAnalyze3MF(f *testing.F) {
	cube := meshtest.MeshObject(1, "cube", meshtest.Cube(stl.Vec3{0, 0, 0}, 10))
	model := meshtest.Model3MF("inch", cube+`<object id="2"><components><component objectid="1" transform="-1 0 0 0 1 0 0 0 1 0 0 0"/></components></object>`,
		meshtest.Item(2, "0 2 0 -2 0 0 0 0 2 10 20 30")+meshtest.Item(1, ""))
	f.Add([]byte(model))
	f.Add(meshtest.ThreeMF(model, nil))
	f.Add([]byte(meshtest.Model3MF("", cube+`<object id="2"><components><component objectid="2"/></components></object>`, meshtest.Item(2, ""))))
	f.Add([]byte(meshtest.Model3MF("", `<object id="1"><mesh><vertices><vertex x="0" y='0' z="0" p:q="&amp;"/><!-- c --><vertex  x="1" y="0" z="0"></vertex>
<vertex x="0" y="1" z="0"/></vertices><triangles><triangle v1="0" v2="1" v3="2" pid="1"/><triangle v1="0" v2="2" v3="1"/></triangles></mesh></object>`, meshtest.Item(1, ""))))
	f.Add(meshtest.ThreeMFParts(strings.Replace(meshtest.Model3MF("", `<object id="5"><components><component p:path="/3D/Objects/o.model" objectid="1"/></components></object>`, meshtest.Item(5, "")),
		"xml:lang", `xmlns:p="http://schemas.microsoft.com/3dmanufacturing/production/2015/06" xml:lang`, 1), nil,
		map[string]string{"3D/Objects/o.model": meshtest.Model3MF("", cube, "")}))
	for _, name := range []string{"testdata/prusaslicer-torus.3mf", "testdata/prusaslicer-components.3mf"} {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, pkg := range [][]byte{data, meshtest.ThreeMF(string(data), nil)} {
			rep, err := Analyze3MF(bytes.NewReader(pkg), int64(len(pkg)))
			slow, err2 := open3MF(bytes.NewReader(pkg), int64(len(pkg)), false)
			if (err == nil) != (err2 == nil) {
				t.Fatalf("with the fast path: %v; the decoder alone: %v", err, err2)
			}
			if err == nil {
				if want := slow.Analyze(); !reflect.DeepEqual(rep, want) && !(hasNaN(rep) && hasNaN(want)) {
					t.Fatalf("reports differ:\nfast %+v\nslow %+v", rep, want)
				}
			}
			if err != nil {
				if !errors.Is(err, Err3MF) {
					t.Fatalf("got %v, want Err3MF", err)
				}
				continue
			}
			if rep.Triangles < 0 || rep.OpenEdges < 0 || rep.Degenerate > rep.Triangles || rep.Format != "3mf" {
				t.Fatalf("impossible report: %+v", rep)
			}
			n := 0
			for _, o := range rep.Objects {
				n += o.Triangles
			}
			if n != rep.Triangles {
				t.Fatalf("the items hold %d triangles, the build %d", n, rep.Triangles)
			}
		}
	})
}
