package k8s

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/auth/credentials"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"

	"imgpipe/deploy/internal/settings"
	"imgpipe/pkg/analyzer"
)

const (
	analyzerName = "imgpipe-analyzer"
	indexerName  = "imgpipe-indexer"
	// visionSecret is created by the operator, outside kustomize (docs/deploy.md).
	visionSecret = "imgpipe-vision"
)

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
}

func TestOverlays(t *testing.T) {
	for _, o := range Overlays {
		t.Run(o, func(t *testing.T) {
			s, err := Build(filepath.Join(Dir(), "overlays", o))
			if err != nil {
				t.Fatal(err)
			}
			checkCommon(t, s)
			checkAWSIdentity(t, s, o)
			checkGoogleIdentity(t, s, o)
		})
	}
}

// checkCommon holds for the base and every overlay.
func checkCommon(t *testing.T, s *Set) {
	t.Helper()
	for _, want := range []string{analyzerName, indexerName} {
		if s.Deployments[want] == nil {
			t.Fatalf("no Deployment %s (have %v)", want, Names(s.Deployments))
		}
	}
	for _, d := range s.Deployments {
		checkDeployment(t, s, d)
	}
	checkAnalyzerShutdown(t, s)
	checkVisionKey(t, s)
	checkPDBs(t, s)
	checkNetworkPolicies(t, s)
	checkPodMonitors(t, s)
	checkKEDA(t, s)
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

func checkDeployment(t *testing.T, s *Set, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("%s: selector %v does not match its pod labels %v", d.Name, d.Spec.Selector, pod.Labels)
	}
	if d.Spec.Replicas != nil {
		t.Errorf("%s: spec.replicas is set; KEDA owns the replica count", d.Name)
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
	if !strings.HasPrefix(c.Image, "imgpipe/") && !strings.Contains(c.Image, "/imgpipe/") {
		t.Errorf("%s: image %q is not one of imgpipe's", d.Name, c.Image)
	}

	e := env(t, s, c)
	binary := strings.TrimPrefix(d.Name, "imgpipe-")
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

	// The probes and the scrape all use the port the binary listens on.
	_, port, err := net.SplitHostPort(e["IMGPIPE_METRICS_ADDR"])
	if err != nil {
		t.Fatalf("%s: IMGPIPE_METRICS_ADDR %q: %v", d.Name, e["IMGPIPE_METRICS_ADDR"], err)
	}
	var metricsPort *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == "metrics" {
			metricsPort = &c.Ports[i]
		}
	}
	if metricsPort == nil || strconv.Itoa(int(metricsPort.ContainerPort)) != port {
		t.Fatalf("%s: no port named metrics at %s (IMGPIPE_METRICS_ADDR): %+v", d.Name, port, c.Ports)
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
		if p.HTTPGet.Path != want.path || p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s: %s probe on %s port %s, want %s on the metrics port", d.Name, name, p.HTTPGet.Path, p.HTTPGet.Port.String(), want.path)
		}
	}

	// Every mount has its volume, and every volume's ConfigMap is in the build.
	vols := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		vols[v.Name] = v
		if v.ConfigMap != nil && s.ConfigMaps[v.ConfigMap.Name] == nil {
			t.Errorf("%s: volume %s names ConfigMap %s, which the build does not have", d.Name, v.Name, v.ConfigMap.Name)
		}
		if v.Secret != nil && v.Secret.SecretName != visionSecret {
			t.Errorf("%s: volume %s names Secret %s; only %s is expected", d.Name, v.Name, v.Secret.SecretName, visionSecret)
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
}

// checkAnalyzerShutdown: the grace period is longer than the analyzer's worst case from
// SIGTERM to exit, computed with the settings its ConfigMaps give it.
func checkAnalyzerShutdown(t *testing.T, s *Set) {
	t.Helper()
	d := s.Deployments[analyzerName]
	e := env(t, s, container(t, d))
	opts := &analyzer.Options{}
	for key, field := range map[string]*time.Duration{"IMGPIPE_WAIT_TIME": &opts.WaitTime, "IMGPIPE_DRAIN_TIMEOUT": &opts.DrainTimeout} {
		v, ok := e[key]
		if !ok {
			t.Fatalf("%s: %s not set; the grace period is computed from it", d.Name, key)
		}
		dur, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %s=%q: %v", d.Name, key, v, err)
		}
		*field = dur
	}
	if opts.WaitTime == 0 {
		opts.WaitTime = -1 // the binary's 0 means no long poll
	}
	bound := analyzer.ShutdownBound(opts)
	grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= bound {
		t.Errorf("%s: terminationGracePeriodSeconds %s is not longer than the worst-case shutdown %s (wait %s, drain %s)",
			d.Name, grace, bound, opts.WaitTime, opts.DrainTimeout)
	}
}

// checkVisionKey: AZURE_VISION_KEY_FILE is the file the Secret's key is mounted as.
func checkVisionKey(t *testing.T, s *Set) {
	t.Helper()
	d := s.Deployments[analyzerName]
	c := container(t, d)
	file := env(t, s, c)["AZURE_VISION_KEY_FILE"]
	if file == "" {
		t.Fatalf("%s: AZURE_VISION_KEY_FILE not set", d.Name)
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret == nil || v.Secret.SecretName != visionSecret {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name != v.Name {
				continue
			}
			for _, it := range v.Secret.Items {
				if path.Join(m.MountPath, it.Path) == file {
					if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
						t.Errorf("%s: the Vision key is readable by others (mode %o)", d.Name, *v.Secret.DefaultMode)
					}
					return
				}
			}
		}
	}
	t.Errorf("%s: AZURE_VISION_KEY_FILE %s is not where Secret %s is mounted", d.Name, file, visionSecret)
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
	for _, d := range s.Deployments {
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
					t.Errorf("%s: egress to port %s, which neither binary needs", d.Name, p.Port.String())
				}
			}
		}
		if !https {
			t.Errorf("%s: no HTTPS egress to the clouds", d.Name)
		}
		if len(ingress) == 0 {
			t.Errorf("%s: nothing may scrape its metrics", d.Name)
		}
		for _, r := range ingress {
			if len(r.Ports) != 1 || r.Ports[0].Port.String() != "metrics" || len(r.From) == 0 {
				t.Errorf("%s: ingress other than from Prometheus to the metrics port: %+v", d.Name, r)
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

func checkPodMonitors(t *testing.T, s *Set) {
	t.Helper()
	if len(s.PodMonitors) == 0 {
		t.Fatal("no PodMonitor")
	}
	for _, d := range s.Deployments {
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
		if !scraped {
			t.Errorf("%s: no PodMonitor selects its pods", d.Name)
		}
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
	if v := md["queueURLFromEnv"]; v == "" || e[v] == "" {
		t.Errorf("queueURLFromEnv %q is not a variable of the analyzer container", v)
	}
	if md["awsRegion"] != e["AWS_REGION"] {
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
	if ta == nil || ta.Spec.PodIdentity == nil || ta.Spec.PodIdentity.Provider != kedav1alpha1.PodIdentityProviderAws || !ta.Spec.PodIdentity.IsWorkloadIdentityOwner() {
		t.Errorf("the SQS trigger must authenticate by the analyzer's own AWS identity (podIdentity aws, identityOwner workload)")
	}
}

func checkIndexerTriggers(t *testing.T, s *Set) {
	t.Helper()
	so := s.ScaledObjects[indexerName]
	if len(so.Spec.Triggers) == 0 {
		t.Fatal("the indexer's ScaledObject has no trigger")
	}
	names := exportedMetrics(t)
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
	}
}

// checkAWSIdentity: how the analyzer reaches AWS on each cloud, and that KEDA finds the same
// role.
func checkAWSIdentity(t *testing.T, s *Set, overlay string) {
	t.Helper()
	sa := s.ServiceAccounts[analyzerName]
	role := sa.Annotations[kedav1alpha1.PodIdentityAnnotationEKS]
	if !strings.HasPrefix(role, "arn:aws:iam::") {
		t.Fatalf("analyzer ServiceAccount: annotation %s = %q, want the analyzer's role (KEDA reads it)", kedav1alpha1.PodIdentityAnnotationEKS, role)
	}
	d := s.Deployments[analyzerName]
	c := container(t, d)
	e := env(t, s, c)
	if overlay == "eks" {
		// The pod identity webhook injects the role and the token from the annotation.
		if e["AWS_ROLE_ARN"] != "" || e["AWS_WEB_IDENTITY_TOKEN_FILE"] != "" {
			t.Errorf("on EKS the webhook sets AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE; the manifests must not")
		}
		return
	}
	if e["AWS_ROLE_ARN"] != role {
		t.Errorf("AWS_ROLE_ARN %q differs from the ServiceAccount's role %q that KEDA uses", e["AWS_ROLE_ARN"], role)
	}
	checkProjectedToken(t, d, e["AWS_WEB_IDENTITY_TOKEN_FILE"], "sts.amazonaws.com")
}

// checkProjectedToken: file is a projected service-account token with the audience.
func checkProjectedToken(t *testing.T, d *appsv1.Deployment, file, audience string) {
	t.Helper()
	c := container(t, d)
	for _, m := range c.VolumeMounts {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if tok := src.ServiceAccountToken; tok != nil && path.Join(m.MountPath, tok.Path) == file {
					if tok.Audience != audience {
						t.Errorf("%s: token %s has audience %q, want %q", d.Name, file, tok.Audience, audience)
					}
					return
				}
			}
		}
	}
	t.Errorf("%s: %q is not a projected service-account token of the pod", d.Name, file)
}

// checkGoogleIdentity: GKE Workload Identity on GKE; elsewhere a federation credential file,
// read by Google's own auth library, whose token source is a projected token of the pod.
func checkGoogleIdentity(t *testing.T, s *Set, overlay string) {
	t.Helper()
	for _, name := range []string{analyzerName, indexerName} {
		d := s.Deployments[name]
		e := env(t, s, container(t, d))
		gsa := s.ServiceAccounts[name].Annotations["iam.gke.io/gcp-service-account"]
		if overlay == "gke" {
			if !strings.HasSuffix(gsa, ".iam.gserviceaccount.com") || e["GOOGLE_APPLICATION_CREDENTIALS"] != "" {
				t.Errorf("%s on GKE: want a Google service account annotation and no credential file (got %q, %q)", name, gsa, e["GOOGLE_APPLICATION_CREDENTIALS"])
			}
			continue
		}
		file := e["GOOGLE_APPLICATION_CREDENTIALS"]
		raw := mountedConfigMapFile(t, s, d, file)
		var cfg struct {
			Type             string `json:"type"`
			Audience         string `json:"audience"`
			CredentialSource struct {
				File string `json:"file"`
			} `json:"credential_source"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatalf("%s: %s: %v", name, file, err)
		}
		if cfg.Type != "external_account" || !strings.HasPrefix(cfg.Audience, "//iam.googleapis.com/") {
			t.Errorf("%s: %s is not a workload identity federation file: %+v", name, file, cfg)
		}
		// Google's library accepts the file (it fetches nothing until a token is needed).
		if _, err := credentials.DetectDefault(&credentials.DetectOptions{
			CredentialsJSON: raw, Scopes: []string{"https://www.googleapis.com/auth/cloud-platform"},
		}); err != nil {
			t.Errorf("%s: Google's auth library rejects %s: %v", name, file, err)
		}
		checkProjectedToken(t, d, cfg.CredentialSource.File, "https:"+cfg.Audience)
	}
}

// mountedConfigMapFile returns the content of file as the pod sees it through a ConfigMap
// volume.
func mountedConfigMapFile(t *testing.T, s *Set, d *appsv1.Deployment, file string) []byte {
	t.Helper()
	c := container(t, d)
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(file, m.MountPath+"/") {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				if cm := s.ConfigMaps[v.ConfigMap.Name]; cm != nil {
					if data, ok := cm.Data[strings.TrimPrefix(file, m.MountPath+"/")]; ok {
						return []byte(data)
					}
				}
			}
		}
	}
	t.Fatalf("%s: %q is not a file of a mounted ConfigMap", d.Name, file)
	return nil
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
