package terraform_test

// Helpers that read the root module with HashiCorp's own HCL parser: no Terraform binary and
// no provider is needed (none can be downloaded here), so these tests check what can be
// checked statically: syntax, formatting, variables, validations, references, and the
// permissions every policy grants.

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

type module struct {
	files  map[string][]byte
	blocks []*block
}

type block struct {
	*hclsyntax.Block
	file string
	src  []byte
}

func loadModule(t *testing.T) *module {
	t.Helper()
	paths, err := filepath.Glob("*.tf")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no .tf files: %v", err)
	}
	m := &module{files: map[string][]byte{}}
	p := hclparse.NewParser()
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m.files[path] = src
		f, diags := p.ParseHCLFile(path)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", path, diags.Error())
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			m.blocks = append(m.blocks, &block{Block: b, file: path, src: src})
		}
	}
	return m
}

// all returns the top-level blocks of a type ("resource", "data", "variable"...), and with
// a first label, only those of that kind ("aws_iam_role").
func (m *module) all(typ string, kind ...string) []*block {
	var out []*block
	for _, b := range m.blocks {
		if b.Type != typ {
			continue
		}
		if len(kind) > 0 && (len(b.Labels) == 0 || b.Labels[0] != kind[0]) {
			continue
		}
		out = append(out, b)
	}
	return out
}

// one returns the block typ "kind" "name", failing the test when it is missing.
func (m *module) one(t *testing.T, typ string, labels ...string) *block {
	t.Helper()
	for _, b := range m.blocks {
		if b.Type == typ && strings.Join(b.Labels, " ") == strings.Join(labels, " ") {
			return b
		}
	}
	t.Fatalf("no %s %q", typ, labels)
	return nil
}

// local returns the block and source of local value name, failing when it is not defined
// exactly once.
func (m *module) local(t *testing.T, name string) string {
	t.Helper()
	var found []string
	for _, b := range m.all("locals") {
		if b.attr(name) != nil {
			found = append(found, b.attrText(name))
		}
	}
	if len(found) != 1 {
		t.Fatalf("local.%s defined %d times", name, len(found))
	}
	return found[0]
}

func (b *block) name() string { return b.Type + " " + strings.Join(b.Labels, ".") }

func (b *block) attr(name string) *hclsyntax.Attribute { return b.Body.Attributes[name] }

// text is an expression's source, white space collapsed.
func (b *block) text(e hclsyntax.Expression) string {
	r := e.Range()
	return strings.Join(strings.Fields(string(b.src[r.Start.Byte:r.End.Byte])), " ")
}

// attrText is the source of the named attribute's expression, "" when it is absent.
func (b *block) attrText(name string) string {
	a := b.attr(name)
	if a == nil {
		return ""
	}
	return b.text(a.Expr)
}

func (b *block) children(typ string) []*block {
	var out []*block
	for _, c := range b.Body.Blocks {
		if c.Type == typ {
			out = append(out, &block{Block: c, file: b.file, src: b.src})
		}
	}
	return out
}

// literalStrings evaluates attribute name of b, a literal list of strings (no references).
func literalStrings(t *testing.T, b *block, name string) []string {
	t.Helper()
	a := b.attr(name)
	if a == nil {
		return nil
	}
	return literalList(t, b.name()+": "+name, a.Expr)
}

// local is one local value and the locals block it stands in (its text is read from there).
type local struct {
	*hclsyntax.Attribute
	in *block
}

// locals are the module's local values by name.
func (m *module) locals() map[string]local {
	out := map[string]local{}
	for _, b := range m.all("locals") {
		for name, a := range b.Body.Attributes {
			out[name] = local{a, b}
		}
	}
	return out
}

// objectLocal is local name, which must be an object literal ({ key = value ... }).
func (m *module) objectLocal(t *testing.T, name string) *hclsyntax.ObjectConsExpr {
	t.Helper()
	l, ok := m.locals()[name]
	if !ok {
		t.Fatalf("no local.%s", name)
	}
	obj, ok := l.Expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		t.Fatalf("local.%s is not an object literal", name)
	}
	return obj
}

// literal evaluates e, which must be a literal (no reference); what names it in the failure.
func literal(t *testing.T, what string, e hclsyntax.Expression) cty.Value {
	t.Helper()
	v, diags := e.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("%s must be a literal: %s", what, diags.Error())
	}
	return v
}

// literalList evaluates e, which must be a literal list of strings.
func literalList(t *testing.T, what string, e hclsyntax.Expression) []string {
	t.Helper()
	var out []string
	for it := literal(t, what, e).ElementIterator(); it.Next(); {
		_, v := it.Element()
		if v.Type() != cty.String {
			t.Fatalf("%s holds a %s", what, v.Type().FriendlyName())
		}
		out = append(out, v.AsString())
	}
	return out
}

// refs are the references in an expression, as "root.attr[\"key\"].attr".
func refs(e hclsyntax.Expression) []string {
	var out []string
	for _, tr := range e.Variables() {
		out = append(out, traversalString(tr))
	}
	sort.Strings(out)
	return out
}

func traversalString(tr hcl.Traversal) string {
	var sb strings.Builder
	for i, step := range tr {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			sb.WriteString(s.Name)
		case hcl.TraverseAttr:
			sb.WriteString("." + s.Name)
		case hcl.TraverseIndex:
			if s.Key.Type() == cty.String {
				sb.WriteString(`["` + s.Key.AsString() + `"]`)
			} else {
				sb.WriteString("[" + s.Key.GoString() + "]")
			}
		default:
			_ = i
		}
	}
	return sb.String()
}

// refPrefix is the first reference in e that starts with prefix, cut to the prefix and one
// more step ("google_service_account.binary" -> `google_service_account.binary["indexer"]`).
func refWith(e hclsyntax.Expression, prefix string) []string {
	var out []string
	for _, r := range refs(e) {
		if strings.HasPrefix(r, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// statement is the one fixed statement of policy document name (dynamic ones aside).
func (m *module) statement(t *testing.T, name string) *block {
	t.Helper()
	sts := m.one(t, "data", "aws_iam_policy_document", name).children("statement")
	if len(sts) != 1 {
		t.Fatalf("policy document %s has %d fixed statements, want 1", name, len(sts))
	}
	return sts[0]
}

// conditions maps each condition block's variable to "test values", as written.
func (b *block) conditions() map[string]string {
	out := map[string]string{}
	for _, c := range b.children("condition") {
		out[c.attrText("variable")] = c.attrText("test") + " " + c.attrText("values")
	}
	return out
}

func set(vals ...string) map[string]bool {
	m := map[string]bool{}
	for _, v := range vals {
		m[v] = true
	}
	return m
}
