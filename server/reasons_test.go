package server

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"testing"
)

// TestEveryFailureReasonIsALabel: each failureReason constant declared in
// reasons.go is in handshakeFailureReasons, once, so its series exists from
// the first scrape.
func TestEveryFailureReasonIsALabel(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := 0
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "failureReason" {
			return false
		}
		for _, v := range vs.Values {
			lit := v.(*ast.BasicLit).Value
			r := failureReason(lit[1 : len(lit)-1])
			declared++
			if n := countOf(handshakeFailureReasons, r); n != 1 {
				t.Errorf("reason %q is %d times in handshakeFailureReasons, want once", r, n)
			}
		}
		return false
	})
	if declared == 0 || declared != len(handshakeFailureReasons) {
		t.Fatalf("%d failureReason constants, %d label values", declared, len(handshakeFailureReasons))
	}
}

func countOf(list []failureReason, r failureReason) int {
	n := 0
	for i := slices.Index(list, r); i >= 0; i = slices.Index(list, r) {
		n++
		list = list[i+1:]
	}
	return n
}
