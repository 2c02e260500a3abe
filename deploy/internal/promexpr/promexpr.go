// Package promexpr reads PromQL as Prometheus does, with Prometheus's own parser (the release
// the deploy module's other requirements select; that the rules also load in the Debian
// package's Prometheus is checked by its promtool), and keeps the list of the binaries'
// metrics that the shipped rules and dashboard read.
package promexpr

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Metrics parses expr and returns the metric names its selectors read, sorted and without
// repeats. A selector that does not name its metric exactly (a regular expression on
// __name__, or no name) is an error: what it reads could not be checked.
func Metrics(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := ""
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" && bad == nil {
			bad = fmt.Errorf("%q: selector %s does not name its metric", expr, vs)
		}
		names = append(names, name)
		return nil
	})
	if bad != nil {
		return nil, bad
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// ReadList reads a metric list: one name a line, "#" starts a comment.
func ReadList(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			names = append(names, line)
		}
	}
	return names, sc.Err()
}

// WriteList writes names, sorted, under the header lines (each written as a comment).
func WriteList(path string, header []string, names []string) error {
	var b strings.Builder
	for _, h := range header {
		b.WriteString("# " + h + "\n")
	}
	names = slices.Clone(names)
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		b.WriteString(n + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// CheckList compares the names an artefact reads (used, in any order, repeats allowed) with
// the list at path, after rewriting the list from them when update is set (under header). It
// returns an error naming what differs.
func CheckList(path string, header []string, used []string, update bool) error {
	if update {
		if err := WriteList(path, header, used); err != nil {
			return err
		}
	}
	listed, err := ReadList(path)
	if err != nil {
		return err
	}
	used = slices.Clone(used)
	slices.Sort(used)
	missing, extra := Diff(slices.Compact(used), listed)
	if len(missing) > 0 || len(extra) > 0 {
		return fmt.Errorf("%s is out of date (rewrite it with -update): read but not listed %v; listed but not read %v", path, missing, extra)
	}
	return nil
}

// Diff returns the names only in want and only in got.
func Diff(want, got []string) (missing, extra []string) {
	for _, n := range want {
		if !slices.Contains(got, n) {
			missing = append(missing, n)
		}
	}
	for _, n := range got {
		if !slices.Contains(want, n) {
			extra = append(extra, n)
		}
	}
	return missing, extra
}
