package tfout

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"imgpipe/deploy/k8s"
)

// The fixtures have the shape `terraform output -json` prints for deploy/terraform, one per
// runtime (deploy/terraform's tests check them against the module).
func fixture(runtime string) string {
	return "../../terraform/testdata/output-" + runtime + ".json"
}

func parseFixture(t *testing.T, runtime string) *Outputs {
	t.Helper()
	f, err := os.Open(fixture(runtime))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestEnvFile(t *testing.T) {
	o := parseFixture(t, "eks")
	var buf bytes.Buffer
	if err := o.WriteEnv(&buf, "analyzer"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(o.Settings["analyzer"]) || len(lines) < 12 {
		t.Fatalf("%d lines for %d settings:\n%s", len(lines), len(o.Settings["analyzer"]), buf.String())
	}
	for _, want := range []string{
		"AWS_REGION=eu-west-1",
		"IMGPIPE_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/imgpipe-events",
		"IMGPIPE_VISIBILITY_TIMEOUT=30s",
		"AZURE_FEDERATED_TOKEN_FILE=/var/run/secrets/azure/tokens/azure-identity-token",
	} {
		if !strings.Contains(buf.String(), want+"\n") {
			t.Errorf("env file lacks %s", want)
		}
	}
	if !slices.IsSorted(lines) {
		t.Fatalf("not sorted:\n%s", buf.String())
	}
	if err := o.WriteEnv(&buf, "ingester"); err == nil || !strings.Contains(err.Error(), "unknown binary") {
		t.Fatalf("unknown binary: %v", err)
	}
}

// readComponent returns the files of a written component.
func readComponent(t *testing.T, dir string) map[string]string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// patchedDeployments decodes the component's Deployment patches, by name.
func patchedDeployments(t *testing.T, files map[string]string) map[string]*appsv1.Deployment {
	t.Helper()
	out := map[string]*appsv1.Deployment{}
	docs, err := k8s.SplitYAML([]byte(files["deployments.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range docs {
		var d appsv1.Deployment
		if err := yaml.UnmarshalStrict(doc, &d); err != nil {
			t.Fatal(err)
		}
		out[d.Name] = &d
	}
	return out
}

// volume returns the named volume of the patched Deployment of bin, and its mount.
func volume(t *testing.T, ds map[string]*appsv1.Deployment, bin, name string) (*corev1.Volume, *corev1.VolumeMount) {
	t.Helper()
	d := ds[Prefix+"-"+bin]
	if d == nil {
		return nil, nil
	}
	var v *corev1.Volume
	for i := range d.Spec.Template.Spec.Volumes {
		if d.Spec.Template.Spec.Volumes[i].Name == name {
			v = &d.Spec.Template.Spec.Volumes[i]
		}
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Name != bin {
		t.Fatalf("%s: container %s", d.Name, c.Name)
	}
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == name {
			return v, &c.VolumeMounts[i]
		}
	}
	return v, nil
}

// The component of each runtime: the files it has, the mounts of the credential files the
// settings name, the trigger patches.
func TestComponent(t *testing.T) {
	cases := map[string]struct {
		files []string
		check func(t *testing.T, files map[string]string, ds map[string]*appsv1.Deployment)
	}{
		"eks": {
			files: []string{"analyzer-google.json", "analyzer-trigger.yaml", "analyzer.env", "console-google.json", "console.env", "deployments.yaml",
				"indexer-google.json", "indexer.env", "keda.yaml", "kustomization.yaml", "serviceaccounts.yaml"},
			check: func(t *testing.T, files map[string]string, ds map[string]*appsv1.Deployment) {
				v, m := volume(t, ds, "analyzer", "azure-token")
				if v == nil || m == nil || v.Projected.Sources[0].ServiceAccountToken.Audience != AzureAudience ||
					v.Projected.Sources[0].ServiceAccountToken.Path != "azure-identity-token" || m.MountPath != "/var/run/secrets/azure/tokens" || !m.ReadOnly {
					t.Errorf("analyzer's Entra ID token: %+v %+v", v, m)
				}
				v, m = volume(t, ds, "indexer", "google-credentials")
				if v == nil || m == nil || v.ConfigMap.Name != "imgpipe-indexer-google" || v.ConfigMap.Items[0].Key != CredentialsKey || m.MountPath != "/var/run/secrets/imgpipe/google" {
					t.Errorf("indexer's Google configuration: %+v %+v", v, m)
				}
				if v, _ := volume(t, ds, "console", "aws-token"); v != nil {
					t.Error("an AWS token on EKS, where the IRSA webhook mounts it")
				}
				if !strings.Contains(files["serviceaccounts.yaml"], "eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/imgpipe-indexer") {
					t.Errorf("the indexer's IRSA role is not annotated:\n%s", files["serviceaccounts.yaml"])
				}
				if !strings.Contains(files["kustomization.yaml"], "credentials.json=analyzer-google.json") {
					t.Errorf("no Google configuration ConfigMap:\n%s", files["kustomization.yaml"])
				}
			},
		},
		"gke": {
			files: []string{"analyzer-trigger.yaml", "analyzer.env", "console.env", "deployments.yaml", "indexer-trigger.yaml", "indexer.env",
				"keda.yaml", "kustomization.yaml", "serviceaccounts.yaml"},
			check: func(t *testing.T, files map[string]string, ds map[string]*appsv1.Deployment) {
				v, m := volume(t, ds, "console", "aws-token")
				if v == nil || m == nil || v.Projected.Sources[0].ServiceAccountToken.Audience != AWSAudience || m.MountPath != "/var/run/secrets/eks.amazonaws.com/serviceaccount" {
					t.Errorf("console's AWS token: %+v %+v", v, m)
				}
				if ds["imgpipe-indexer"] != nil {
					t.Error("the indexer calls no AWS on GKE and reads no credential file, yet has mounts")
				}
				if !strings.Contains(files["indexer-trigger.yaml"], `subscription_id="imgpipe-indexer"`) || !strings.Contains(files["indexer-trigger.yaml"], "/projects/imgpipe-prod/") {
					t.Errorf("the backlog trigger:\n%s", files["indexer-trigger.yaml"])
				}
			},
		},
		"aks": {
			files: []string{"analyzer-google.json", "analyzer-trigger.yaml", "analyzer.env", "console-google.json", "console.env", "deployments.yaml",
				"indexer-google.json", "indexer.env", "keda.yaml", "kustomization.yaml"},
			check: func(t *testing.T, files map[string]string, ds map[string]*appsv1.Deployment) {
				v, m := volume(t, ds, "analyzer", "vision-key")
				if v == nil || m == nil || v.Secret.SecretName != VisionSecret || *v.Secret.DefaultMode != 0o440 || v.Secret.Items[0].Key != "key" || m.MountPath != "/var/run/secrets/imgpipe/vision" {
					t.Errorf("analyzer's Vision key: %+v %+v", v, m)
				}
				if v, _ := volume(t, ds, "analyzer", "azure-token"); v != nil {
					t.Error("an Entra ID token besides the key")
				}
				if v, _ := volume(t, ds, "indexer", "aws-token"); v == nil {
					t.Error("the indexer needs its AWS role on AKS (Google Cloud through it)")
				}
			},
		},
	}
	for rt, tc := range cases {
		t.Run(rt, func(t *testing.T) {
			o := parseFixture(t, rt)
			dir := t.TempDir()
			if err := o.WriteComponent(dir); err != nil {
				t.Fatal(err)
			}
			files := readComponent(t, dir)
			var names []string
			for n := range files {
				names = append(names, n)
			}
			slices.Sort(names)
			if !slices.Equal(names, tc.files) {
				t.Fatalf("files %v, want %v", names, tc.files)
			}
			if !strings.Contains(files["keda.yaml"], "roleArn: arn:aws:iam::123456789012:role/imgpipe-keda") ||
				!strings.Contains(files["analyzer-trigger.yaml"], "value: eu-west-1") {
				t.Errorf("KEDA's role or region:\n%s\n%s", files["keda.yaml"], files["analyzer-trigger.yaml"])
			}
			tc.check(t, files, patchedDeployments(t, files))
		})
	}
}

// A second run into the same folder removes the files the first wrote and it does not, and
// leaves files it never writes.
func TestComponentReplacesItsOwnFiles(t *testing.T) {
	dir := t.TempDir()
	if err := parseFixture(t, "eks").WriteComponent(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "NOTES.md"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := parseFixture(t, "gke").WriteComponent(dir); err != nil {
		t.Fatal(err)
	}
	files := readComponent(t, dir)
	if _, ok := files["analyzer-google.json"]; ok {
		t.Error("the EKS run's Google configuration stayed")
	}
	if files["NOTES.md"] != "mine\n" || files["indexer-trigger.yaml"] == "" {
		t.Errorf("files %v", files)
	}
}

// Settings that cannot be mounted as the component would stop it with the reason.
func TestComponentRefuses(t *testing.T) {
	cases := map[string]struct {
		edit func(o *Outputs)
		want string
	}{
		"two files in one folder": {func(o *Outputs) {
			o.Settings["analyzer"]["AZURE_FEDERATED_TOKEN_FILE"] = "/var/run/secrets/imgpipe/google/token"
		}, "are both in /var/run/secrets/imgpipe/google"},
		"a relative path":    {func(o *Outputs) { o.Settings["console"]["GOOGLE_APPLICATION_CREDENTIALS"] = "google/credentials.json" }, "is not a file in a folder of its own"},
		"a file at the root": {func(o *Outputs) { o.Settings["console"]["GOOGLE_APPLICATION_CREDENTIALS"] = "/credentials.json" }, "is not a file in a folder of its own"},
		"no configuration":   {func(o *Outputs) { delete(o.GoogleCredentials, "indexer") }, "google_credentials has no configuration for indexer"},
		"no region":          {func(o *Outputs) { delete(o.Settings["analyzer"], "AWS_REGION") }, "no AWS_REGION"},
		"a renamed account": {func(o *Outputs) {
			o.ServiceAccounts["console"] = ServiceAccount{Namespace: "imgpipe", Name: "console"}
		}, "deploy/k8s runs it as imgpipe-console"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o := parseFixture(t, "eks")
			tc.edit(o)
			if err := o.WriteComponent(t.TempDir()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	good, err := os.ReadFile(fixture("eks"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]map[string]any)) string {
		var m map[string]map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	settings := func(m map[string]map[string]any, out string) map[string]any { return m[out]["value"].(map[string]any) }
	cases := map[string]struct{ in, want string }{
		"empty":          {"", "empty"},
		"not JSON":       {"{", "not the JSON"},
		"plain values":   {`{"analyzer_settings": {"IMGPIPE_QUEUE_URL": "x"}}`, "not the JSON"},
		"missing output": {edit(func(m map[string]map[string]any) { delete(m, "console_settings") }), "console_settings is missing"},
		"no runtime":     {edit(func(m map[string]map[string]any) { delete(m, "runtime") }), "runtime is missing"},
		"other runtime":  {edit(func(m map[string]map[string]any) { m["runtime"]["value"] = "ecs" }), `runtime "ecs" is none of`},
		"sensitive settings": {edit(func(m map[string]map[string]any) { m["uploader_settings"]["sensitive"] = true }),
			"sensitive"},
		"not an object": {edit(func(m map[string]map[string]any) { m["analyzer_settings"]["value"] = "x" }), "not what deploy/terraform outputs"},
		"number value": {edit(func(m map[string]map[string]any) {
			settings(m, "analyzer_settings")["IMGPIPE_WAIT_TIME"] = 20
		}), "not what deploy/terraform outputs"},
		"bad name": {edit(func(m map[string]map[string]any) {
			settings(m, "analyzer_settings")["imgpipe-queue"] = "x"
		}), "not an environment variable name"},
		"line break": {edit(func(m map[string]map[string]any) {
			settings(m, "analyzer_settings")["IMGPIPE_TOPIC"] = "a\nEVIL=1"
		}), "line break"},
		"credentials not JSON": {edit(func(m map[string]map[string]any) {
			settings(m, "google_credentials")["analyzer"] = "{"
		}), "not JSON"},
		"bad service account": {edit(func(m map[string]map[string]any) {
			settings(m, "kubernetes_service_accounts")["console"] = map[string]any{"namespace": "imgpipe", "name": "Console/../x"}
		}), "not a Kubernetes namespace and name"},
		"annotation with a line break": {edit(func(m map[string]map[string]any) {
			settings(m, "kubernetes_service_account_annotations")["indexer"] = map[string]any{"eks.amazonaws.com/role-arn": "arn\nx: y"}
		}), "line break"},
		"not a role": {edit(func(m map[string]map[string]any) { m["keda_role_arn"]["value"] = "imgpipe-keda" }), "not an IAM role ARN"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// A sensitive output's value (the AKS fixture's Vision key) never reaches an env file or the
// component.
func TestSensitiveNeverWritten(t *testing.T) {
	raw, err := os.ReadFile(fixture("aks"))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "fixture-vision-key-not-a-secret"
	if !strings.Contains(string(raw), secret) {
		t.Fatal("the AKS fixture has no Vision key value")
	}
	o := parseFixture(t, "aks")
	dir := t.TempDir()
	if err := o.WriteComponent(dir); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, f := range readComponent(t, dir) {
		all.WriteString(f)
	}
	for _, b := range Binaries {
		if err := o.WriteEnv(&all, b); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(all.String(), secret) {
		t.Fatal("a sensitive value was written")
	}
}
