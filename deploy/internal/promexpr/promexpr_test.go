package promexpr

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
		bad  bool
	}{
		{`rate(a_total[5m]) / on (job) group_left b`, []string{"a_total", "b"}, false},
		{`histogram_quantile(0.9, sum by (le) (rate(h_bucket{job=~"x"}[1m])))`, []string{"h_bucket"}, false},
		{`max_over_time((x > 0)[5m:1m]) or vector(0)`, []string{"x"}, false},
		{`{__name__="c", job="j"} + c offset 1h`, []string{"c"}, false},
		{`job:rec:rate5m > 0.1`, []string{"job:rec:rate5m"}, false},
		{`1 + 2`, nil, false},
		{`{__name__=~"imgpipe_.+"}`, nil, true},
		{`{job="x"}`, nil, true},
		{`rate(a[5m]`, nil, true},
		{`sum(a) by`, nil, true},
	} {
		got, err := Metrics(tc.expr)
		if (err != nil) != tc.bad {
			t.Errorf("%s: error %v, want error %v", tc.expr, err, tc.bad)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.expr, got, tc.want)
		}
	}
}

func TestListRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.txt")
	if err := WriteList(path, []string{"what this is"}, []string{"b", "a", "b"}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadList(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("read back %v", got)
	}
	missing, extra := Diff([]string{"a", "c"}, got)
	if !slices.Equal(missing, []string{"c"}) || !slices.Equal(extra, []string{"b"}) {
		t.Errorf("Diff: missing %v extra %v", missing, extra)
	}
}

func TestCheckList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.txt")
	if err := CheckList(path, nil, []string{"b", "a", "a"}, true); err != nil {
		t.Fatalf("after an update: %v", err)
	}
	if err := CheckList(path, nil, []string{"a", "b"}, false); err != nil {
		t.Errorf("the same names: %v", err)
	}
	if err := CheckList(path, nil, []string{"a", "c"}, false); err == nil {
		t.Error("a list out of date passed")
	}
}
