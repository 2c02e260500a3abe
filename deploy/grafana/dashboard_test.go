// Package grafana_test checks the shipped dashboard (imgpipe-pipeline.json): its layout is
// one Grafana can load, and every query parses with Prometheus's parser and reads only the
// binaries' metrics listed in metrics.txt (which e2e/alerts_test.go compares with what the
// analyzer and the indexer export).
package grafana_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"imgpipe/deploy/internal/promexpr"
)

var update = flag.Bool("update", false, "rewrite metrics.txt from the dashboard")

const (
	dashboardFile = "imgpipe-pipeline.json"
	listFile      = "metrics.txt"
	// schemaVersion is the last version of Grafana's classic dashboard JSON model (42, the
	// final one of the v1 dashboard API, read by Grafana 12 and 13).
	schemaVersion = 42
)

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// promDS is the dashboard's Prometheus data source: its datasource variable.
var promDS = datasource{"prometheus", "${datasource}"}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

type variable struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasource     `json:"datasource"`
}

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Panels        []panel
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// grafanaVar is a reference to a dashboard variable: $name, ${name} or ${name:format}.
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// expand replaces the dashboard's variables in a query by values Grafana could give them, so
// that Prometheus's parser sees what Prometheus would receive: the interval variables by
// durations, the dashboard's own variables by their "All" value. An unknown variable is an
// error.
func expand(expr string, vars map[string]bool) (string, error) {
	var bad []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		switch {
		case name == "__rate_interval" || name == "__interval" || name == "__range":
			return "5m"
		case vars[name]:
			return ".*"
		}
		bad = append(bad, m)
		return m
	})
	if len(bad) > 0 {
		return "", fmt.Errorf("unknown variables %v", bad)
	}
	return out, nil
}

// labelValues is a query variable's query: label_values(SELECTOR, LABEL).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// queries returns every PromQL query of the dashboard, named by where it is: panel targets and
// query variables.
func queries(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	out := map[string]string{}
	add := func(where, q string) {
		e, err := expand(q, vars)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		out[where] = e
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query: %v", v.Name, err)
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(SELECTOR, LABEL)", v.Name, q.Query)
			continue
		}
		add("variable "+v.Name, m[1])
	}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			add(fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr)
		}
	}
	return out
}

// TestDashboardLayout: the model is Grafana's current classic schema, panel IDs are unique,
// panels fit the 24-column grid, every panel queries the dashboard's Prometheus data source
// variable and has queries with distinct reference IDs.
func TestDashboardLayout(t *testing.T) {
	d := readDashboard(t)
	if d.SchemaVersion != schemaVersion {
		t.Errorf("schemaVersion %d, want %d", d.SchemaVersion, schemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both are needed to provision the dashboard", d.UID, d.Title)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Name == "datasource" && string(v.Query) == `"prometheus"` {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no datasource variable of type prometheus named datasource")
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" && (v.Datasource == nil || *v.Datasource != promDS) {
			t.Errorf("variable %s: datasource %+v, want the ${datasource} variable", v.Name, v.Datasource)
		}
	}
	ids := map[int]bool{}
	queried := 0
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] || p.ID <= 0 {
			t.Errorf("panel %q: id %d is not positive or not unique", p.Title, p.ID)
		}
		ids[p.ID] = true
		if g := p.GridPos; g.W < 1 || g.X < 0 || g.X+g.W > 24 || g.H < 1 || g.Y < 0 {
			t.Errorf("panel %d %q: gridPos %+v does not fit the 24-column grid", p.ID, p.Title, g)
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				t.Errorf("row %q has queries", p.Title)
			}
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Datasource == nil || *p.Datasource != promDS {
			t.Errorf("panel %d %q: datasource %+v, want the ${datasource} variable", p.ID, p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %d %q has no query", p.ID, p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %d %q: refId %q empty or repeated", p.ID, p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && *tg.Datasource != *p.Datasource {
				t.Errorf("panel %d %q target %s: datasource %+v differs from the panel's", p.ID, p.Title, tg.RefID, tg.Datasource)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %d %q target %s: empty expr", p.ID, p.Title, tg.RefID)
			}
		}
		queried++
	}
	if queried == 0 {
		t.Fatal("no panels")
	}
}

// TestDashboardReadsListedMetrics: every query parses with Prometheus's parser and reads only
// metrics listed in metrics.txt, which lists exactly those (go test ./grafana -update rewrites
// it). The dashboard reads the binaries' metrics directly, not recording rules, so that it
// works before the rules are loaded.
func TestDashboardReadsListedMetrics(t *testing.T) {
	qs := queries(t, readDashboard(t))
	var used []string
	for where, q := range qs {
		names, err := promexpr.Metrics(q)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %q reads no metric", where, q)
		}
		for _, n := range names {
			if strings.Contains(n, ":") {
				t.Errorf("%s reads the recording rule %s; read the binaries' metrics", where, n)
			}
		}
		used = append(used, names...)
	}
	if err := promexpr.CheckList(listFile, []string{
		"The binaries' metrics that imgpipe-pipeline.json reads (go test ./grafana -update).",
		"e2e/alerts_test.go checks that the analyzer and the indexer export each of them.",
	}, used, *update); err != nil {
		t.Error(err)
	}
}

// TestExpand: the variables a query may hold, and one it may not.
func TestExpand(t *testing.T) {
	vars := map[string]bool{"analyzer": true}
	got, err := expand(`rate(x{job=~"$analyzer"}[$__rate_interval]) + y{job=~"${analyzer:regex}"}`, vars)
	if err != nil || got != `rate(x{job=~".*"}[5m]) + y{job=~".*"}` {
		t.Errorf("expand: %q, %v", got, err)
	}
	if _, err := expand(`x{job="$cluster"}`, vars); err == nil {
		t.Error("an unknown variable was accepted")
	}
}
