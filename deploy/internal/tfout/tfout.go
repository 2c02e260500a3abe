// Package tfout turns `terraform output -json` (or `tofu output -json`) of deploy/terraform
// into what the binaries read: an env file per binary, or the kustomize component a
// deploy/k8s overlay takes (WriteComponent).
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

	"imgpipe/deploy/internal/iam"
)

// Binaries are the binaries whose settings the module outputs, as "<name>_settings" with
// dashes as underscores: every binary of deploy/internal/iam.
var Binaries = slices.Sorted(maps.Keys(iam.Binaries))

// Runtimes are the module's runtimes, each the name of the deploy/k8s overlay for it.
var Runtimes = []string{"eks", "gke", "aks"}

// maxInput bounds what Parse reads.
const maxInput = 8 << 20

type output struct {
	Sensitive bool            `json:"sensitive"`
	Type      json.RawMessage `json:"type"`
	Value     json.RawMessage `json:"value"`
}

// ServiceAccount is a Kubernetes service account the cloud identities trust.
type ServiceAccount struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Outputs is a parsed `terraform output -json`.
type Outputs struct {
	// Runtime is where the binaries run: eks, gke or aks.
	Runtime string
	// Settings maps each binary to its environment.
	Settings map[string]map[string]string
	// GoogleCredentials maps each federated binary to its external_account configuration.
	GoogleCredentials map[string]string
	// ServiceAccounts maps each binary to the Kubernetes service account its identities trust.
	ServiceAccounts map[string]ServiceAccount
	// Annotations maps each binary to its service account's annotations.
	Annotations map[string]map[string]string
	// KEDARoleARN is the role KEDA's operator reads the event queue's depth with.
	KEDARoleARN string
}

var (
	envName   = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	k8sName   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	roleARN   = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`)
	annotName = regexp.MustCompile(`^([a-z0-9.-]+/)?[A-Za-z0-9][-A-Za-z0-9_.]*$`)
)

// Parse reads `terraform output -json`. Every output the converter writes from must be there
// and well-formed: settings are objects of strings with environment variable names as keys,
// names are Kubernetes names, values hold no line break. A sensitive output is never read.
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
	value := func(name string, v any) error {
		o, ok := raw[name]
		if !ok {
			return fmt.Errorf("output %s is missing: is this the output of deploy/terraform?", name)
		}
		if o.Sensitive {
			return fmt.Errorf("output %s is sensitive: it must hold no secret", name)
		}
		if err := json.Unmarshal(o.Value, v); err != nil {
			return fmt.Errorf("output %s is not what deploy/terraform outputs: %w", name, err)
		}
		return nil
	}
	out := &Outputs{Settings: map[string]map[string]string{}}
	if err := value("runtime", &out.Runtime); err != nil {
		return nil, err
	}
	if !slices.Contains(Runtimes, out.Runtime) {
		return nil, fmt.Errorf("output runtime %q is none of %s", out.Runtime, strings.Join(Runtimes, ", "))
	}
	for _, bin := range Binaries {
		name := strings.ReplaceAll(bin, "-", "_") + "_settings"
		var m map[string]string
		if err := value(name, &m); err != nil {
			return nil, err
		}
		for k, v := range m {
			if !envName.MatchString(k) {
				return nil, fmt.Errorf("output %s: %q is not an environment variable name", name, k)
			}
			if err := oneLine(name+": "+k, v); err != nil {
				return nil, err
			}
		}
		out.Settings[bin] = m
	}
	if err := value("google_credentials", &out.GoogleCredentials); err != nil {
		return nil, err
	}
	for bin, cfg := range out.GoogleCredentials {
		if !json.Valid([]byte(cfg)) {
			return nil, fmt.Errorf("output google_credentials: %s is not JSON", bin)
		}
	}
	if err := value("kubernetes_service_accounts", &out.ServiceAccounts); err != nil {
		return nil, err
	}
	for bin, sa := range out.ServiceAccounts {
		if !k8sName.MatchString(sa.Name) || !k8sName.MatchString(sa.Namespace) {
			return nil, fmt.Errorf("output kubernetes_service_accounts: %s is %s/%s, not a Kubernetes namespace and name", bin, sa.Namespace, sa.Name)
		}
	}
	if err := value("kubernetes_service_account_annotations", &out.Annotations); err != nil {
		return nil, err
	}
	for bin, as := range out.Annotations {
		for k, v := range as {
			if !annotName.MatchString(k) {
				return nil, fmt.Errorf("output kubernetes_service_account_annotations: %s: %q is not an annotation name", bin, k)
			}
			if err := oneLine("kubernetes_service_account_annotations: "+bin+": "+k, v); err != nil {
				return nil, err
			}
		}
	}
	if err := value("keda_role_arn", &out.KEDARoleARN); err != nil {
		return nil, err
	}
	if !roleARN.MatchString(out.KEDARoleARN) {
		return nil, fmt.Errorf("output keda_role_arn %q is not an IAM role ARN", out.KEDARoleARN)
	}
	return out, nil
}

// oneLine refuses what an env file or a YAML scalar written as one line cannot carry.
func oneLine(what, v string) error {
	if strings.ContainsAny(v, "\n\r\x00") {
		return fmt.Errorf("output %s holds a line break or NUL, which an env file cannot carry", what)
	}
	return nil
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
