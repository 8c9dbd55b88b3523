package agentapi

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestDocNamesTheContract: docs/agent-protocol.md names every string constant of this
// package (paths, header, states, codes, kinds) and the protocol version.
func TestDocNamesTheContract(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/agent-protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "agentapi.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			for i, name := range spec.(*ast.ValueSpec).Names {
				lit, ok := spec.(*ast.ValueSpec).Values[i].(*ast.BasicLit)
				if !ok {
					continue
				}
				want := lit.Value
				if lit.Kind == token.STRING {
					want, _ = strconv.Unquote(lit.Value)
				} else if name.Name == "Protocol" {
					want = fmt.Sprintf("(version %s)", lit.Value)
				}
				checked++
				if !strings.Contains(string(doc), want) {
					t.Errorf("docs/agent-protocol.md does not mention %s (%s)", name.Name, want)
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked %d constants; the parse found too few", checked)
	}
}

func TestJobPath(t *testing.T) {
	t.Parallel()
	if got := JobPath(PathJobEvents, "a/b c"); got != "/api/v1/agent/jobs/a%2Fb%20c/events" {
		t.Fatalf("got %s", got)
	}
}
