package proctest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Figure is one reported number and its unit.
type Figure struct {
	V    float64
	Unit string
}

// Fig is a Figure.
func Fig(v float64, unit string) Figure { return Figure{V: v, Unit: unit} }

// Report gives each figure to b.ReportMetric and, when BENCH_OUT names a file (a relative
// path is taken from the module root), appends one markdown table row for the scenario to it
// (with the table's header when the file is new or empty).
func (st *Stack) Report(b *testing.B, scenario string, n int, figures []Figure, note string) {
	b.Helper()
	for _, f := range figures {
		b.ReportMetric(f.V, f.Unit)
	}
	path := os.Getenv("BENCH_OUT")
	if path == "" {
		return
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(st.Root, path)
	}
	fi, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		b.Errorf("BENCH_OUT: %v", err)
		return
	}
	defer f.Close()
	var sb strings.Builder
	if statErr != nil || fi.Size() == 0 {
		sb.WriteString("| when (UTC) | scenario | N | figures | notes |\n|---|---|---|---|---|\n")
	}
	parts := make([]string, len(figures))
	for i, fg := range figures {
		num := fmt.Sprintf("%.4g", fg.V)
		if fg.V >= 10000 {
			num = fmt.Sprintf("%.0f", fg.V)
		}
		parts[i] = num + " " + fg.Unit
	}
	fmt.Fprintf(&sb, "| %s | %s | %d | %s | %s |\n", time.Now().UTC().Format("2006-01-02 15:04"), scenario, n,
		strings.Join(parts, ", "), strings.ReplaceAll(note, "|", "/"))
	if _, err := f.WriteString(sb.String()); err != nil {
		b.Errorf("BENCH_OUT: %v", err)
	}
}
