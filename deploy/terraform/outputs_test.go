package terraform_test

import (
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"

	"imgpipe/deploy/internal/iam"
	"imgpipe/deploy/internal/settings"
)

// settingsKeys returns every key an output value can have: the object keys of its
// constructors, through merge(), conditionals and the locals it refers to.
func settingsKeys(t *testing.T, m *module, b *block, e hclsyntax.Expression) []string {
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
			out = append(out, settingsKeys(t, m, b, a)...)
		}
	case *hclsyntax.ConditionalExpr:
		out = append(out, settingsKeys(t, m, b, x.TrueResult)...)
		out = append(out, settingsKeys(t, m, b, x.FalseResult)...)
	case *hclsyntax.ForExpr:
		out = append(out, settingsKeys(t, m, b, x.ValExpr)...)
	case *hclsyntax.IndexExpr:
		out = append(out, settingsKeys(t, m, b, x.Collection)...)
	case *hclsyntax.ScopeTraversalExpr:
		tr := x.Traversal
		if tr.RootName() != "local" || len(tr) < 2 {
			t.Fatalf("%s: settings from %s", b.name(), b.text(x))
		}
		name := traversalString(tr[:2])[len("local."):]
		for _, lb := range m.all("locals") {
			if a := lb.attr(name); a != nil {
				out = append(out, settingsKeys(t, m, lb, a.Expr)...)
			}
		}
	default:
		t.Fatalf("%s: cannot read the keys of %s", b.name(), b.text(e))
	}
	return out
}

func outputKeys(t *testing.T, m *module, name string) []string {
	t.Helper()
	b := m.one(t, "output", name)
	keys := settingsKeys(t, m, b, b.attr("value").Expr)
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
// code) or a variable the SDKs read, and every required setting is given.
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
		keys := outputKeys(t, m, strings.ReplaceAll(bin, "-", "_")+"_settings")
		given := set(keys...)
		for _, k := range keys {
			if _, ok := decl[k]; !ok && !settings.SDKEnv[k] {
				t.Errorf("%s_settings.%s is no setting of %s", bin, k, bin)
			}
		}
		for k, s := range decl {
			if s.Required && !given[k] {
				t.Errorf("%s requires --%s (%s), which its settings output does not give", bin, s.Flag, k)
			}
		}
	}
}

// The fixture the converter is tested with has exactly the outputs and keys the module has
// (on EKS with Entra ID).
func TestFixtureMatchesModule(t *testing.T) {
	m := loadModule(t)
	b, err := os.ReadFile("testdata/output-eks.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx map[string]struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range m.all("output") {
		names = append(names, o.Labels[0])
		if _, ok := fx[o.Labels[0]]; !ok {
			t.Errorf("output %s is not in the fixture", o.Labels[0])
		}
	}
	if len(fx) != len(names) {
		t.Errorf("fixture has %d outputs, the module %d", len(fx), len(names))
	}
	// On EKS with Entra ID: everything but the key file and the GKE-only web identity.
	notOnEKS := set("AZURE_VISION_KEY_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
	for bin := range iam.Binaries {
		name := strings.ReplaceAll(bin, "-", "_") + "_settings"
		var vals map[string]string
		if err := json.Unmarshal(fx[name].Value, &vals); err != nil {
			t.Fatalf("fixture %s: %v", name, err)
		}
		want := map[string]bool{}
		for _, k := range outputKeys(t, m, name) {
			if !notOnEKS[k] {
				want[k] = true
			}
		}
		if bin == "indexer" || bin == "analyzer" {
			want["GOOGLE_APPLICATION_CREDENTIALS"] = true
		}
		got := map[string]bool{}
		for k := range vals {
			got[k] = true
		}
		if d := iam.Diff(got, want); d != "" {
			t.Errorf("fixture %s: %s", name, d)
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
