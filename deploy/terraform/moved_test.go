package terraform_test

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// address is a resource address of a moved block: type, name and, for an instance of a
// for_each, its key.
type address struct {
	typ, name, key string
	keyed          bool
}

func (a address) String() string {
	if a.keyed {
		return a.typ + "." + a.name + `["` + a.key + `"]`
	}
	return a.typ + "." + a.name
}

// movedAddress reads attribute name (from, to) of a moved block: a resource address, with
// at most one string key.
func movedAddress(t *testing.T, b *block, name string) address {
	t.Helper()
	a := b.attr(name)
	if a == nil {
		t.Fatalf("%s:%d: moved block without %s", b.file, b.DefRange().Start.Line, name)
	}
	tr, diags := hcl.AbsTraversalForExpr(a.Expr)
	if diags.HasErrors() {
		t.Fatalf("%s:%d: %s is not an address: %s", b.file, b.DefRange().Start.Line, name, diags.Error())
	}
	var out address
	if len(tr) < 2 || len(tr) > 3 {
		t.Fatalf("%s:%d: %s = %s, want a resource or one instance of it", b.file, b.DefRange().Start.Line, name, b.text(a.Expr))
	}
	root, ok1 := tr[0].(hcl.TraverseRoot)
	attr, ok2 := tr[1].(hcl.TraverseAttr)
	if !ok1 || !ok2 {
		t.Fatalf("%s:%d: %s = %s, want a resource address", b.file, b.DefRange().Start.Line, name, b.text(a.Expr))
	}
	out.typ, out.name = root.Name, attr.Name
	if len(tr) == 3 {
		idx, ok := tr[2].(hcl.TraverseIndex)
		if !ok || idx.Key.IsNull() || idx.Key.Type() != cty.String {
			t.Fatalf("%s:%d: %s = %s, want a string key", b.file, b.DefRange().Start.Line, name, b.text(a.Expr))
		}
		out.key, out.keyed = idx.Key.AsString(), true
	}
	return out
}

// TestMovedBlocksMatchTheMaps: every moved block takes a resource the module no longer
// declares to an instance of the resource over local.gcp_roles or local.aws_statements
// whose key exists, of the binding type the entry's on names, and of the binary the old
// name was for; each entry is moved to exactly once per resource over it. A renamed key
// would otherwise leave a move to nothing, and Terraform would destroy and re-create a
// custom role whose ID Google Cloud keeps for weeks.
func TestMovedBlocksMatchTheMaps(t *testing.T) {
	m := loadModule(t)
	roles := map[string]gcpRole{}
	for _, r := range gcpRoles(t, m) {
		roles[r.key] = r
	}
	statements := map[string]bool{}
	for _, item := range m.objectLocal(t, "aws_statements").Items {
		statements[literal(t, "local.aws_statements: a key", item.KeyExpr).AsString()] = true
	}
	// The resources over the maps, with the on of the entries each takes ("" for all).
	over := map[string]struct{ forEach, on string }{
		"google_project_iam_custom_role":        {"local.gcp_roles", ""},
		"google_pubsub_topic_iam_member":        {"local.gcp_roles", "topic"},
		"google_pubsub_subscription_iam_member": {"local.gcp_roles", "subscription"},
		"google_project_iam_member":             {"local.gcp_roles", "database"},
		"aws_iam_role_policy":                   {"local.aws_statements", ""},
	}
	moves := m.all("moved")
	if len(moves) == 0 {
		t.Fatal("no moved blocks")
	}
	seenFrom, seenTo := map[string]bool{}, map[string]bool{}
	for _, b := range moves {
		from, to := movedAddress(t, b, "from"), movedAddress(t, b, "to")
		where := b.file + ": " + from.String() + " -> " + to.String()
		if seenFrom[from.String()] || seenTo[to.String()] {
			t.Errorf("%s: a second move from or to this address", where)
		}
		seenFrom[from.String()], seenTo[to.String()] = true, true
		if from.keyed || to.typ != from.typ || to.name != "binary" || !to.keyed {
			t.Errorf("%s: want a move from a single resource to an instance of %s.binary", where, from.typ)
			continue
		}
		for _, r := range m.all("resource", from.typ) {
			if r.Labels[1] == from.name {
				t.Errorf("%s: %s is still declared", where, from)
			}
		}
		o, ok := over[to.typ]
		if !ok {
			t.Errorf("%s: %s is not a resource over local.gcp_roles or local.aws_statements", where, to.typ)
			continue
		}
		forEach := m.one(t, "resource", to.typ, "binary").attrText("for_each")
		if !strings.Contains(forEach, o.forEach) {
			t.Errorf("%s: %s.binary has for_each = %s, not over %s", where, to.typ, forEach, o.forEach)
		}
		// The old resources were named for their binary (dlq_replay for dlq-replay).
		var binary string
		if o.forEach == "local.aws_statements" {
			if !statements[to.key] {
				t.Errorf("%s: no key %q in local.aws_statements", where, to.key)
				continue
			}
			binary = to.key
		} else {
			r, ok := roles[to.key]
			if !ok {
				t.Errorf("%s: no key %q in local.gcp_roles", where, to.key)
				continue
			}
			if o.on != "" && r.on != o.on {
				t.Errorf("%s: local.gcp_roles.%s is on %q, so its binding is not a %s", where, to.key, r.on, to.typ)
			}
			if o.on == "" && from.name != to.key {
				t.Errorf("%s: a custom role moved to another role's key", where)
			}
			binary = r.binary
		}
		if b := strings.ReplaceAll(binary, "-", "_"); from.name != b && !strings.HasPrefix(from.name, b+"_") {
			t.Errorf("%s: %s was not %s's", where, from, binary)
		}
	}
	// Each entry moved to once per resource over it.
	want := len(statements)
	for typ, o := range over {
		if o.forEach != "local.gcp_roles" {
			continue
		}
		for _, r := range roles {
			if o.on == "" || r.on == o.on {
				want++
				if !seenTo[address{typ, "binary", r.key, true}.String()] {
					t.Errorf("no move to %s.binary[%q]", typ, r.key)
				}
			}
		}
	}
	for k := range statements {
		if !seenTo[address{"aws_iam_role_policy", "binary", k, true}.String()] {
			t.Errorf("no move to aws_iam_role_policy.binary[%q]", k)
		}
	}
	if len(moves) != want {
		t.Errorf("%d moved blocks, want %d (one per entry and resource over it)", len(moves), want)
	}
}
