package catalog

import (
	"bytes"
	"encoding/csv"
	"errors"
	"strings"
	"testing"

	"github.com/fabcommons/fabcommons/storage"
)

var meshes = []string{"parts/base.stl", "parts/lid.stl"}

func TestParseBOMTable(t *testing.T) {
	t.Parallel()
	csvText := "\ufeffRef,Type,Description,Quantity,STL,Filament,Part Number,Supplier,Unit Price,Comments,Weight\n" +
		"B1,printed,Base,1,parts/base.stl,PETG,,,,,12g\n" +
		"L1,Printed,Lid,2,parts/lid.stl,PLA,,,,\"snap fit, print flat\",\n" +
		"\n" +
		"S1,purchased,M3x10 screw,8,,,ISO 4762 M3x10,https://example.org/m3,\"0,12\",,\n"
	tsvText := strings.NewReplacer(",", "\t").Replace("name,qty,file\nBase,1,parts/base.stl\nHeat insert,4,\n")
	for name, in := range map[string]string{"csv": csvText, "tsv": tsvText} {
		lines, err := ParseBOM([]byte(in), meshes)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "tsv" {
			if len(lines) != 2 || lines[0].Kind != KindPrinted || lines[1].Kind != KindPurchased || lines[1].Ref != "L3" {
				t.Fatalf("tsv: got %+v", lines)
			}
			continue
		}
		if len(lines) != 3 {
			t.Fatalf("csv: got %d lines, want 3 (the blank one skipped)", len(lines))
		}
		l := lines[1]
		if l.Ref != "L1" || l.Kind != KindPrinted || l.Qty != 2 || l.Material != "PLA" || l.Notes != "snap fit, print flat" {
			t.Fatalf("csv line 2: got %+v", l)
		}
		s := lines[2]
		if s.MPN != "ISO 4762 M3x10" || s.SupplierURL != "https://example.org/m3" || s.UnitCost == nil || *s.UnitCost != 0.12 {
			t.Fatalf("csv line 3: got %+v", s)
		}
	}
}

func TestParseBOMJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`[{"ref":"B1","name":"Base","qty":1,"file":"parts/base.stl"},{"name":"Magnet","qty":4,"kind":"purchased"}]`,
		`{"lines":[{"ref":"B1","name":"Base","qty":1,"file":"parts/base.stl"},{"name":"Magnet","qty":4}]}`,
	} {
		lines, err := ParseBOM([]byte(in), meshes)
		if err != nil || len(lines) != 2 || lines[0].Kind != KindPrinted || lines[1].Ref != "L2" || lines[1].Kind != KindPurchased {
			t.Fatalf("got %+v, %v", lines, err)
		}
	}
}

func TestParseBOMErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
	}{
		{"", "empty"},
		{"\xff\xfe", "UTF-8"},
		{"ref,name\nA,B\n", "quantity column"},
		{"name,qty,qty\nA,1,2\n", "second column"},
		{"ref,name,qty\nA,Base,-2\n", "line 2 (ref \"A\"), column qty: want a positive quantity, got -2"},
		{"ref,name,qty\nA,Base,two\n", "line 2, column 3 (qty): want a number"},
		{"ref,name,qty\nA,Base,1\nA,Lid,1\n", "line 3 (ref \"A\"): ref repeats line 2"},
		{"name,qty,kind\nBase,1,gizmo\n", "column kind"},
		{"name,qty,kind,file\nBase,1,printed,parts/missing.stl\n", "must name one of the design's mesh files"},
		{"name,qty,file\nBase,1.5,parts/base.stl\n", "whole copies"},
		{"name,qty,url\nScrew,1,javascript:alert(1)\n", "want an http(s) link"},
		{"name,qty,price\nScrew,1,-3\n", "want zero or more"},
		{`[{"name":"x","qty":1,"colour":"red"}]`, "unknown field"},
		{"name,qty\n\"unterminated,1\n", "cannot be read"},
	} {
		_, err := ParseBOM([]byte(tc.in), meshes)
		var invalid *storage.InvalidError
		if !errors.As(err, &invalid) || invalid.Field != "bom" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want a bom error containing %q", tc.in, err, tc.want)
		}
	}
	many := "name,qty\n" + strings.Repeat("x,1\n", maxBOMLines+1)
	if _, err := ParseBOM([]byte(many), nil); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("too many lines: got %v", err)
	}
}

func TestWriteBOMCSVDefusesFormulas(t *testing.T) {
	t.Parallel()
	cost := 1.5
	lines := []BOMLine{
		{Ref: "=HYPERLINK(\"http://evil\")", Kind: KindPurchased, Name: "+cmd|' /C calc'!A0", Qty: 2, Notes: "@SUM(A1)", UnitCost: &cost},
		{Ref: "B1", Kind: KindPrinted, Name: "-2+3", Qty: 1, File: "parts/base.stl"},
	}
	var buf bytes.Buffer
	if err := WriteBOMCSV(&buf, lines); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs[1:] {
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("cell %q would run as a formula", cell)
			}
		}
	}
	if recs[1][0] != `'=HYPERLINK("http://evil")` || recs[1][3] != "2" || recs[1][10] != "1.5" || recs[2][2] != "'-2+3" {
		t.Errorf("got %v", recs)
	}
	// What it writes reads back (the quote marks aside).
	buf.Reset()
	WriteBOMCSV(&buf, lines[1:])
	back, err := ParseBOM(buf.Bytes(), meshes)
	if err != nil || len(back) != 1 || back[0].File != "parts/base.stl" {
		t.Errorf("round trip: got %+v, %v", back, err)
	}
}
