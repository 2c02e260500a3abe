package terraform_test

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"imgpipe/deploy/internal/iam"
	"imgpipe/deploy/internal/settings"
)

// deployment is one set of the variables the outputs' conditionals test.
type deployment struct {
	runtime string // var.runtime
	keyAuth bool   // var.vision_key_auth
}

var deployments = []deployment{{"eks", false}, {"eks", true}, {"gke", false}, {"gke", true}, {"aks", false}, {"aks", true}}

func (d deployment) String() string {
	return fmt.Sprintf("runtime %s, vision_key_auth %v", d.runtime, d.keyAuth)
}

func (d deployment) ctx() *hcl.EvalContext {
	return &hcl.EvalContext{Variables: map[string]cty.Value{
		"var": cty.ObjectVal(map[string]cty.Value{"runtime": cty.StringVal(d.runtime), "vision_key_auth": cty.BoolVal(d.keyAuth)}),
	}}
}

// settingsKeys returns the keys an output value has: the object keys of its constructors,
// through merge(), conditionals and the locals it refers to. With ctx nil every key it can
// have; else the conditionals are evaluated in ctx and only the branch taken is read.
func settingsKeys(t *testing.T, m *module, b *block, e hclsyntax.Expression, ctx *hcl.EvalContext) []string {
	t.Helper()
	var out []string
	switch x := e.(type) {
	case *hclsyntax.ObjectConsExpr:
		for _, item := range x.Items {
			k, diags := item.KeyExpr.Value(nil)
			if diags.HasErrors() {
				t.Fatalf("%s: a computed key %s", b.name(), b.text(item.KeyExpr))
			}
			out = append(out, k.AsString())
		}
	case *hclsyntax.FunctionCallExpr:
		if x.Name != "merge" {
			t.Fatalf("%s: %s() in a settings output", b.name(), x.Name)
		}
		for _, a := range x.Args {
			out = append(out, settingsKeys(t, m, b, a, ctx)...)
		}
	case *hclsyntax.ConditionalExpr:
		if ctx == nil {
			out = append(out, settingsKeys(t, m, b, x.TrueResult, ctx)...)
			out = append(out, settingsKeys(t, m, b, x.FalseResult, ctx)...)
			break
		}
		cond, diags := x.Condition.Value(ctx)
		if diags.HasErrors() || cond.Type() != cty.Bool {
			t.Fatalf("%s: the condition %s depends on more than var.runtime and var.vision_key_auth: %s", b.name(), b.text(x.Condition), diags.Error())
		}
		if cond.True() {
			out = append(out, settingsKeys(t, m, b, x.TrueResult, ctx)...)
		} else {
			out = append(out, settingsKeys(t, m, b, x.FalseResult, ctx)...)
		}
	case *hclsyntax.ForExpr:
		out = append(out, settingsKeys(t, m, b, x.ValExpr, ctx)...)
	case *hclsyntax.IndexExpr:
		out = append(out, settingsKeys(t, m, b, x.Collection, ctx)...)
	case *hclsyntax.ScopeTraversalExpr:
		tr := x.Traversal
		if tr.RootName() != "local" || len(tr) < 2 {
			t.Fatalf("%s: settings from %s", b.name(), b.text(x))
		}
		name := traversalString(tr[:2])[len("local."):]
		for _, lb := range m.all("locals") {
			if a := lb.attr(name); a != nil {
				out = append(out, settingsKeys(t, m, lb, a.Expr, ctx)...)
			}
		}
	default:
		t.Fatalf("%s: cannot read the keys of %s", b.name(), b.text(e))
	}
	return out
}

func outputKeys(t *testing.T, m *module, name string, ctx *hcl.EvalContext) []string {
	t.Helper()
	b := m.one(t, "output", name)
	keys := settingsKeys(t, m, b, b.attr("value").Expr, ctx)
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Every key of a binary's settings output is one of the binary's settings (read from its
// code) or a variable the SDKs read, and every required setting is given, wherever it runs.
func TestSettingsOutputsAreTheBinariesSettings(t *testing.T) {
	m := loadModule(t)
	env, err := settings.Env("../..", iam.Binaries)
	if err != nil {
		t.Fatal(err)
	}
	for bin := range iam.Binaries {
		decl := env[bin]
		if len(decl) < 3 {
			t.Fatalf("%s declares %d settings: the reading of the code is broken", bin, len(decl))
		}
		name := strings.ReplaceAll(bin, "-", "_") + "_settings"
		for _, k := range outputKeys(t, m, name, nil) {
			if _, ok := decl[k]; !ok && !settings.SDKEnv[k] {
				t.Errorf("%s.%s is no setting of %s", name, k, bin)
			}
		}
		for _, d := range deployments {
			given := set(outputKeys(t, m, name, d.ctx())...)
			for k, s := range decl {
				if s.Required && !given[k] {
					t.Errorf("%s requires --%s (%s), which %s does not give (%s)", bin, s.Flag, k, name, d)
				}
			}
		}
	}
}

// fixtures are the converter's test inputs, in the shape of `terraform output -json`, one
// per runtime (written by hand, checked against the module below; the AKS one with
// vision_key_auth = true).
var fixtures = []string{"testdata/output-eks.json", "testdata/output-gke.json", "testdata/output-aks.json"}

type fixture map[string]struct {
	Sensitive bool            `json:"sensitive"`
	Value     json.RawMessage `json:"value"`
}

func readFixture(t *testing.T, path string) fixture {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var fx fixture
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return fx
}

// deployment is what the fixture was made for: its runtime output, and key authentication
// when the (sensitive) Vision key has a value.
func (fx fixture) deployment(t *testing.T) deployment {
	t.Helper()
	var d deployment
	if err := json.Unmarshal(fx["runtime"].Value, &d.runtime); err != nil {
		t.Fatalf("fixture runtime: %v", err)
	}
	d.keyAuth = string(fx["vision_key"].Value) != "null"
	return d
}

// Each fixture has exactly the module's outputs, and each settings output exactly the keys
// the module gives for the fixture's runtime and Vision authentication.
func TestFixturesMatchModule(t *testing.T) {
	m := loadModule(t)
	seen := map[string]bool{}
	for _, path := range fixtures {
		fx := readFixture(t, path)
		d := fx.deployment(t)
		seen[d.runtime] = true
		var names []string
		for _, o := range m.all("output") {
			names = append(names, o.Labels[0])
			if _, ok := fx[o.Labels[0]]; !ok {
				t.Errorf("%s: output %s is missing", path, o.Labels[0])
			}
			if s := o.attrText("sensitive") == "true"; s != fx[o.Labels[0]].Sensitive {
				t.Errorf("%s: output %s sensitive %v, the module's %v", path, o.Labels[0], fx[o.Labels[0]].Sensitive, s)
			}
		}
		if len(fx) != len(names) {
			t.Errorf("%s has %d outputs, the module %d", path, len(fx), len(names))
		}
		for bin := range iam.Binaries {
			name := strings.ReplaceAll(bin, "-", "_") + "_settings"
			var vals map[string]string
			if err := json.Unmarshal(fx[name].Value, &vals); err != nil {
				t.Fatalf("%s %s: %v", path, name, err)
			}
			got := map[string]bool{}
			for k := range vals {
				got[k] = true
			}
			if d := iam.Diff(got, set(outputKeys(t, m, name, d.ctx())...)); d != "" {
				t.Errorf("%s %s: %s", path, name, d)
			}
		}
	}
	for _, d := range deployments {
		if !seen[d.runtime] {
			t.Errorf("no fixture for runtime %s", d.runtime)
		}
	}
}

// The Firestore indexes and TTL policy are those of deploy/firestore/firestore.indexes.json.
func TestFirestoreIndexesMatchTheJSON(t *testing.T) {
	m := loadModule(t)
	b, err := os.ReadFile("../firestore/firestore.indexes.json")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Indexes []struct {
			CollectionGroup, QueryScope string
			Fields                      []struct{ FieldPath, Order, ArrayConfig string }
		}
		FieldOverrides []struct {
			CollectionGroup, FieldPath string
			TTL                        bool
		}
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, ix := range spec.Indexes {
		s := ix.QueryScope
		for _, f := range ix.Fields {
			s += " " + f.FieldPath + ":" + f.Order + f.ArrayConfig
		}
		want = append(want, s)
		if ix.CollectionGroup != "images" {
			t.Errorf("index on %s; the module puts it on var.firestore_collection (default images)", ix.CollectionGroup)
		}
	}
	for _, r := range m.all("resource", "google_firestore_index") {
		if r.attrText("collection") != "var.firestore_collection" || r.attrText("database") != "google_firestore_database.index.name" {
			t.Errorf("%s on %s in %s", r.name(), r.attrText("collection"), r.attrText("database"))
		}
		s := strings.Trim(r.attrText("query_scope"), `"`)
		for _, f := range r.children("fields") {
			s += " " + strings.Trim(f.attrText("field_path"), `"`) + ":" + strings.Trim(f.attrText("order"), `"`) + strings.Trim(f.attrText("array_config"), `"`)
		}
		got = append(got, s)
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("indexes:\n got %v\nwant %v", got, want)
	}
	var ttls []string
	for _, r := range m.all("resource", "google_firestore_field") {
		if len(r.children("ttl_config")) == 1 {
			ttls = append(ttls, r.attrText("collection")+" "+r.attrText("field"))
		}
	}
	if len(spec.FieldOverrides) != 1 || !spec.FieldOverrides[0].TTL || len(ttls) != 1 ||
		ttls[0] != `"${var.firestore_collection}-tombstones" "`+spec.FieldOverrides[0].FieldPath+`"` ||
		spec.FieldOverrides[0].CollectionGroup != "images-tombstones" {
		t.Errorf("TTL policies: module %v, JSON %+v", ttls, spec.FieldOverrides)
	}
}
