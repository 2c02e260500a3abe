// Package tfout turns `terraform output -json` (or `tofu output -json`) of deploy/terraform
// into what the binaries read: an env file per binary, or Kubernetes ConfigMaps.
package tfout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Binaries are the binaries whose settings the module outputs, as "<name>_settings" with
// dashes as underscores.
var Binaries = []string{"analyzer", "indexer", "uploader", "dlq-replay"}

// CredentialsKey is the key of the external_account configuration in a binary's Google
// credentials ConfigMap.
const CredentialsKey = "credentials.json"

// maxInput bounds what Parse reads.
const maxInput = 8 << 20

type output struct {
	Sensitive bool            `json:"sensitive"`
	Type      json.RawMessage `json:"type"`
	Value     json.RawMessage `json:"value"`
}

// Outputs is a parsed `terraform output -json`.
type Outputs struct {
	// Settings maps each binary to its environment.
	Settings map[string]map[string]string
	// GoogleCredentials maps each federated binary to its external_account configuration.
	GoogleCredentials map[string]string
}

var envName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// Parse reads `terraform output -json`. Every binary's settings output must be there, an
// object of strings with environment variable names as keys; a sensitive output is never
// read.
func Parse(r io.Reader) (*Outputs, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read terraform output: %w", err)
	}
	if len(b) > maxInput {
		return nil, fmt.Errorf("terraform output is larger than %d bytes", maxInput)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("terraform output is empty (run `terraform output -json` after apply)")
	}
	var raw map[string]output
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not the JSON of `terraform output -json`: %w", err)
	}
	out := &Outputs{Settings: map[string]map[string]string{}, GoogleCredentials: map[string]string{}}
	for _, bin := range Binaries {
		name := strings.ReplaceAll(bin, "-", "_") + "_settings"
		o, ok := raw[name]
		if !ok {
			return nil, fmt.Errorf("output %s is missing: is this the output of deploy/terraform?", name)
		}
		if o.Sensitive {
			return nil, fmt.Errorf("output %s is sensitive: settings must hold no secret", name)
		}
		m, err := stringMap(name, o.Value)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			if !envName.MatchString(k) {
				return nil, fmt.Errorf("output %s: %q is not an environment variable name", name, k)
			}
			if strings.ContainsAny(v, "\n\r\x00") {
				return nil, fmt.Errorf("output %s: %s holds a line break or NUL, which an env file cannot carry", name, k)
			}
		}
		out.Settings[bin] = m
	}
	if o, ok := raw["google_credentials"]; ok && !o.Sensitive {
		m, err := stringMap("google_credentials", o.Value)
		if err != nil {
			return nil, err
		}
		for bin, cfg := range m {
			if !json.Valid([]byte(cfg)) {
				return nil, fmt.Errorf("output google_credentials: %s is not JSON", bin)
			}
			out.GoogleCredentials[bin] = cfg
		}
	}
	return out, nil
}

func stringMap(name string, v json.RawMessage) (map[string]string, error) {
	var m map[string]any
	if err := json.Unmarshal(v, &m); err != nil || m == nil {
		return nil, fmt.Errorf("output %s is not an object", name)
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("output %s: %s is %T, not a string", name, k, x)
		}
		out[k] = s
	}
	return out, nil
}

// WriteEnv writes bin's settings as KEY=value lines, sorted, unquoted: the format of
// kustomize's configMapGenerator envs and of `podman run --env-file`.
func (o *Outputs) WriteEnv(w io.Writer, bin string) error {
	m, ok := o.Settings[bin]
	if !ok {
		return fmt.Errorf("unknown binary %q (want one of %s)", bin, strings.Join(Binaries, ", "))
	}
	var buf bytes.Buffer
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&buf, "%s=%s\n", k, m[k])
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// ConfigMaps returns one ConfigMap per binary, PREFIX-BINARY, with its settings (for
// envFrom), and PREFIX-BINARY-google with the external_account configuration under
// credentials.json for each federated binary.
func (o *Outputs) ConfigMaps(prefix, namespace string) []corev1.ConfigMap {
	var out []corev1.ConfigMap
	cm := func(name string, data map[string]string, bin string) corev1.ConfigMap {
		return corev1.ConfigMap{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: namespace,
				Labels: map[string]string{"app.kubernetes.io/part-of": "imgpipe", "app.kubernetes.io/name": bin},
			},
			Data: data,
		}
	}
	for _, bin := range Binaries {
		out = append(out, cm(prefix+"-"+bin, o.Settings[bin], bin))
		if cfg, ok := o.GoogleCredentials[bin]; ok {
			out = append(out, cm(prefix+"-"+bin+"-google", map[string]string{CredentialsKey: cfg}, bin))
		}
	}
	return out
}

// WriteConfigMaps writes the ConfigMaps as one YAML stream.
func (o *Outputs) WriteConfigMaps(w io.Writer, prefix, namespace string) error {
	var buf bytes.Buffer
	for i, cm := range o.ConfigMaps(prefix, namespace) {
		y, err := yaml.Marshal(cm)
		if err != nil {
			return fmt.Errorf("configmap %s: %w", cm.Name, err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(y)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
