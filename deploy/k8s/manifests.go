// Package k8s holds imgpipe's Kubernetes manifests (a kustomize base and the overlays for
// EKS, GKE and AKS, each with the component make tf-env writes from the Terraform's outputs)
// and builds and decodes them for the tests: kustomize runs as
// a library, and every object it produces is decoded strictly (an unknown or duplicate field
// is an error) into Kubernetes', KEDA's or the Prometheus Operator's own Go types.
package k8s

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Dir is the folder of the manifests: base/ and overlays/ (each with its terraform/ component).
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Overlays are the deployable builds, by name (a folder under overlays/).
var Overlays = []string{"eks", "gke", "aks"}

// Set is what one kustomize build produced, decoded, by kind and name.
type Set struct {
	Namespaces              map[string]*corev1.Namespace
	ServiceAccounts         map[string]*corev1.ServiceAccount
	ConfigMaps              map[string]*corev1.ConfigMap
	Services                map[string]*corev1.Service
	Deployments             map[string]*appsv1.Deployment
	PodDisruptionBudgets    map[string]*policyv1.PodDisruptionBudget
	NetworkPolicies         map[string]*networkingv1.NetworkPolicy
	PodMonitors             map[string]*monitoringv1.PodMonitor
	ScaledObjects           map[string]*kedav1alpha1.ScaledObject
	TriggerAuthentications  map[string]*kedav1alpha1.TriggerAuthentication
	configMapsByGeneratedAs map[string]string // name before the hash suffix -> generated name
}

// Build runs kustomize on dir (a folder holding a kustomization.yaml) and decodes the result.
func Build(dir string) (*Set, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	s, err := Decode(out)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	// Generated ConfigMaps carry a content hash after their name (kustomize's ten characters
	// after a dash); keep the way back.
	for name := range s.ConfigMaps {
		if i := strings.LastIndex(name, "-"); i > 0 && len(name)-i-1 == hashLength {
			s.configMapsByGeneratedAs[name[:i]] = name
		}
	}
	return s, nil
}

// hashLength is the length of the content hash kustomize appends to a generated name.
const hashLength = 10

// ConfigMap returns the ConfigMap a manifest names name (before kustomize added its hash).
func (s *Set) ConfigMap(name string) *corev1.ConfigMap {
	if g, ok := s.configMapsByGeneratedAs[name]; ok {
		name = g
	}
	return s.ConfigMaps[name]
}

// Decode splits a multi-document YAML stream and decodes each document strictly into the Go
// type of its apiVersion and kind. A kind this package does not expect is an error.
func Decode(stream []byte) (*Set, error) {
	s := &Set{
		Namespaces: map[string]*corev1.Namespace{}, ServiceAccounts: map[string]*corev1.ServiceAccount{},
		ConfigMaps: map[string]*corev1.ConfigMap{}, Services: map[string]*corev1.Service{}, Deployments: map[string]*appsv1.Deployment{},
		PodDisruptionBudgets: map[string]*policyv1.PodDisruptionBudget{},
		NetworkPolicies:      map[string]*networkingv1.NetworkPolicy{}, PodMonitors: map[string]*monitoringv1.PodMonitor{},
		ScaledObjects: map[string]*kedav1alpha1.ScaledObject{}, TriggerAuthentications: map[string]*kedav1alpha1.TriggerAuthentication{},
		configMapsByGeneratedAs: map[string]string{},
	}
	docs, err := SplitYAML(stream)
	if err != nil {
		return nil, err
	}
	for i, doc := range docs {
		obj, err := DecodeObject(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if err := s.add(obj); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
	}
	return s, nil
}

// SplitYAML returns the non-empty documents of a YAML stream.
func SplitYAML(stream []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("split YAML: %w", err)
		}
		var content any
		if err := yaml.Unmarshal(doc, &content); err != nil {
			return nil, fmt.Errorf("split YAML: %w", err)
		}
		if content != nil { // not only comments
			docs = append(docs, doc)
		}
	}
}

// Object is a decoded manifest: one of the API types Decode knows.
type Object interface {
	GetName() string
}

// kinds are the API types Decode knows, by "apiVersion kind": how to make an empty one and
// where a Set keeps it.
var kinds = map[string]struct {
	make func() Object
	put  func(*Set, Object) error
}{
	"v1 Namespace":                           {func() Object { return &corev1.Namespace{} }, func(s *Set, o Object) error { return putOnce(s.Namespaces, o) }},
	"v1 ServiceAccount":                      {func() Object { return &corev1.ServiceAccount{} }, func(s *Set, o Object) error { return putOnce(s.ServiceAccounts, o) }},
	"v1 ConfigMap":                           {func() Object { return &corev1.ConfigMap{} }, func(s *Set, o Object) error { return putOnce(s.ConfigMaps, o) }},
	"v1 Service":                             {func() Object { return &corev1.Service{} }, func(s *Set, o Object) error { return putOnce(s.Services, o) }},
	"apps/v1 Deployment":                     {func() Object { return &appsv1.Deployment{} }, func(s *Set, o Object) error { return putOnce(s.Deployments, o) }},
	"policy/v1 PodDisruptionBudget":          {func() Object { return &policyv1.PodDisruptionBudget{} }, func(s *Set, o Object) error { return putOnce(s.PodDisruptionBudgets, o) }},
	"networking.k8s.io/v1 NetworkPolicy":     {func() Object { return &networkingv1.NetworkPolicy{} }, func(s *Set, o Object) error { return putOnce(s.NetworkPolicies, o) }},
	"monitoring.coreos.com/v1 PodMonitor":    {func() Object { return &monitoringv1.PodMonitor{} }, func(s *Set, o Object) error { return putOnce(s.PodMonitors, o) }},
	"keda.sh/v1alpha1 ScaledObject":          {func() Object { return &kedav1alpha1.ScaledObject{} }, func(s *Set, o Object) error { return putOnce(s.ScaledObjects, o) }},
	"keda.sh/v1alpha1 TriggerAuthentication": {func() Object { return &kedav1alpha1.TriggerAuthentication{} }, func(s *Set, o Object) error { return putOnce(s.TriggerAuthentications, o) }},
}

// DecodeObject decodes one YAML document strictly into the Go type of its apiVersion and kind.
func DecodeObject(doc []byte) (Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, fmt.Errorf("read kind: %w", err)
	}
	k, ok := kinds[tm.APIVersion+" "+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("unexpected kind %q of apiVersion %q", tm.Kind, tm.APIVersion)
	}
	obj := k.make()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

// add files obj under its kind, which DecodeObject has checked.
func (s *Set) add(obj Object) error {
	for _, k := range kinds {
		if err := k.put(s, obj); err != errWrongKind {
			return err
		}
	}
	return fmt.Errorf("unexpected %T", obj)
}

var errWrongKind = errors.New("wrong kind")

func putOnce[T Object](m map[string]T, v Object) error {
	o, ok := v.(T)
	if !ok {
		return errWrongKind
	}
	name := o.GetName()
	if name == "" {
		return fmt.Errorf("%T without a name", v)
	}
	if _, dup := m[name]; dup {
		return fmt.Errorf("two objects of one kind named %q", name)
	}
	m[name] = o
	return nil
}

// Names returns the keys of m, sorted.
func Names[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
