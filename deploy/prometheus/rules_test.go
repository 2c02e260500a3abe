// Package prometheus_test checks the shipped rules (imgpipe-rules.yml) with Prometheus's own
// tools: promtool checks them and runs their unit tests (imgpipe-rules.test.yml), and every
// expression is parsed with Prometheus's parser to list the metrics it reads (metrics.txt,
// which the end-to-end test in e2e/ compares with what the binaries export).
package prometheus_test

import (
	"flag"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"imgpipe/deploy/internal/promexpr"
)

var update = flag.Bool("update", false, "rewrite metrics.txt from the rules")

const (
	rulesFile = "imgpipe-rules.yml"
	testsFile = "imgpipe-rules.test.yml"
	listFile  = "metrics.txt"
)

type rule struct {
	Record      string            `json:"record"`
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

func readRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rules", rulesFile)
	}
	return out
}

// promtool returns the path of promtool (Debian package prometheus: make tools). Without it
// the test is skipped, or failed in CI (CI=true).
func promtool(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/promtool", "promtool"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "promtool not found: install the Debian package prometheus (make tools)"
	if v := strings.ToLower(os.Getenv("CI")); v == "true" || v == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestPromtoolCheckRules: promtool accepts the rules file.
func TestPromtoolCheckRules(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestPromtoolTestRules runs the rules' unit tests.
func TestPromtoolTestRules(t *testing.T) {
	out, err := exec.Command(promtool(t), "test", "rules", testsFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestEveryAlertUnitTested: each alert of the rules file has a unit test where it fires and
// one where it must not.
func TestEveryAlertUnitTested(t *testing.T) {
	b, err := os.ReadFile(testsFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		RuleFiles []string `json:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatalf("%s: %v", testsFile, err)
	}
	if !slices.Equal(tf.RuleFiles, []string{rulesFile}) {
		t.Errorf("%s tests %v, want [%s]", testsFile, tf.RuleFiles, rulesFile)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, r := range readRules(t) {
		if r.Alert == "" {
			continue
		}
		if !fires[r.Alert] {
			t.Errorf("alert %s has no unit test where it fires", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("alert %s has no unit test where it stays quiet", r.Alert)
		}
	}
}

// TestAlertsCarryRunbooks: every alert has a severity an alert router can act on and the
// annotations an operator reads: summary, description and runbook.
func TestAlertsCarryRunbooks(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range readRules(t) {
		if r.Alert == "" {
			continue
		}
		if seen[r.Alert] {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s has no %s annotation", r.Alert, a)
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no alerts")
	}
}

// TestRulesReadListedMetrics: every expression parses with Prometheus's parser; the names it
// reads are recording rules of this file or the binaries' metrics listed in metrics.txt, and
// metrics.txt lists exactly those (go test ./prometheus -update rewrites it).
func TestRulesReadListedMetrics(t *testing.T) {
	rules := readRules(t)
	recorded := map[string]bool{}
	for _, r := range rules {
		if r.Record != "" {
			recorded[r.Record] = true
		}
	}
	var used []string
	for _, r := range rules {
		names, err := promexpr.Metrics(r.Expr)
		if err != nil {
			t.Errorf("rule %s%s: %v", r.Record, r.Alert, err)
			continue
		}
		for _, n := range names {
			switch {
			case recorded[n]:
			case strings.Contains(n, ":"):
				t.Errorf("rule %s%s reads %s, a recording rule's name that this file does not define", r.Record, r.Alert, n)
			default:
				used = append(used, n)
			}
		}
	}
	if err := promexpr.CheckList(listFile, []string{
		"The binaries' metrics that imgpipe-rules.yml reads (go test ./prometheus -update).",
		"e2e/alerts_test.go checks that the analyzer and the indexer export each of them.",
	}, used, *update); err != nil {
		t.Error(err)
	}
}

const (
	wrapperFile   = "prometheusrule.yaml"
	wrapperHeader = "# The rules of imgpipe-rules.yml as a Prometheus Operator PrometheusRule, written by\n# `go test ./prometheus -update` (edit imgpipe-rules.yml, not this file).\n"
)

// TestPrometheusRuleWrapper: prometheusrule.yaml carries exactly the groups of
// imgpipe-rules.yml (go test ./prometheus -update rewrites it).
func TestPrometheusRuleWrapper(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "PrometheusRule",
		"metadata": map[string]any{
			"name":   "imgpipe",
			"labels": map[string]any{"app.kubernetes.io/name": "imgpipe", "app.kubernetes.io/component": "alerting"},
		},
		"spec": map[string]any{"groups": rules["groups"]},
	}
	if *update {
		out, err := yaml.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(wrapperFile, append([]byte(wrapperHeader), out...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err = os.ReadFile(wrapperFile)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", wrapperFile, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s is out of date with %s (go test ./prometheus -update)", wrapperFile, rulesFile)
	}
}
