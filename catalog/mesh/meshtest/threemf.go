package meshtest

import (
	"archive/zip"
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/hschendel/stl"
)

// Model3MF writes a 3MF core model document: unit (empty for the default), the
// resources' XML (objects, e.g. from MeshObject) and the build's items.
func Model3MF(unit, resources, build string) string {
	u := ""
	if unit != "" {
		u = fmt.Sprintf(` unit="%s"`, unit)
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<model` + u + ` xml:lang="en-US" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">
 <resources>
` + resources + ` </resources>
 <build>
` + build + ` </build>
</model>
`
}

// MeshObject writes an object element holding ts as an indexed mesh: vertices equal
// bit for bit become one.
func MeshObject(id int, name string, ts []stl.Triangle) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  <object id=\"%d\" name=\"%s\" type=\"model\">\n   <mesh>\n    <vertices>\n", id, name)
	index := map[stl.Vec3]int{}
	var tris [][3]int
	for _, t := range ts {
		var ids [3]int
		for k, v := range t.Vertices {
			i, ok := index[v]
			if !ok {
				i = len(index)
				index[v] = i
				fmt.Fprintf(&b, "     <vertex x=\"%g\" y=\"%g\" z=\"%g\"/>\n", v[0], v[1], v[2])
			}
			ids[k] = i
		}
		tris = append(tris, ids)
	}
	b.WriteString("    </vertices>\n    <triangles>\n")
	for _, t := range tris {
		fmt.Fprintf(&b, "     <triangle v1=\"%d\" v2=\"%d\" v3=\"%d\"/>\n", t[0], t[1], t[2])
	}
	b.WriteString("    </triangles>\n   </mesh>\n  </object>\n")
	return b.String()
}

// Item writes a build item (transform may be empty).
func Item(object int, transform string) string {
	if transform == "" {
		return fmt.Sprintf("  <item objectid=\"%d\"/>\n", object)
	}
	return fmt.Sprintf("  <item objectid=\"%d\" transform=\"%s\"/>\n", object, transform)
}

// ThreeMF packs a model document into a 3MF package. A thumbnail, when given, is
// stored as Metadata/thumbnail.png under the package's thumbnail relationship.
func ThreeMF(model string, thumbnail []byte) []byte { return ThreeMFParts(model, thumbnail, nil) }

// ThreeMFParts is ThreeMF with more parts, by name (e.g. "3D/Objects/object_1.model",
// for models whose components name other parts, as Bambu Studio writes them).
func ThreeMFParts(model string, thumbnail []byte, parts map[string]string) []byte {
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	put := func(name, data string) {
		w, err := z.Create(name)
		if err != nil {
			panic(err)
		}
		w.Write([]byte(data))
	}
	put("[Content_Types].xml", `<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
 <Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
 <Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>
 <Default Extension="png" ContentType="image/png"/>
</Types>
`)
	rels := `<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
 <Relationship Target="/3D/3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>
`
	if thumbnail != nil {
		rels += ` <Relationship Target="/Metadata/thumbnail.png" Id="rel1" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail"/>
`
	}
	put("_rels/.rels", rels+"</Relationships>\n")
	put("3D/3dmodel.model", model)
	if thumbnail != nil {
		put("Metadata/thumbnail.png", string(thumbnail))
	}
	names := make([]string, 0, len(parts))
	for name := range parts {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		put(name, parts[name])
	}
	if err := z.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
