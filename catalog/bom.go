package catalog

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fabcommons/fabcommons/storage"
)

// BOMLine is one line of a bill of materials.
type BOMLine struct {
	Ref         string   `json:"ref"`
	Kind        string   `json:"kind"` // printed, purchased, electronic or tool
	Name        string   `json:"name"`
	Qty         float64  `json:"qty"`
	Unit        string   `json:"unit,omitempty"`
	File        string   `json:"file,omitempty"` // the mesh a printed line is made from
	Material    string   `json:"material,omitempty"`
	Process     string   `json:"process,omitempty"`
	MPN         string   `json:"mpn,omitempty"` // manufacturer part number or standard (e.g. ISO 4762 M3x10)
	SupplierURL string   `json:"supplier_url,omitempty"`
	UnitCost    *float64 `json:"unit_cost,omitempty"`
	Notes       string   `json:"notes,omitempty"`
}

// BOM kinds.
const (
	KindPrinted    = "printed"
	KindPurchased  = "purchased"
	KindElectronic = "electronic"
	KindTool       = "tool"
)

// Limits on a BOM, so one upload cannot make a page or an order of absurd size.
const (
	maxBOMLines    = 5000
	maxBOMFieldLen = 2000
)

// bomColumns maps header spellings people use (lower-cased, with _ and - read as
// spaces) to fields.
var bomColumns = map[string]string{
	"ref": "ref", "reference": "ref", "designator": "ref", "refdes": "ref", "id": "ref", "item": "ref", "part ref": "ref",
	"kind": "kind", "type": "kind", "category": "kind",
	"name": "name", "part": "name", "part name": "name", "description": "name", "title": "name", "component": "name",
	"qty": "qty", "quantity": "qty", "count": "qty", "amount": "qty", "pcs": "qty", "number": "qty",
	"unit": "unit", "units": "unit", "uom": "unit",
	"file": "file", "stl": "file", "mesh": "file", "path": "file", "model": "file",
	"material": "material", "filament": "material",
	"process": "process", "method": "process",
	"mpn": "mpn", "part number": "mpn", "manufacturer part number": "mpn", "standard": "mpn", "mpn/standard": "mpn",
	"supplier url": "supplier_url", "supplier": "supplier_url", "url": "supplier_url", "link": "supplier_url", "supplier link": "supplier_url",
	"unit cost": "unit_cost", "cost": "unit_cost", "price": "unit_cost", "unit price": "unit_cost",
	"notes": "notes", "note": "notes", "comment": "notes", "comments": "notes", "remarks": "notes",
}

func normalizeHeader(h string) string {
	h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
	h = strings.NewReplacer("_", " ", "-", " ").Replace(h)
	return strings.Join(strings.Fields(h), " ")
}

// ParseBOM reads a BOM from CSV, TSV (tab-separated) or JSON (an array of lines or
// {"lines": [...]}) and validates it against the version's mesh files. Errors name
// the line and column.
func ParseBOM(data []byte, meshFiles []string) ([]BOMLine, error) {
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\ufeff")))
	if len(trimmed) == 0 {
		return nil, storage.Invalid("bom", "the BOM is empty")
	}
	if !utf8.Valid(trimmed) {
		return nil, storage.Invalid("bom", "the BOM is not UTF-8 text")
	}
	if trimmed[0] == '[' || trimmed[0] == '{' {
		lines, err := parseBOMJSON(trimmed)
		if err != nil {
			return nil, err
		}
		if len(lines) == 0 {
			return nil, storage.Invalid("bom", "the BOM has no lines")
		}
		return lines, validateBOM(lines, meshFiles, func(i int) string { return fmt.Sprintf("item %d", i+1) })
	}
	lines, fileLines, err := parseBOMTable(trimmed)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, storage.Invalid("bom", "the BOM has a header but no lines")
	}
	return lines, validateBOM(lines, meshFiles, func(i int) string { return fmt.Sprintf("line %d", fileLines[i]) })
}

func parseBOMJSON(data []byte) ([]BOMLine, error) {
	var lines []BOMLine
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var err error
	if data[0] == '{' {
		var doc struct {
			Lines []BOMLine `json:"lines"`
		}
		err = dec.Decode(&doc)
		lines = doc.Lines
	} else {
		err = dec.Decode(&lines)
	}
	if err != nil {
		return nil, storage.Invalid("bom", "the JSON BOM cannot be read: "+err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, storage.Invalid("bom", "the JSON BOM has more after its end")
	}
	for i := range lines {
		lines[i].Kind = strings.ToLower(strings.TrimSpace(lines[i].Kind))
		if lines[i].Kind == "" {
			lines[i].Kind = defaultKind(lines[i].File)
		}
		if lines[i].Ref == "" {
			lines[i].Ref = fmt.Sprintf("L%d", i+1)
		}
	}
	return lines, nil
}

func defaultKind(file string) string {
	if file != "" {
		return KindPrinted
	}
	return KindPurchased
}

// parseBOMTable returns the lines and, for each, its line number in the file.
func parseBOMTable(data []byte) ([]BOMLine, []int, error) {
	first, _, _ := bytes.Cut(data, []byte("\n"))
	r := csv.NewReader(bytes.NewReader(data))
	switch {
	case bytes.Contains(first, []byte("\t")):
		r.Comma = '\t'
	case bytes.Count(first, []byte(";")) > bytes.Count(first, []byte(",")):
		r.Comma = ';' // spreadsheets in comma-decimal locales
	}
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, nil, storage.Invalid("bom", "the BOM header cannot be read: "+err.Error())
	}
	fields := make([]string, len(header)) // column -> field, "" for columns we ignore
	seen := map[string]bool{}
	for i, h := range header {
		f := bomColumns[normalizeHeader(h)]
		if f != "" && seen[f] {
			return nil, nil, storage.Invalid("bom", fmt.Sprintf("line 1, column %d (%q): a second column for %s", i+1, h, f))
		}
		fields[i], seen[f] = f, true
	}
	if !seen["name"] || !seen["qty"] {
		return nil, nil, storage.Invalid("bom", "line 1: the header needs at least a name column and a quantity column (e.g. name,qty)")
	}
	var lines []BOMLine
	var fileLines []int
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, storage.Invalid("bom", "the BOM cannot be read: "+err.Error())
		}
		line, _ := r.FieldPos(0) // valid only after a successful Read
		if len(lines) >= maxBOMLines {
			return nil, nil, storage.Invalid("bom", fmt.Sprintf("more than %d lines", maxBOMLines))
		}
		if isBlank(rec) {
			continue
		}
		l := BOMLine{}
		for i, v := range rec {
			if i >= len(fields) || fields[i] == "" {
				continue
			}
			v = strings.TrimSpace(v)
			if err := l.set(fields[i], v); err != nil {
				return nil, nil, storage.Invalid("bom", fmt.Sprintf("line %d, column %d (%s): %v", line, i+1, header[i], err))
			}
		}
		if l.Ref == "" {
			l.Ref = fmt.Sprintf("L%d", line)
		}
		if l.Kind == "" {
			l.Kind = defaultKind(l.File)
		}
		lines = append(lines, l)
		fileLines = append(fileLines, line)
	}
	return lines, fileLines, nil
}

func isBlank(rec []string) bool {
	for _, v := range rec {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}

func (l *BOMLine) set(field, v string) error {
	switch field {
	case "ref":
		l.Ref = v
	case "kind":
		l.Kind = strings.ToLower(v)
	case "name":
		l.Name = v
	case "qty":
		q, err := strconv.ParseFloat(strings.ReplaceAll(v, ",", "."), 64)
		if err != nil {
			return fmt.Errorf("want a number, got %q", v)
		}
		l.Qty = q
	case "unit":
		l.Unit = v
	case "file":
		l.File = v
	case "material":
		l.Material = v
	case "process":
		l.Process = v
	case "mpn":
		l.MPN = v
	case "supplier_url":
		l.SupplierURL = v
	case "unit_cost":
		if v == "" {
			return nil
		}
		c, err := strconv.ParseFloat(strings.TrimLeft(strings.ReplaceAll(v, ",", "."), "$€£ "), 64)
		if err != nil {
			return fmt.Errorf("want a number, got %q", v)
		}
		l.UnitCost = &c
	case "notes":
		l.Notes = v
	}
	return nil
}

// ValidateBOM checks quantities, refs, kinds, links and that every printed line names
// one of meshFiles.
func ValidateBOM(lines []BOMLine, meshFiles []string) error {
	return validateBOM(lines, meshFiles, func(i int) string { return fmt.Sprintf("item %d", i+1) })
}

// validateBOM is ValidateBOM with errors naming each line by where(index).
func validateBOM(lines []BOMLine, meshFiles []string, where func(int) string) error {
	if len(lines) > maxBOMLines {
		return storage.Invalid("bom", fmt.Sprintf("more than %d lines", maxBOMLines))
	}
	refs := map[string]int{}
	for i, l := range lines {
		at := fmt.Sprintf("%s (ref %q)", where(i), l.Ref)
		switch {
		case l.Ref == "":
			return storage.Invalid("bom", where(i)+": ref is empty")
		case refs[l.Ref] > 0:
			return storage.Invalid("bom", fmt.Sprintf("%s: ref repeats %s; refs must be unique", at, where(refs[l.Ref]-1)))
		case strings.TrimSpace(l.Name) == "":
			return storage.Invalid("bom", at+", column name: name is empty")
		case !(l.Qty > 0) || l.Qty > 1e6:
			return storage.Invalid("bom", fmt.Sprintf("%s, column qty: want a positive quantity, got %v", at, l.Qty))
		case l.Kind != KindPrinted && l.Kind != KindPurchased && l.Kind != KindElectronic && l.Kind != KindTool:
			return storage.Invalid("bom", fmt.Sprintf("%s, column kind: want printed, purchased, electronic or tool, got %q", at, l.Kind))
		case l.UnitCost != nil && !(*l.UnitCost >= 0):
			return storage.Invalid("bom", fmt.Sprintf("%s, column unit_cost: want zero or more, got %v", at, *l.UnitCost))
		}
		if l.Kind == KindPrinted {
			if l.Qty != float64(int(l.Qty)) {
				return storage.Invalid("bom", fmt.Sprintf("%s, column qty: a printed part is made in whole copies, got %v", at, l.Qty))
			}
			if !contains(meshFiles, l.File) {
				return storage.Invalid("bom", fmt.Sprintf("%s, column file: a printed line must name one of the design's mesh files (%s), got %q", at, strings.Join(meshFiles, ", "), l.File))
			}
		}
		if l.SupplierURL != "" {
			u, err := url.Parse(l.SupplierURL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return storage.Invalid("bom", fmt.Sprintf("%s, column supplier_url: want an http(s) link, got %q", at, l.SupplierURL))
			}
		}
		for _, f := range []string{l.Ref, l.Name, l.Unit, l.File, l.Material, l.Process, l.MPN, l.SupplierURL, l.Notes} {
			if len(f) > maxBOMFieldLen {
				return storage.Invalid("bom", fmt.Sprintf("%s: a field is over %d bytes", at, maxBOMFieldLen))
			}
		}
		refs[l.Ref] = i + 1
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// WriteBOMCSV writes lines as CSV. A cell that a spreadsheet would run as a formula
// (starting with = + - @ or a tab or carriage return) is prefixed with a quote mark, as
// OWASP recommends, so opening the file never executes anything.
func WriteBOMCSV(w io.Writer, lines []BOMLine) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"ref", "kind", "name", "qty", "unit", "file", "material", "process", "mpn", "supplier_url", "unit_cost", "notes"})
	for _, l := range lines {
		cost := ""
		if l.UnitCost != nil {
			cost = strconv.FormatFloat(*l.UnitCost, 'f', -1, 64)
		}
		rec := []string{l.Ref, l.Kind, l.Name, strconv.FormatFloat(l.Qty, 'f', -1, 64), l.Unit, l.File, l.Material, l.Process, l.MPN, l.SupplierURL, cost, l.Notes}
		for i, v := range rec {
			rec[i] = defuseFormula(v)
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

func defuseFormula(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
