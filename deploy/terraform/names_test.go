package terraform_test

// The names the Terraform module and the Kubernetes manifests share. Each deploy/k8s overlay
// takes the component `make tf-env` writes from `terraform output -json`; the one in git is
// written from the overlay's fixture. These tests build each overlay with kustomize and
// compare what the pods get (namespace, service accounts and their annotations, settings,
// mounted files and token audiences, KEDA's role) with what the module creates (its HCL,
// evaluated with the variables' defaults) and outputs (the fixture), so that a name changed
// on one side only fails here.

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"imgpipe/deploy/internal/iam"
	"imgpipe/deploy/internal/tfout"
	"imgpipe/deploy/k8s"
	"imgpipe/internal/stacktest"
)

// evalContext evaluates the module's expressions with the variables' defaults (and the
// values given for variables without one) and every local that needs no resource.
func (m *module) evalContext(t *testing.T, given map[string]cty.Value) *hcl.EvalContext {
	t.Helper()
	vars := map[string]cty.Value{}
	for _, v := range m.all("variable") {
		name := v.Labels[0]
		if g, ok := given[name]; ok {
			vars[name] = g
			continue
		}
		da := v.attr("default")
		if da == nil {
			vars[name] = cty.DynamicVal
			continue
		}
		ty, defaults, diags := typeexpr.TypeConstraintWithDefaults(v.attr("type").Expr)
		def, diags2 := da.Expr.Value(nil)
		if diags.HasErrors() || diags2.HasErrors() {
			t.Fatalf("variable %s: %s %s", name, diags.Error(), diags2.Error())
		}
		if defaults != nil {
			def = defaults.Apply(def)
		}
		val, err := convert.Convert(def, ty)
		if err != nil {
			t.Fatalf("variable %s: %v", name, err)
		}
		vars[name] = val
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)},
		Functions: map[string]function.Function{
			"merge": stdlib.MergeFunc, "trimprefix": stdlib.TrimPrefixFunc, "replace": stdlib.ReplaceFunc, "join": stdlib.JoinFunc,
		},
	}
	// Locals in as many passes as their references need; those on resources stay out.
	locals := map[string]cty.Value{}
	for pass := 0; pass < 5; pass++ {
		ctx.Variables["local"] = cty.ObjectVal(locals)
		for _, lb := range m.all("locals") {
			for name, a := range lb.Body.Attributes {
				if _, done := locals[name]; done {
					continue
				}
				if v, diags := a.Expr.Value(ctx); !diags.HasErrors() && v.IsWhollyKnown() {
					locals[name] = v
				}
			}
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(locals)
	return ctx
}

// eval evaluates an attribute of block b, with each.key and each.value set when key is not "".
func eval(t *testing.T, ctx *hcl.EvalContext, b *block, attr, key string, value cty.Value) string {
	t.Helper()
	a := b.attr(attr)
	if a == nil {
		t.Fatalf("%s has no %s", b.name(), attr)
	}
	c := ctx
	if key != "" {
		c = ctx.NewChild()
		c.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(key), "value": value})}
	}
	v, diags := a.Expr.Value(c)
	if diags.HasErrors() || !v.IsWhollyKnown() || !v.Type().Equals(cty.String) {
		t.Fatalf("%s.%s does not evaluate to a string from the variables: %s", b.name(), attr, diags.Error())
	}
	return v.AsString()
}

// local returns a local's value in ctx as a Go map of strings.
func localStrings(t *testing.T, ctx *hcl.EvalContext, name string) map[string]string {
	t.Helper()
	v := ctx.Variables["local"].GetAttr(name)
	out := map[string]string{}
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		out[k.AsString()] = e.AsString()
	}
	return out
}

// parseFixture reads a fixture as make tf-env does.
func parseFixture(t *testing.T, path string) *tfout.Outputs {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := tfout.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return o
}

// overlay is one overlay, built, with the fixture its component was written from.
type overlay struct {
	name string
	set  *k8s.Set
	out  *tfout.Outputs
	ctx  *hcl.EvalContext
}

func buildOverlays(t *testing.T, m *module) []overlay {
	t.Helper()
	var out []overlay
	for _, path := range fixtures {
		o := parseFixture(t, path)
		s, err := k8s.Build(filepath.Join(k8s.Dir(), "overlays", o.Runtime))
		if err != nil {
			t.Fatal(err)
		}
		ctx := m.evalContext(t, map[string]cty.Value{
			"runtime":         cty.StringVal(o.Runtime),
			"gcp_project_id":  cty.StringVal(o.Settings["analyzer"]["GOOGLE_CLOUD_PROJECT"]),
			"vision_key_auth": cty.BoolVal(o.Settings["analyzer"]["AZURE_VISION_KEY_FILE"] != ""),
		})
		out = append(out, overlay{name: o.Runtime, set: s, out: o, ctx: ctx})
	}
	if len(out) != len(tfout.Runtimes) {
		t.Fatalf("%d overlays built, want one per runtime %v", len(out), tfout.Runtimes)
	}
	return out
}

func (o overlay) deployment(t *testing.T, bin string) (*appsv1.Deployment, *corev1.Container, map[string]string) {
	t.Helper()
	d := o.set.Deployments[tfout.Prefix+"-"+bin]
	if d == nil || len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%s: no Deployment of %s with one container", o.name, bin)
	}
	c := &d.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if cm := o.set.ConfigMap(ef.ConfigMapRef.Name); cm != nil {
			maps.Copy(env, cm.Data)
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return d, c, env
}

// The overlay of every runtime runs each binary in the module's namespace under the service
// account its identities trust: the AWS role's trust subject, GKE's workload identity member,
// the Azure federated credential's subject, and the names the module outputs.
func TestNamesServiceAccounts(t *testing.T) {
	m := loadModule(t)
	for _, o := range buildOverlays(t, m) {
		ns := o.ctx.Variables["var"].GetAttr("kubernetes_namespace").AsString()
		sas := localStrings(t, o.ctx, "kubernetes_service_accounts")
		subjects := localStrings(t, o.ctx, "kubernetes_subjects")
		for _, bin := range tfout.Deployed {
			d, _, _ := o.deployment(t, bin)
			sa := d.Spec.Template.Spec.ServiceAccountName
			if d.Namespace != ns || o.set.ServiceAccounts[sa] == nil || o.set.ServiceAccounts[sa].Namespace != ns {
				t.Errorf("%s: %s runs in namespace %q as %q; the module's namespace is %q", o.name, bin, d.Namespace, sa, ns)
			}
			if sas[bin] != sa {
				t.Errorf("%s: %s runs as %s; the module's kubernetes_service_accounts names %s", o.name, bin, sa, sas[bin])
			}
			if want := "system:serviceaccount:" + d.Namespace + ":" + sa; subjects[bin] != want {
				t.Errorf("%s: the module trusts %s for %s (its AWS role's sub), the pods are %s", o.name, subjects[bin], bin, want)
			}
			if got := o.out.ServiceAccounts[bin]; got.Namespace != d.Namespace || got.Name != sa {
				t.Errorf("%s: the fixture's kubernetes_service_accounts.%s is %+v, the pods run as %s/%s", o.name, bin, got, d.Namespace, sa)
			}
			if o.name == "gke" {
				member := eval(t, o.ctx, m.one(t, "resource", "google_service_account_iam_member", "from_gke"), "member", bin, cty.StringVal(sas[bin]))
				if want := "serviceAccount:" + o.ctx.Variables["var"].GetAttr("gcp_project_id").AsString() + ".svc.id.goog[" + d.Namespace + "/" + sa + "]"; member != want {
					t.Errorf("gke: %s's GKE workload identity member is %s, the pods are %s", bin, member, want)
				}
			}
		}
		fic := m.one(t, "resource", "azurerm_federated_identity_credential", "analyzer")
		d, _, _ := o.deployment(t, "analyzer")
		if got, want := eval(t, o.ctx, fic, "subject", "", cty.NilVal), "system:serviceaccount:"+d.Namespace+":"+d.Spec.Template.Spec.ServiceAccountName; got != want {
			t.Errorf("%s: the analyzer's federated credential trusts %s, the pods are %s", o.name, got, want)
		}
		// The service accounts carry what the module outputs, and no other annotation.
		for _, bin := range tfout.Deployed {
			sa := o.set.ServiceAccounts[tfout.Prefix+"-"+bin]
			got := map[string]string{}
			for k, v := range sa.Annotations {
				if strings.Contains(k, ".") {
					got[k] = v
				}
			}
			if want := o.out.Annotations[bin]; !maps.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Errorf("%s: ServiceAccount %s has annotations %v, the module outputs %v", o.name, sa.Name, got, want)
			}
		}
	}
}

// The identities the pods present are the module's: the AWS role names, the Google service
// accounts, the token audiences its trust requires, KEDA's role and its trust.
func TestNamesIdentities(t *testing.T) {
	m := loadModule(t)
	trust := m.statement(t, "trust").conditions()
	if got, want := trust[`"${local.issuer_host}:aud"`], `"StringEquals" ["`+tfout.AWSAudience+`"]`; got != want {
		t.Errorf("the roles trust the audience %s; the pods' AWS tokens have %s", got, want)
	}
	if got := m.one(t, "resource", "azurerm_federated_identity_credential", "analyzer").attrText("audience"); got != `["`+tfout.AzureAudience+`"]` {
		t.Errorf("the analyzer's federated credential trusts the audience %s; its token has %s", got, tfout.AzureAudience)
	}
	role := m.one(t, "resource", "aws_iam_role", "binary")
	gsa := m.one(t, "resource", "google_service_account", "binary")
	for _, o := range buildOverlays(t, m) {
		project := o.ctx.Variables["var"].GetAttr("gcp_project_id").AsString()
		for _, bin := range tfout.Deployed {
			d, _, env := o.deployment(t, bin)
			sa := o.set.ServiceAccounts[d.Spec.Template.Spec.ServiceAccountName]
			roleName := eval(t, o.ctx, role, "name", bin, cty.NilVal)
			gsaEmail := eval(t, o.ctx, gsa, "account_id", bin, cty.NilVal) + "@" + project + ".iam.gserviceaccount.com"
			for what, arn := range map[string]string{"AWS_ROLE_ARN": env["AWS_ROLE_ARN"], "the IRSA annotation": sa.Annotations[kedav1alpha1.PodIdentityAnnotationEKS]} {
				if arn != "" && !strings.HasSuffix(arn, ":role/"+roleName) {
					t.Errorf("%s: %s's %s is %s; the module's role is %s", o.name, bin, what, arn, roleName)
				}
			}
			if g := sa.Annotations["iam.gke.io/gcp-service-account"]; g != "" && g != gsaEmail {
				t.Errorf("%s: %s's GKE service account is %s; the module's is %s", o.name, bin, g, gsaEmail)
			}
			// Outside GKE: the external_account file of the module, for the binary's own
			// service account.
			if file := env["GOOGLE_APPLICATION_CREDENTIALS"]; file != "" {
				cm := o.set.ConfigMap(tfout.GoogleConfigMap(bin))
				// The file as the component writes it: the output's JSON and a line end.
				if cm == nil || cm.Data[tfout.CredentialsKey] != o.out.GoogleCredentials[bin]+"\n" {
					t.Errorf("%s: %s's mounted Google configuration is not the module's google_credentials.%s", o.name, bin, bin)
					continue
				}
				checkExternalAccount(t, m, o.name+" "+bin, cm.Data[tfout.CredentialsKey], gsaEmail)
			}
		}
		// KEDA reads the queue with the module's KEDA role, which trusts KEDA's operator.
		ta := o.set.TriggerAuthentications["imgpipe-aws"]
		if ta == nil || ta.Spec.PodIdentity.RoleArn == nil || *ta.Spec.PodIdentity.RoleArn != o.out.KEDARoleARN ||
			!strings.HasSuffix(o.out.KEDARoleARN, ":role/"+eval(t, o.ctx, m.one(t, "resource", "aws_iam_role", "keda"), "name", "", cty.NilVal)) {
			t.Errorf("%s: KEDA's TriggerAuthentication does not name the module's KEDA role %s", o.name, o.out.KEDARoleARN)
		}
		keda := o.ctx.Variables["var"].GetAttr("keda_service_account")
		if got, want := localStrings(t, o.ctx, "kubernetes_subjects")["keda"], "system:serviceaccount:"+keda.GetAttr("namespace").AsString()+":"+keda.GetAttr("name").AsString(); got != want || want != "system:serviceaccount:keda:keda-operator" {
			t.Errorf("KEDA's role trusts %s, want KEDA's operator (the Helm chart's keda/keda-operator)", got)
		}
	}
}

// checkExternalAccount: cfg is the file the module's google_credentials writes: its literal
// fields (type, subject_token_type, token_url, credential_source's environment_id...) as the
// HCL has them, its keys exactly the HCL's, impersonating email.
func checkExternalAccount(t *testing.T, m *module, what, cfg, email string) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal([]byte(cfg), &got); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var want *hclsyntax.ObjectConsExpr
	for _, lb := range m.all("locals") {
		if a := lb.attr("google_credentials"); a != nil {
			hclsyntax.VisitAll(a.Expr, func(n hclsyntax.Node) hcl.Diagnostics {
				if call, ok := n.(*hclsyntax.FunctionCallExpr); ok && call.Name == "jsonencode" && len(call.Args) == 1 {
					want, _ = call.Args[0].(*hclsyntax.ObjectConsExpr)
				}
				return nil
			})
		}
	}
	if want == nil {
		t.Fatal("local.google_credentials has no jsonencode({...})")
	}
	compareObject(t, what, want, got)
	if url, _ := got["service_account_impersonation_url"].(string); !strings.Contains(url, "/serviceAccounts/"+email+":generateAccessToken") {
		t.Errorf("%s: impersonates %s, want %s", what, url, email)
	}
}

// compareObject compares an HCL object constructor with a decoded JSON object: the same keys,
// and the same value wherever the HCL's is a literal.
func compareObject(t *testing.T, what string, want *hclsyntax.ObjectConsExpr, got map[string]any) {
	t.Helper()
	keys := map[string]bool{}
	for _, item := range want.Items {
		kv, _ := item.KeyExpr.Value(nil)
		k := kv.AsString()
		keys[k] = true
		if inner, ok := item.ValueExpr.(*hclsyntax.ObjectConsExpr); ok {
			sub, _ := got[k].(map[string]any)
			compareObject(t, what+" "+k, inner, sub)
			continue
		}
		if len(item.ValueExpr.Variables()) > 0 {
			if _, ok := got[k]; !ok {
				t.Errorf("%s lacks %s", what, k)
			}
			continue
		}
		v, diags := item.ValueExpr.Value(nil)
		if diags.HasErrors() || !v.Type().Equals(cty.String) {
			continue
		}
		if got[k] != v.AsString() {
			t.Errorf("%s: %s is %v, the module writes %q", what, k, got[k], v.AsString())
		}
	}
	for k := range got {
		if !keys[k] {
			t.Errorf("%s has %s, which the module does not write", what, k)
		}
	}
}

// Every setting the module outputs for a deployed binary reaches its container, unchanged;
// the credential files are where the module's variables say the pods mount them; the module
// federates to Google Cloud exactly the deployed binaries whose code calls it.
func TestNamesSettingsAndMounts(t *testing.T) {
	m := loadModule(t)
	paths := map[string]string{
		"GOOGLE_APPLICATION_CREDENTIALS": "google_credentials_path", "AZURE_FEDERATED_TOKEN_FILE": "azure_federated_token_path",
		"AWS_WEB_IDENTITY_TOKEN_FILE": "aws_web_identity_token_path", "AZURE_VISION_KEY_FILE": "vision_key_path",
	}
	for _, mount := range tfout.Mounts {
		if paths[mount.Setting] == "" {
			t.Errorf("%s is mounted by the components, but no module variable says where", mount.Setting)
		}
	}
	for _, o := range buildOverlays(t, m) {
		for _, bin := range tfout.Deployed {
			_, _, env := o.deployment(t, bin)
			for k, v := range o.out.Settings[bin] {
				if env[k] != v {
					t.Errorf("%s: %s's %s is %q in its container, the module outputs %q", o.name, bin, k, env[k], v)
				}
			}
			for setting, variable := range paths {
				if file := env[setting]; file != "" {
					if want := o.ctx.Variables["var"].GetAttr(variable).AsString(); file != want {
						t.Errorf("%s: %s's %s is %s; var.%s is %s", o.name, bin, setting, file, variable, want)
					}
				}
			}
		}
	}
	calls, err := iam.Derive("../..")
	if err != nil {
		t.Fatal(err)
	}
	var google []string
	for _, bin := range tfout.Deployed {
		for op := range calls[bin] {
			if strings.HasPrefix(op.Pkg, "cloud.google.com/") && !slices.Contains(google, bin) {
				google = append(google, bin)
			}
		}
	}
	ctx := m.evalContext(t, nil)
	var federated []string
	for it := ctx.Variables["local"].GetAttr("google_federated").ElementIterator(); it.Next(); {
		_, v := it.Element()
		federated = append(federated, v.AsString())
	}
	slices.Sort(google)
	slices.Sort(federated)
	if !slices.Equal(google, federated) {
		t.Errorf("the module federates %v to Google Cloud; the deployed binaries that call it are %v", federated, google)
	}
}

// The component in each overlay is exactly what make tf-env writes from the overlay's
// fixture: the Makefile's target, run on a copy of deploy/k8s, rewrites it byte for byte, and
// the copy builds.
func TestMakeTFEnvWritesTheOverlays(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		if stacktest.InCI() {
			t.Fatal("make not found")
		}
		t.Skip("make not found")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, fx := range fixtures {
		o := parseFixture(t, fx)
		tmp := t.TempDir()
		if out, err := exec.Command("cp", "-r", k8s.Dir(), tmp).CombinedOutput(); err != nil {
			t.Fatalf("copy deploy/k8s: %v: %s", err, out)
		}
		dir := filepath.Join(tmp, "k8s", "overlays", o.Runtime, "terraform")
		committed := filepath.Join(k8s.Dir(), "overlays", o.Runtime, "terraform")
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		fxPath, _ := filepath.Abs(fx)
		cmd := exec.Command("make", "-s", "-C", root, "tf-env", "TF_OUTPUT="+fxPath, "OUT="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make tf-env TF_OUTPUT=%s: %v: %s", fx, err, out)
		}
		want, err := os.ReadDir(committed)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Errorf("%s: make tf-env wrote %d files, deploy/k8s has %d (run make tf-env TF_OUTPUT=deploy/terraform/%s)", o.Runtime, len(got), len(want), fx)
		}
		for _, e := range want {
			a, _ := os.ReadFile(filepath.Join(committed, e.Name()))
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s: %s differs from what make tf-env writes from %s (%v): run make tf-env TF_OUTPUT=deploy/terraform/%s", o.Runtime, e.Name(), fx, err, fx)
			}
		}
		if _, err := k8s.Build(filepath.Join(tmp, "k8s", "overlays", o.Runtime)); err != nil {
			t.Errorf("%s: the overlay with what make tf-env wrote: %v", o.Runtime, err)
		}
	}
}

// A name that drifts between the module's outputs and the manifests stops make tf-env or
// kustomize with a message naming it, not a deployment that fails at run time.
func TestDriftedNamesFailLoudly(t *testing.T) {
	raw, err := os.ReadFile("testdata/output-eks.json")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(map[string]map[string]any)) *tfout.Outputs {
		var m map[string]map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		o, err := tfout.Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	sas := func(m map[string]map[string]any) map[string]any {
		return m["kubernetes_service_accounts"]["value"].(map[string]any)
	}

	renamed := edit(func(m map[string]map[string]any) { sas(m)["indexer"].(map[string]any)["name"] = "indexer" })
	if err := renamed.WriteComponent(t.TempDir()); err == nil || !strings.Contains(err.Error(), "deploy/k8s runs it as imgpipe-indexer") {
		t.Errorf("a renamed service account: %v", err)
	}

	moved := edit(func(m map[string]map[string]any) {
		for _, sa := range sas(m) {
			sa.(map[string]any)["namespace"] = "pipeline"
		}
	})
	tmp := t.TempDir()
	if out, err := exec.Command("cp", "-r", k8s.Dir(), tmp).CombinedOutput(); err != nil {
		t.Fatalf("copy deploy/k8s: %v: %s", err, out)
	}
	if err := moved.WriteComponent(filepath.Join(tmp, "k8s", "overlays", "eks", "terraform")); err != nil {
		t.Fatal(err)
	}
	if _, err := k8s.Build(filepath.Join(tmp, "k8s", "overlays", "eks")); err == nil || !strings.Contains(err.Error(), "imgpipe-analyzer.pipeline") {
		t.Errorf("another namespace: %v", err)
	}
}
