package tfout

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The fixture has the shape `terraform output -json` prints for deploy/terraform on EKS:
// every output with "sensitive", "type" and "value", the sensitive vision_key null.
const fixture = "../../terraform/testdata/output-eks.json"

func parseFixture(t *testing.T) *Outputs {
	t.Helper()
	f, err := os.Open(fixture)
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
	o := parseFixture(t)
	var buf bytes.Buffer
	if err := o.WriteEnv(&buf, "analyzer"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 12 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
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
	for i := 1; i < len(lines); i++ {
		if lines[i-1] > lines[i] {
			t.Fatalf("not sorted: %s before %s", lines[i-1], lines[i])
		}
	}
	if err := o.WriteEnv(&buf, "console"); err == nil || !strings.Contains(err.Error(), "unknown binary") {
		t.Fatalf("unknown binary: %v", err)
	}
}

func TestConfigMaps(t *testing.T) {
	o := parseFixture(t)
	var buf bytes.Buffer
	if err := o.WriteConfigMaps(&buf, "imgpipe", "imgpipe"); err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(buf.String(), "---\n")
	if len(docs) != 6 { // four settings, two Google credentials (analyzer, indexer)
		t.Fatalf("%d documents", len(docs))
	}
	byName := map[string]corev1.ConfigMap{}
	for _, d := range docs {
		var cm corev1.ConfigMap
		if err := yaml.UnmarshalStrict([]byte(d), &cm); err != nil {
			t.Fatalf("not a ConfigMap: %v\n%s", err, d)
		}
		if cm.Kind != "ConfigMap" || cm.APIVersion != "v1" || cm.Namespace != "imgpipe" {
			t.Fatalf("%s: %s/%s in %q", cm.Name, cm.APIVersion, cm.Kind, cm.Namespace)
		}
		byName[cm.Name] = cm
	}
	if got := byName["imgpipe-indexer"].Data["IMGPIPE_SUBSCRIPTION"]; got != "imgpipe-indexer" {
		t.Errorf("indexer subscription %q", got)
	}
	if got := byName["imgpipe-dlq-replay"].Data["IMGPIPE_DEAD_LETTER_SUBSCRIPTION"]; got != "imgpipe-analyses-dead-letter" {
		t.Errorf("dlq-replay subscription %q", got)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(byName["imgpipe-analyzer-google"].Data[CredentialsKey]), &cfg); err != nil || cfg["type"] != "external_account" {
		t.Fatalf("analyzer credentials: %v %v", err, cfg["type"])
	}
	if _, ok := byName["imgpipe-uploader-google"]; ok {
		t.Error("the uploader is not federated, yet has credentials")
	}
}

func TestParseRejects(t *testing.T) {
	good, err := os.ReadFile(fixture)
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
	cases := map[string]struct{ in, want string }{
		"empty":          {"", "empty"},
		"not JSON":       {"{", "not the JSON"},
		"plain values":   {`{"analyzer_settings": {"IMGPIPE_QUEUE_URL": "x"}}`, "not the JSON"},
		"missing output": {edit(func(m map[string]map[string]any) { delete(m, "indexer_settings") }), "indexer_settings is missing"},
		"sensitive settings": {edit(func(m map[string]map[string]any) { m["uploader_settings"]["sensitive"] = true }),
			"sensitive"},
		"not an object": {edit(func(m map[string]map[string]any) { m["analyzer_settings"]["value"] = "x" }), "not an object"},
		"number value": {edit(func(m map[string]map[string]any) {
			m["analyzer_settings"]["value"].(map[string]any)["IMGPIPE_WAIT_TIME"] = 20
		}), "not a string"},
		"bad name": {edit(func(m map[string]map[string]any) {
			m["analyzer_settings"]["value"].(map[string]any)["imgpipe-queue"] = "x"
		}), "not an environment variable name"},
		"line break": {edit(func(m map[string]map[string]any) {
			m["analyzer_settings"]["value"].(map[string]any)["IMGPIPE_TOPIC"] = "a\nEVIL=1"
		}), "line break"},
		"credentials not JSON": {edit(func(m map[string]map[string]any) {
			m["google_credentials"]["value"].(map[string]any)["analyzer"] = "{"
		}), "not JSON"},
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

// A sensitive output's value never reaches an env file or a ConfigMap.
func TestSensitiveNeverWritten(t *testing.T) {
	good, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	in := strings.Replace(string(good), `"value": null`, `"value": "s3cr3t-vision-key"`, 1)
	if !strings.Contains(in, "s3cr3t-vision-key") {
		t.Fatal("fixture edit failed")
	}
	o, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := o.WriteConfigMaps(&buf, "imgpipe", "imgpipe"); err != nil {
		t.Fatal(err)
	}
	for _, b := range Binaries {
		if err := o.WriteEnv(&buf, b); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(buf.String(), "s3cr3t") {
		t.Fatal("a sensitive value was written")
	}
}
