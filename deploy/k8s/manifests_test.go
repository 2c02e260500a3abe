package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"

	"imgpipe/deploy/internal/iam"
	"imgpipe/deploy/internal/settings"
	"imgpipe/deploy/internal/tfout"
	"imgpipe/pkg/analyzer"
	"imgpipe/pkg/gcpauth"
	"imgpipe/pkg/queue/sqsqueue"
)

const (
	analyzerName = "imgpipe-analyzer"
	indexerName  = "imgpipe-indexer"
	consoleName  = "imgpipe-console"
	// consoleTokens holds the console's bearer tokens, created by the operator outside
	// kustomize like the Vision key's tfout.VisionSecret (docs/deploy.md).
	consoleTokens = "imgpipe-console-tokens"
)

// deployments are the Deployments of every build, by binary.
var deployments = map[string]string{"analyzer": analyzerName, "indexer": indexerName, "console": consoleName}

// listens says, for each binary, the setting of the address its probes (and metrics) are
// served on and the name of that container port.
var listens = map[string]struct{ setting, port string }{
	"analyzer": {"IMGPIPE_METRICS_ADDR", "metrics"},
	"indexer":  {"IMGPIPE_METRICS_ADDR", "metrics"},
	"console":  {"IMGPIPE_CONSOLE_ADDR", "http"},
}

// Every YAML file under deploy/k8s decodes strictly: kustomization files into kustomize's
// own Kustomization type, JSON patches into operations, everything else into its API type.
func TestSourcesDecodeStrictly(t *testing.T) {
	n := 0
	err := filepath.WalkDir(Dir(), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return err
		}
		n++
		rel, _ := filepath.Rel(Dir(), p)
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		t.Run(rel, func(t *testing.T) {
			switch {
			case filepath.Base(p) == "kustomization.yaml":
				var k kusttypes.Kustomization
				if err := yaml.UnmarshalStrict(raw, &k); err != nil {
					t.Fatal(err)
				}
				if k.Kind != kusttypes.KustomizationKind && k.Kind != kusttypes.ComponentKind {
					t.Fatalf("kind %q", k.Kind)
				}
			case isJSONPatch(raw):
				var ops []jsonPatchOp
				if err := yaml.UnmarshalStrict(raw, &ops); err != nil {
					t.Fatal(err)
				}
				for _, op := range ops {
					if op.Op == "" || !strings.HasPrefix(op.Path, "/") {
						t.Errorf("bad operation %+v", op)
					}
				}
			default:
				docs, err := SplitYAML(raw)
				if err != nil {
					t.Fatal(err)
				}
				if len(docs) == 0 {
					t.Fatal("no document")
				}
				for i, doc := range docs {
					if _, err := DecodeObject(doc); err != nil {
						t.Errorf("document %d: %v", i+1, err)
					}
				}
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 15 {
		t.Fatalf("only %d YAML files found under %s", n, Dir())
	}
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	From  string `json:"from,omitempty"`
	Value any    `json:"value,omitempty"`
}

func isJSONPatch(raw []byte) bool {
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return false
	}
	_, ok := v.([]any)
	return ok
}

// The strict decoder itself: an unknown field, a misplaced one and an unknown kind fail.
func TestDecodeIsStrict(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field":   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"misplaced field": "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec: {scaleTargetRef: {name: x}, queueLength: 5}\n",
		"duplicate field": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n",
		"unknown kind":    "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"CRD field typo":  "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: x}\nspec: {selector: {}, podMetricEndpoints: []}\n",
	} {
		if _, err := DecodeObject([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

func TestBaseBuilds(t *testing.T) {
	s, err := Build(filepath.Join(Dir(), "base"))
	if err != nil {
		t.Fatal(err)
	}
	checkCommon(t, s)
	// The base has no cloud identity and no credential: the overlays' terraform components
	// give them.
	for bin, name := range deployments {
		e := env(t, s, container(t, s.Deployments[name]))
		for _, m := range tfout.Mounts {
			if e[m.Setting] != "" {
				t.Errorf("base: %s has %s; credentials belong to the overlays", bin, m.Setting)
			}
		}
	}
}

func TestOverlays(t *testing.T) {
	for _, o := range Overlays {
		t.Run(o, func(t *testing.T) {
			s, err := Build(filepath.Join(Dir(), "overlays", o))
			if err != nil {
				t.Fatal(err)
			}
			checkCommon(t, s)
			for bin, name := range deployments {
				d := s.Deployments[name]
				e := env(t, s, container(t, d))
				for k, st := range settingsOf(t, bin) {
					if st.Required && e[k] == "" {
						t.Errorf("%s: required setting --%s (%s) is not given", name, st.Flag, k)
					}
				}
				checkCredentialFiles(t, s, d)
			}
			checkVisionCredential(t, s)
			checkAWSIdentity(t, s, o)
			checkGoogleIdentity(t, s, o)
			checkKEDAIdentity(t, s)
		})
	}
}

// checkCommon holds for the base and every overlay.
func checkCommon(t *testing.T, s *Set) {
	t.Helper()
	for _, want := range deployments {
		if s.Deployments[want] == nil {
			t.Fatalf("no Deployment %s (have %v)", want, Names(s.Deployments))
		}
	}
	if len(s.Deployments) != len(deployments) {
		t.Errorf("Deployments %v, want those of %v", Names(s.Deployments), deployments)
	}
	for bin, name := range deployments {
		checkDeployment(t, s, bin, s.Deployments[name])
	}
	checkAnalyzerShutdown(t, s)
	checkPDBs(t, s)
	checkNetworkPolicies(t, s)
	checkPodMonitors(t, s)
	checkKEDA(t, s)
	checkConsoleService(t, s)
	if ns := s.Namespaces["imgpipe"]; ns == nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace imgpipe missing or not enforcing the restricted pod security standard")
	}
	for kind, names := range map[string][]string{
		"ServiceAccount": Names(s.ServiceAccounts), "Deployment": Names(s.Deployments), "ConfigMap": Names(s.ConfigMaps),
		"ScaledObject": Names(s.ScaledObjects), "NetworkPolicy": Names(s.NetworkPolicies),
	} {
		if len(names) == 0 {
			t.Errorf("no %s", kind)
		}
	}
}

func container(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%s: %d containers, want 1", d.Name, n)
	}
	return &d.Spec.Template.Spec.Containers[0]
}

// env returns the container's environment as the binary sees it: its ConfigMaps, then env.
func env(t *testing.T, s *Set, c *corev1.Container) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			t.Fatalf("container %s: envFrom other than a ConfigMap", c.Name)
		}
		cm := s.ConfigMap(ef.ConfigMapRef.Name)
		if cm == nil {
			t.Fatalf("container %s: envFrom names ConfigMap %s, which the build does not have", c.Name, ef.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			out[k] = v
		}
	}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

// scaledBy returns the ScaledObject sizing d, or nil.
func scaledBy(s *Set, d *appsv1.Deployment) *kedav1alpha1.ScaledObject {
	for _, so := range s.ScaledObjects {
		if so.Spec.ScaleTargetRef != nil && so.Spec.ScaleTargetRef.Name == d.Name {
			return so
		}
	}
	return nil
}

func checkDeployment(t *testing.T, s *Set, binary string, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("%s: selector %v does not match its pod labels %v", d.Name, d.Spec.Selector, pod.Labels)
	}
	if so := scaledBy(s, d); so != nil && d.Spec.Replicas != nil {
		t.Errorf("%s: spec.replicas is set; KEDA (ScaledObject %s) owns the replica count", d.Name, so.Name)
	} else if so == nil && d.Spec.Replicas == nil {
		t.Errorf("%s: no ScaledObject sizes it, and spec.replicas is not set", d.Name)
	}
	if pod.Labels["app.kubernetes.io/part-of"] != "imgpipe" {
		t.Errorf("%s: pods lack app.kubernetes.io/part-of=imgpipe", d.Name)
	}
	ps := pod.Spec
	sa := s.ServiceAccounts[ps.ServiceAccountName]
	if sa == nil {
		t.Errorf("%s: ServiceAccount %q not in the build", d.Name, ps.ServiceAccountName)
	} else if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("ServiceAccount %s mounts the API token", sa.Name)
	}
	if ps.ServiceAccountName != d.Name {
		t.Errorf("%s runs as ServiceAccount %s; each binary has its own, named as its Deployment", d.Name, ps.ServiceAccountName)
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Errorf("%s: pod mounts the API token", d.Name)
	}
	psc := ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext must run as non-root user 65532 with seccomp RuntimeDefault: %+v", d.Name, psc)
	}
	if ps.TerminationGracePeriodSeconds == nil {
		t.Errorf("%s: no terminationGracePeriodSeconds", d.Name)
	}
	zones := map[string]bool{}
	for _, tsc := range ps.TopologySpreadConstraints {
		ls, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
		if err != nil || !ls.Matches(labels.Set(pod.Labels)) {
			t.Errorf("%s: topology spread on %s does not select its own pods", d.Name, tsc.TopologyKey)
		}
		zones[tsc.TopologyKey] = true
	}
	if !zones["topology.kubernetes.io/zone"] || !zones["kubernetes.io/hostname"] {
		t.Errorf("%s: pods not spread over zones and nodes: %v", d.Name, zones)
	}

	c := container(t, d)
	if c.Name != binary {
		t.Errorf("%s: container %q, want %q (the terraform components patch it by name)", d.Name, c.Name, binary)
	}
	csc := c.SecurityContext
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
		csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.Capabilities == nil || len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" || len(csc.Capabilities.Add) != 0 {
		t.Errorf("%s: container securityContext must have a read-only root, no privilege escalation, all capabilities dropped: %+v", d.Name, csc)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
		if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s / limit %s: both must be set, request <= limit", d.Name, r, req.String(), lim.String())
		}
	}
	if !strings.HasPrefix(c.Image, "imgpipe/"+binary) && !strings.HasSuffix(c.Image, "/imgpipe/"+binary) {
		t.Errorf("%s: image %q is not imgpipe's %s image", d.Name, c.Image, binary)
	}

	e := env(t, s, c)
	decl := settingsOf(t, binary)
	for k := range e {
		if _, ok := decl[k]; !ok && !settings.SDKEnv[k] {
			t.Errorf("%s: %s is neither a setting %s declares nor a variable the SDKs read", d.Name, k, binary)
		}
	}
	for _, ef := range c.EnvFrom {
		for k := range s.ConfigMap(ef.ConfigMapRef.Name).Data {
			if _, ok := decl[k]; !ok && !settings.SDKEnv[k] {
				t.Errorf("ConfigMap %s: key %s is not a setting of %s", ef.ConfigMapRef.Name, k, binary)
			}
		}
	}

	// The probes (and the scrape) use the port the binary listens on.
	l := listens[binary]
	_, port, err := net.SplitHostPort(e[l.setting])
	if err != nil {
		t.Fatalf("%s: %s %q: %v", d.Name, l.setting, e[l.setting], err)
	}
	var listenPort *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == l.port {
			listenPort = &c.Ports[i]
		}
	}
	if len(c.Ports) != 1 || listenPort == nil || strconv.Itoa(int(listenPort.ContainerPort)) != port {
		t.Fatalf("%s: want one port, named %s, at %s (%s): %+v", d.Name, l.port, port, l.setting, c.Ports)
	}
	for name, want := range map[string]struct {
		p    *corev1.Probe
		path string
	}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}, "startup": {c.StartupProbe, "/healthz"}} {
		p := want.p
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", d.Name, name)
			continue
		}
		if p.HTTPGet.Path != want.path || p.HTTPGet.Port.String() != l.port {
			t.Errorf("%s: %s probe on %s port %s, want %s on the %s port", d.Name, name, p.HTTPGet.Path, p.HTTPGet.Port.String(), want.path, l.port)
		}
	}

	// Every mount has its volume, and every volume's ConfigMap is in the build.
	vols := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		vols[v.Name] = v
		if v.ConfigMap != nil && s.ConfigMap(v.ConfigMap.Name) == nil {
			t.Errorf("%s: volume %s names ConfigMap %s, which the build does not have", d.Name, v.Name, v.ConfigMap.Name)
		}
		if v.Secret != nil {
			if want := map[string]string{"analyzer": tfout.VisionSecret, "console": consoleTokens}[binary]; v.Secret.SecretName != want {
				t.Errorf("%s: volume %s names Secret %s; only %q is expected", d.Name, v.Name, v.Secret.SecretName, want)
			}
			if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
				t.Errorf("%s: Secret %s is readable by others", d.Name, v.Secret.SecretName)
			}
		}
		if v.HostPath != nil {
			t.Errorf("%s: hostPath volume %s", d.Name, v.Name)
		}
	}
	for _, m := range c.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("%s: mount %s has no volume", d.Name, m.Name)
		}
		if m.MountPath != "/tmp" && !m.ReadOnly {
			t.Errorf("%s: mount %s at %s is writable", d.Name, m.Name, m.MountPath)
		}
	}
	if binary == "console" {
		// Beyond loopback the console needs authentication: its token file is the Secret.
		if _, err := mountedFile(t, d, e["IMGPIPE_CONSOLE_TOKEN_FILE"]); err != nil {
			t.Errorf("%s: IMGPIPE_CONSOLE_TOKEN_FILE: %v", d.Name, err)
		}
	}
}

// mounted is what a pod has at a file path: the volume (and for a projected one the source)
// it comes from.
type mounted struct {
	volume corev1.Volume
	key    string                                // the ConfigMap's or Secret's key
	token  *corev1.ServiceAccountTokenProjection // for a projected service account token
}

// mountedFile finds file among d's mounts: a key of a ConfigMap or Secret volume (all of it
// or one item), or a projected service account token.
func mountedFile(t *testing.T, d *appsv1.Deployment, file string) (*mounted, error) {
	t.Helper()
	if file == "" {
		return nil, fmt.Errorf("no file named")
	}
	c := container(t, d)
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, m.MountPath+"/")
		if !ok || strings.Contains(rel, "/") {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			var items []corev1.KeyToPath
			switch {
			case v.ConfigMap != nil:
				items = v.ConfigMap.Items
			case v.Secret != nil:
				items = v.Secret.Items
			case v.Projected != nil:
				for _, src := range v.Projected.Sources {
					if tok := src.ServiceAccountToken; tok != nil && tok.Path == rel {
						return &mounted{volume: v, token: tok}, nil
					}
				}
				return nil, fmt.Errorf("%s is not a file of projected volume %s", file, v.Name)
			default:
				return nil, fmt.Errorf("%s is on volume %s, neither a ConfigMap, a Secret nor a projected token", file, v.Name)
			}
			if len(items) == 0 {
				return &mounted{volume: v, key: rel}, nil
			}
			for _, it := range items {
				if it.Path == rel {
					return &mounted{volume: v, key: it.Key}, nil
				}
			}
			return nil, fmt.Errorf("%s is no item of volume %s", file, v.Name)
		}
	}
	return nil, fmt.Errorf("%s is on no mounted volume", file)
}

// checkCredentialFiles: every credential file a setting names is mounted as what it must be:
// the projected tokens with the audience their cloud's trust requires, the Google
// configuration from its ConfigMap, the Vision key from its Secret.
func checkCredentialFiles(t *testing.T, s *Set, d *appsv1.Deployment) {
	t.Helper()
	e := env(t, s, container(t, d))
	for _, m := range tfout.Mounts {
		file, ok := e[m.Setting]
		if !ok {
			continue
		}
		got, err := mountedFile(t, d, file)
		if err != nil {
			t.Errorf("%s: %s: %v", d.Name, m.Setting, err)
			continue
		}
		switch {
		case m.Audience != "":
			if got.token == nil || got.token.Audience != m.Audience {
				t.Errorf("%s: %s %s is not a projected service account token with audience %s", d.Name, m.Setting, file, m.Audience)
			}
		case m.Setting == "GOOGLE_APPLICATION_CREDENTIALS":
			if got.volume.ConfigMap == nil || got.key != tfout.CredentialsKey || s.ConfigMap(got.volume.ConfigMap.Name).Data[got.key] == "" {
				t.Errorf("%s: %s %s is not the %s of a ConfigMap of the build", d.Name, m.Setting, file, tfout.CredentialsKey)
			}
		default:
			if got.volume.Secret == nil || got.volume.Secret.SecretName != tfout.VisionSecret || got.key != "key" {
				t.Errorf("%s: %s %s is not the key of Secret %s", d.Name, m.Setting, file, tfout.VisionSecret)
			}
		}
	}
}

// checkAnalyzerShutdown: the grace period is longer than the analyzer's worst case from
// SIGTERM to exit, computed with the settings its ConfigMaps give it (unset: the defaults).
func checkAnalyzerShutdown(t *testing.T, s *Set) {
	t.Helper()
	d := s.Deployments[analyzerName]
	e := env(t, s, container(t, d))
	opts := &analyzer.Options{}
	wait := sqsqueue.MaxWait // the binary's default; its 0 means no long poll
	for key, field := range map[string]*time.Duration{"IMGPIPE_WAIT_TIME": &wait, "IMGPIPE_DRAIN_TIMEOUT": &opts.DrainTimeout} {
		v, ok := e[key]
		if !ok {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %s=%q: %v", d.Name, key, v, err)
		}
		*field = dur
	}
	bound := analyzer.ShutdownBound(opts, wait)
	grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= bound {
		t.Errorf("%s: terminationGracePeriodSeconds %s is not longer than the worst-case shutdown %s (wait %s, drain %s)",
			d.Name, grace, bound, wait, opts.DrainTimeout)
	}
}

// checkVisionCredential: the analyzer has exactly one Vision credential, a key file (the
// Secret, checked by checkCredentialFiles) or Entra ID workload identity federation.
func checkVisionCredential(t *testing.T, s *Set) {
	t.Helper()
	d := s.Deployments[analyzerName]
	e := env(t, s, container(t, d))
	var given []string
	for _, k := range []string{"AZURE_VISION_KEY", "AZURE_VISION_KEY_FILE", "AZURE_VISION_TOKEN_FILE", "AZURE_FEDERATED_TOKEN_FILE"} {
		if e[k] != "" {
			given = append(given, k)
		}
	}
	if len(given) != 1 || given[0] == "AZURE_VISION_KEY" || given[0] == "AZURE_VISION_TOKEN_FILE" {
		t.Fatalf("%s: Vision credentials %v, want exactly one of AZURE_VISION_KEY_FILE and AZURE_FEDERATED_TOKEN_FILE (no key in a ConfigMap)", d.Name, given)
	}
	if given[0] == "AZURE_FEDERATED_TOKEN_FILE" && (e["AZURE_TENANT_ID"] == "" || e["AZURE_CLIENT_ID"] == "") {
		t.Errorf("%s: workload identity federation without AZURE_TENANT_ID and AZURE_CLIENT_ID", d.Name)
	}
}

func checkPDBs(t *testing.T, s *Set) {
	t.Helper()
	for _, name := range []string{analyzerName, indexerName} {
		pdb := s.PodDisruptionBudgets[name]
		if pdb == nil {
			t.Errorf("no PodDisruptionBudget %s", name)
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(s.Deployments[name].Spec.Template.Labels)) {
			t.Errorf("PodDisruptionBudget %s does not select the Deployment's pods", name)
		}
		if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
			t.Errorf("PodDisruptionBudget %s: want maxUnavailable 1 (a minAvailable would block drains at low replica counts)", name)
		}
	}
	// The console runs one replica: a budget would do nothing or block drains (console.yaml).
	if len(s.PodDisruptionBudgets) != 2 {
		t.Errorf("PodDisruptionBudgets %v, want the analyzer's and the indexer's", Names(s.PodDisruptionBudgets))
	}
}

// selects reports whether np applies to the pods of d.
func selects(t *testing.T, np *networkingv1.NetworkPolicy, d *appsv1.Deployment) bool {
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		t.Fatalf("NetworkPolicy %s: %v", np.Name, err)
	}
	return sel.Matches(labels.Set(d.Spec.Template.Labels))
}

func checkNetworkPolicies(t *testing.T, s *Set) {
	t.Helper()
	deny := s.NetworkPolicies["imgpipe-default-deny"]
	if deny == nil || len(deny.Spec.PodSelector.MatchLabels)+len(deny.Spec.PodSelector.MatchExpressions) != 0 ||
		len(deny.Spec.Ingress)+len(deny.Spec.Egress) != 0 || len(deny.Spec.PolicyTypes) != 2 {
		t.Fatalf("no default-deny NetworkPolicy over the whole namespace, for ingress and egress")
	}
	for bin, name := range deployments {
		d := s.Deployments[name]
		var egress []networkingv1.NetworkPolicyEgressRule
		var ingress []networkingv1.NetworkPolicyIngressRule
		for _, np := range s.NetworkPolicies {
			if selects(t, np, d) {
				egress = append(egress, np.Spec.Egress...)
				ingress = append(ingress, np.Spec.Ingress...)
			}
		}
		https := false
		for _, r := range egress {
			if len(r.Ports) == 0 || len(r.To) == 0 {
				t.Errorf("%s: an egress rule allows every port or every destination: %+v", d.Name, r)
				continue
			}
			for _, p := range r.Ports {
				switch p.Port.IntValue() {
				case 53: // DNS
				case 443:
					for _, peer := range r.To {
						if peer.IPBlock == nil || peer.IPBlock.CIDR != "0.0.0.0/0" || !containsAll(peer.IPBlock.Except, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16") {
							t.Errorf("%s: HTTPS egress to %+v, want the internet without private and link-local ranges", d.Name, peer)
						}
					}
					https = true
				case 80, 988: // GKE's metadata server, for Workload Identity
					for _, peer := range r.To {
						if peer.IPBlock == nil || !strings.HasPrefix(peer.IPBlock.CIDR, "169.254.169.25") || !strings.HasSuffix(peer.IPBlock.CIDR, "/32") {
							t.Errorf("%s: port %d egress to %+v, want only the metadata server", d.Name, p.Port.IntValue(), peer)
						}
					}
				default:
					t.Errorf("%s: egress to port %s, which no binary needs", d.Name, p.Port.String())
				}
			}
		}
		if !https {
			t.Errorf("%s: no HTTPS egress to the clouds", d.Name)
		}
		if len(ingress) == 0 {
			t.Errorf("%s: nothing may reach it", d.Name)
		}
		for _, r := range ingress {
			if len(r.Ports) != 1 || r.Ports[0].Port.String() != listens[bin].port || len(r.From) == 0 {
				t.Errorf("%s: ingress other than to its %s port from chosen peers: %+v", d.Name, listens[bin].port, r)
			}
			for _, peer := range r.From {
				switch {
				case bin == "console":
					// Only from the namespaces labelled for it (the reverse proxy's).
					if peer.IPBlock != nil || peer.PodSelector != nil || peer.NamespaceSelector == nil ||
						len(peer.NamespaceSelector.MatchExpressions) != 0 || len(peer.NamespaceSelector.MatchLabels) != 1 ||
						peer.NamespaceSelector.MatchLabels["imgpipe.io/console-access"] != "true" {
						t.Errorf("%s: ingress from %+v, want only namespaces labelled imgpipe.io/console-access=true", d.Name, peer)
					}
				default:
					// Only Prometheus in the monitoring namespace scrapes.
					if peer.IPBlock != nil || peer.PodSelector == nil || peer.NamespaceSelector == nil ||
						peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
						t.Errorf("%s: ingress from %+v, want only the monitoring namespace's Prometheus", d.Name, peer)
					}
				}
			}
		}
	}
}

func containsAll(have []string, want ...string) bool {
	set := map[string]bool{}
	for _, h := range have {
		set[h] = true
	}
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}

// checkPodMonitors: the binaries that serve metrics (the analyzer and the indexer; the
// console has no /metrics) are scraped on their metrics port.
func checkPodMonitors(t *testing.T, s *Set) {
	t.Helper()
	if len(s.PodMonitors) == 0 {
		t.Fatal("no PodMonitor")
	}
	for bin, name := range deployments {
		d := s.Deployments[name]
		scraped := false
		for _, pm := range s.PodMonitors {
			sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				continue
			}
			for _, ep := range pm.Spec.PodMetricsEndpoints {
				if ep.Port == nil || *ep.Port != "metrics" || ep.Path != "/metrics" {
					port := "(none)"
					if ep.Port != nil {
						port = *ep.Port
					}
					t.Errorf("PodMonitor %s: endpoint on port %s path %s, want port metrics, path /metrics", pm.Name, port, ep.Path)
				}
			}
			scraped = true
		}
		if want := listens[bin].port == "metrics"; scraped != want {
			t.Errorf("%s: scraped by a PodMonitor %v, want %v", d.Name, scraped, want)
		}
	}
}

// checkConsoleService: the console's Service reaches its pods on their http port.
func checkConsoleService(t *testing.T, s *Set) {
	t.Helper()
	svc := s.Services[consoleName]
	if svc == nil {
		t.Fatalf("no Service %s", consoleName)
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service %s is %s: expose the console through a TLS-terminating proxy, not the Service", consoleName, svc.Spec.Type)
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	if len(svc.Spec.Selector) == 0 || !sel.Matches(labels.Set(s.Deployments[consoleName].Spec.Template.Labels)) {
		t.Errorf("Service %s does not select the console's pods", consoleName)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("Service %s: ports %+v, want one to the http port", consoleName, svc.Spec.Ports)
	}
}

func checkKEDA(t *testing.T, s *Set) {
	t.Helper()
	for _, name := range []string{analyzerName, indexerName} {
		so := s.ScaledObjects[name]
		if so == nil {
			t.Fatalf("no ScaledObject %s", name)
		}
		if so.Spec.ScaleTargetRef == nil || so.Spec.ScaleTargetRef.Kind != "Deployment" || s.Deployments[so.Spec.ScaleTargetRef.Name] == nil {
			t.Errorf("ScaledObject %s does not target a Deployment of the build: %+v", name, so.Spec.ScaleTargetRef)
		}
		// KEDA's admission webhook runs these on every ScaledObject.
		if err := kedav1alpha1.ValidateTriggers(so.Spec.Triggers); err != nil {
			t.Errorf("ScaledObject %s: %v", name, err)
		}
		if err := kedav1alpha1.CheckReplicaCountBoundsAreValid(so); err != nil {
			t.Errorf("ScaledObject %s: %v", name, err)
		}
		if err := kedav1alpha1.CheckFallbackValid(so); err != nil {
			t.Errorf("ScaledObject %s: %v", name, err)
		}
		for _, tr := range so.Spec.Triggers {
			if tr.AuthenticationRef != nil && s.TriggerAuthentications[tr.AuthenticationRef.Name] == nil {
				t.Errorf("ScaledObject %s: trigger %s names TriggerAuthentication %s, which the build does not have", name, tr.Type, tr.AuthenticationRef.Name)
			}
		}
		b := so.Spec.Advanced
		if b == nil || b.HorizontalPodAutoscalerConfig == nil || b.HorizontalPodAutoscalerConfig.Behavior == nil ||
			b.HorizontalPodAutoscalerConfig.Behavior.ScaleDown == nil || b.HorizontalPodAutoscalerConfig.Behavior.ScaleDown.StabilizationWindowSeconds == nil ||
			*b.HorizontalPodAutoscalerConfig.Behavior.ScaleDown.StabilizationWindowSeconds < 60 {
			t.Errorf("ScaledObject %s: no scale-down stabilisation window of a minute or more", name)
		}
	}
	if len(s.ScaledObjects) != 2 {
		t.Errorf("ScaledObjects %v: the console is not scaled", Names(s.ScaledObjects))
	}
	checkAnalyzerTrigger(t, s)
	checkIndexerTriggers(t, s)
}

// AnalyzerTrigger returns the analyzer's aws-sqs-queue trigger.
func analyzerTrigger(t *testing.T, s *Set) kedav1alpha1.ScaleTriggers {
	t.Helper()
	so := s.ScaledObjects[analyzerName]
	for _, tr := range so.Spec.Triggers {
		if tr.Type == "aws-sqs-queue" {
			return tr
		}
	}
	t.Fatalf("ScaledObject %s has no aws-sqs-queue trigger", analyzerName)
	return kedav1alpha1.ScaleTriggers{}
}

func checkAnalyzerTrigger(t *testing.T, s *Set) {
	t.Helper()
	tr := analyzerTrigger(t, s)
	d := s.Deployments[analyzerName]
	e := env(t, s, container(t, d))
	md := tr.Metadata
	if md["queueURL"] != "" {
		t.Errorf("the trigger holds its own queueURL; read it from the container (queueURLFromEnv)")
	}
	if v := md["queueURLFromEnv"]; v == "" || (e["IMGPIPE_QUEUE_URL"] != "" && e[v] == "") {
		t.Errorf("queueURLFromEnv %q is not a variable of the analyzer container", v)
	}
	if e["AWS_REGION"] != "" && md["awsRegion"] != e["AWS_REGION"] {
		t.Errorf("trigger awsRegion %q, analyzer AWS_REGION %q", md["awsRegion"], e["AWS_REGION"])
	}
	// KEDA sizes pods; the pool inside each pod stays fixed, else both would act on the
	// same queue depth and overshoot.
	if e["IMGPIPE_MAX_WORKERS"] != "0" {
		t.Errorf("IMGPIPE_MAX_WORKERS=%q: with KEDA the worker pool must be fixed (0)", e["IMGPIPE_MAX_WORKERS"])
	}
	workers, err1 := strconv.Atoi(e["IMGPIPE_WORKERS"])
	target, err2 := strconv.ParseFloat(e["IMGPIPE_TARGET_BACKLOG_PER_WORKER"], 64)
	ql, err3 := strconv.Atoi(md["queueLength"])
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatalf("IMGPIPE_WORKERS %q, IMGPIPE_TARGET_BACKLOG_PER_WORKER %q, queueLength %q must be numbers", e["IMGPIPE_WORKERS"], e["IMGPIPE_TARGET_BACKLOG_PER_WORKER"], md["queueLength"])
	}
	if want := int(math.Ceil(float64(workers) * target)); ql != want {
		t.Errorf("queueLength %d, want IMGPIPE_WORKERS x IMGPIPE_TARGET_BACKLOG_PER_WORKER = %d x %g = %d", ql, workers, target, want)
	}
	if md["scaleOnInFlight"] != "true" || md["scaleOnDelayed"] != "false" {
		t.Errorf("the trigger must count in-flight messages and leave delayed ones out (as the analyzer's own autoscaler does): %v", md)
	}
	if _, ok := md["activationQueueLength"]; !ok {
		t.Errorf("no activationQueueLength")
	}
	ta := s.TriggerAuthentications[tr.AuthenticationRef.Name]
	if ta == nil || ta.Spec.PodIdentity == nil || ta.Spec.PodIdentity.Provider != kedav1alpha1.PodIdentityProviderAws || ta.Spec.PodIdentity.IdentityOwner != nil {
		t.Errorf("the SQS trigger must authenticate by AWS pod identity, with a role of its own (roleArn, no identityOwner)")
	}
}

// checkKEDAIdentity: in an overlay, KEDA reads the queue with the role the terraform
// component names (deploy/terraform's names test checks that it is KEDA's role).
func checkKEDAIdentity(t *testing.T, s *Set) {
	t.Helper()
	ta := s.TriggerAuthentications[analyzerTrigger(t, s).AuthenticationRef.Name]
	if ta.Spec.PodIdentity.RoleArn == nil || !strings.HasPrefix(*ta.Spec.PodIdentity.RoleArn, "arn:aws:iam::") {
		t.Errorf("TriggerAuthentication %s: no roleArn", ta.Name)
	}
}

func checkIndexerTriggers(t *testing.T, s *Set) {
	t.Helper()
	so := s.ScaledObjects[indexerName]
	if len(so.Spec.Triggers) == 0 {
		t.Fatal("the indexer's ScaledObject has no trigger")
	}
	names := exportedMetrics(t)
	ie := env(t, s, container(t, s.Deployments[indexerName]))
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "prometheus" {
			t.Errorf("indexer trigger %s: want prometheus (gcp-pubsub is deprecated)", tr.Type)
			continue
		}
		q := tr.Metadata["query"]
		if _, err := strconv.ParseFloat(tr.Metadata["threshold"], 64); err != nil || q == "" || tr.Metadata["serverAddress"] == "" {
			t.Errorf("indexer trigger %s: query, threshold and serverAddress are required: %v", tr.Name, tr.Metadata)
		}
		if strings.Contains(q, "imgpipe_") {
			found := false
			for n := range names {
				if strings.Contains(q, n+"{") || strings.Contains(q, n+"[") {
					found = true
				}
			}
			if !found {
				t.Errorf("indexer trigger %s: query %q names no metric the analyzer exports", tr.Name, q)
			}
		}
		// The backlog trigger reads the indexer's own subscription in its own project.
		if strings.Contains(q, "subscription_num_undelivered_messages") {
			if !strings.Contains(q, `subscription_id="`+ie["IMGPIPE_SUBSCRIPTION"]+`"`) ||
				!strings.Contains(tr.Metadata["serverAddress"], "/projects/"+ie["GOOGLE_CLOUD_PROJECT"]+"/") {
				t.Errorf("indexer trigger %s reads %s at %s, not subscription %s of project %s", tr.Name, q, tr.Metadata["serverAddress"], ie["IMGPIPE_SUBSCRIPTION"], ie["GOOGLE_CLOUD_PROJECT"])
			}
		}
	}
}

var (
	callsOnce sync.Once
	calls     map[string]map[iam.Op]bool
	callsErr  error
)

// clouds says which clouds a binary's code calls (deploy/internal/iam derives its
// operations): "aws" for S3 and SQS, "google" for Pub/Sub and Firestore.
func clouds(t *testing.T, binary string) map[string]bool {
	t.Helper()
	callsOnce.Do(func() { calls, callsErr = iam.Derive(productRoot(t)) })
	if callsErr != nil {
		t.Fatal(callsErr)
	}
	out := map[string]bool{}
	for op := range calls[binary] {
		switch {
		case strings.Contains(op.Pkg, "aws-sdk-go-v2"):
			out["aws"] = true
		case strings.Contains(op.Pkg, "cloud.google.com"):
			out["google"] = true
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s calls no cloud: the derivation is broken", binary)
	}
	return out
}

// needsAWS: a binary needs an AWS identity when its code calls AWS, or outside GKE when it
// calls Google Cloud (the federation goes through its AWS role).
func needsAWS(t *testing.T, binary, overlay string) bool {
	c := clouds(t, binary)
	return c["aws"] || (c["google"] && overlay != "gke")
}

// checkAWSIdentity: every binary that needs AWS has its own role: through the IRSA webhook
// on EKS (the annotation), through the projected token and AWS_ROLE_ARN elsewhere.
func checkAWSIdentity(t *testing.T, s *Set, overlay string) {
	t.Helper()
	for bin, name := range deployments {
		d := s.Deployments[name]
		e := env(t, s, container(t, d))
		role := s.ServiceAccounts[name].Annotations[kedav1alpha1.PodIdentityAnnotationEKS]
		if !needsAWS(t, bin, overlay) {
			if role != "" || e["AWS_ROLE_ARN"] != "" {
				t.Errorf("%s calls no AWS here, yet has an AWS role (%q, %q)", name, role, e["AWS_ROLE_ARN"])
			}
			continue
		}
		if overlay == "eks" {
			// The pod identity webhook injects the role and the token from the annotation.
			if !strings.HasPrefix(role, "arn:aws:iam::") || e["AWS_ROLE_ARN"] != "" || e["AWS_WEB_IDENTITY_TOKEN_FILE"] != "" {
				t.Errorf("%s on EKS: want the IRSA annotation %s (got %q) and no AWS_ROLE_ARN or token file of its own", name, kedav1alpha1.PodIdentityAnnotationEKS, role)
			}
			continue
		}
		if !strings.HasPrefix(e["AWS_ROLE_ARN"], "arn:aws:iam::") || e["AWS_WEB_IDENTITY_TOKEN_FILE"] == "" || role != "" {
			t.Errorf("%s: want AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (a projected token: checkCredentialFiles) and no IRSA annotation, got %q, %q, %q",
				name, e["AWS_ROLE_ARN"], e["AWS_WEB_IDENTITY_TOKEN_FILE"], role)
		}
	}
}

// checkGoogleIdentity: every binary that calls Google Cloud has its own Google identity: GKE
// Workload Identity on GKE; elsewhere an AWS external_account file, which pkg/gcpauth (as the
// binaries load it) accepts, its AWS side the binary's own role.
func checkGoogleIdentity(t *testing.T, s *Set, overlay string) {
	t.Helper()
	for bin, name := range deployments {
		d := s.Deployments[name]
		e := env(t, s, container(t, d))
		gsa := s.ServiceAccounts[name].Annotations["iam.gke.io/gcp-service-account"]
		file := e["GOOGLE_APPLICATION_CREDENTIALS"]
		if !clouds(t, bin)["google"] {
			if gsa != "" || file != "" {
				t.Errorf("%s calls no Google Cloud, yet has a Google identity", name)
			}
			continue
		}
		if overlay == "gke" {
			if !strings.HasSuffix(gsa, ".iam.gserviceaccount.com") || file != "" {
				t.Errorf("%s on GKE: want a Google service account annotation and no credential file (got %q, %q)", name, gsa, file)
			}
			continue
		}
		if gsa != "" {
			t.Errorf("%s: a GKE Workload Identity annotation outside GKE", name)
		}
		m, err := mountedFile(t, d, file)
		if err != nil || m.volume.ConfigMap == nil {
			t.Errorf("%s: GOOGLE_APPLICATION_CREDENTIALS %q is not a mounted ConfigMap file: %v", name, file, err)
			continue
		}
		raw := s.ConfigMap(m.volume.ConfigMap.Name).Data[m.key]
		var cfg struct {
			Type             string `json:"type"`
			Audience         string `json:"audience"`
			SubjectTokenType string `json:"subject_token_type"`
			CredentialSource struct {
				EnvironmentID string `json:"environment_id"`
			} `json:"credential_source"`
			Impersonation string `json:"service_account_impersonation_url"`
		}
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			t.Fatalf("%s: %s: %v", name, file, err)
		}
		if cfg.Type != "external_account" || cfg.CredentialSource.EnvironmentID != "aws1" || !strings.HasPrefix(cfg.Audience, "//iam.googleapis.com/") ||
			cfg.SubjectTokenType != "urn:ietf:params:aws:token-type:aws4_request" ||
			!strings.Contains(cfg.Impersonation, "/serviceAccounts/"+name+"@") {
			t.Errorf("%s: %s is not an AWS external_account file impersonating its own service account: %+v", name, file, cfg)
		}
		// pkg/gcpauth, as the binaries call it, takes the file (it fetches nothing until a
		// token is needed) and sees an AWS federation.
		path := filepath.Join(t.TempDir(), "credentials.json")
		if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
			t.Fatal(err)
		}
		creds, err := gcpauth.Load(context.Background(), &gcpauth.Options{
			Getenv:           func(k string) string { return map[string]string{gcpauth.EnvCredentials: path}[k] },
			AWSConfigOptions: []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(e["AWS_REGION"])},
		})
		if err != nil {
			t.Errorf("%s: pkg/gcpauth refuses %s: %v", name, file, err)
		} else if len(creds.ClientOptions("")) == 0 {
			t.Errorf("%s: pkg/gcpauth leaves %s to Application Default Credentials (%s), which do not work on EKS with IRSA", name, file, creds)
		}
	}
}

// exportedMetrics are the metric names the analyzer registers, read from its registry.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names, err := analyzerMetricNames(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return names
}
