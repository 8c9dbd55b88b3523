package catalog

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzCleanPath: whatever a client names a file, the clean name stays inside the
// design, is plain, and cleans to itself.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"parts/base.stl", "../etc/passwd", "a//b", "./x", "a/./b", ".hidden/x", "C:\\x", "ATTRIBUTION.md", "bom.CSV", "dir/", "é/ü.stl"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := CleanPath(p)
		if err != nil {
			return
		}
		if c == "" || strings.HasPrefix(c, "/") || strings.Contains(c, "\\") || generatedName(c) {
			t.Fatalf("CleanPath(%q) = %q", p, c)
		}
		for _, part := range strings.Split(c, "/") {
			if part == "" || part == "." || part == ".." || strings.HasPrefix(part, ".") {
				t.Fatalf("CleanPath(%q) = %q, which has the part %q", p, c, part)
			}
		}
		if again, err := CleanPath(c); err != nil || again != c {
			t.Fatalf("CleanPath(%q) = %q, but that cleans to %q, %v", p, c, again, err)
		}
	})
}

// FuzzParseBOM: any bytes are read as a BOM or refused with an error naming the
// problem, and a BOM that is accepted survives being written as CSV and read again
// (with what a spreadsheet would run as a formula defused).
func FuzzParseBOM(f *testing.F) {
	meshes := []string{"base.stl", "parts/ring.stl"}
	f.Add([]byte("ref,name,qty,kind,file\nA,Base,1,printed,base.stl\nB,Ring,2,printed,parts/ring.stl\nC,M3x10 screw,4,purchased,\n"))
	f.Add([]byte("ref\tname\tqty\tkind\nA\tBolt\t3\tpurchased\n"))
	f.Add([]byte(`[{"ref":"A","name":"Base","qty":1,"kind":"printed","file":"base.stl"}]`))
	f.Add([]byte(`{"lines":[{"ref":"B","name":"Nut","qty":0.5,"unit":"kg","kind":"purchased","unit_cost":0.1}]}`))
	f.Add([]byte("\ufeffRef;Name;Qty\nA;x;1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := ParseBOM(data, meshes)
		if err != nil {
			return
		}
		var csv bytes.Buffer
		if err := WriteBOMCSV(&csv, lines); err != nil {
			t.Fatalf("write %+v: %v", lines, err)
		}
		again, err := ParseBOM(csv.Bytes(), meshes)
		if err != nil {
			t.Fatalf("the BOM written as CSV does not read back: %v\n%s", err, csv.Bytes())
		}
		// The CSV defuses cells a spreadsheet would run as formulas: expect that.
		want := slices.Clone(lines)
		for i := range want {
			l := &want[i]
			for _, f := range []*string{&l.Ref, &l.Kind, &l.Name, &l.Unit, &l.File, &l.Material, &l.Process, &l.MPN, &l.SupplierURL, &l.Notes} {
				*f = defuseFormula(*f)
			}
		}
		if !reflect.DeepEqual(want, again) {
			t.Fatalf("read back differently:\n%+v\n%+v\n%s", want, again, csv.Bytes())
		}
	})
}
