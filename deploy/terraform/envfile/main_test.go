package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	fixture, err := os.ReadFile("../testdata/output-eks.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "terraform")
	cases := []struct {
		args    []string
		in      string
		want    string
		wantErr string
	}{
		{[]string{"-format", "env", "-binary", "indexer"}, string(fixture), "IMGPIPE_SUBSCRIPTION=imgpipe-indexer\n", ""},
		{[]string{"-out", dir}, string(fixture), "runtime eks to " + dir, ""},
		{[]string{"-format", "env"}, string(fixture), "", "needs -binary"},
		{[]string{"-format", "env", "-binary", "indexer", "-out", dir}, string(fixture), "", "-out is for -format kustomize"},
		{[]string{"-binary", "indexer"}, string(fixture), "", "-binary is for -format env"},
		{[]string{"-format", "yaml"}, string(fixture), "", `unknown -format "yaml"`},
		{[]string{"-format", "env", "-binary", "indexer", "out.json"}, string(fixture), "", "standard input"},
		{[]string{"-format", "env", "-binary", "indexer"}, "[]", "", "not the JSON"},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		err := run(tc.args, strings.NewReader(tc.in), &out, &errOut)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: err %v, output lacks %q:\n%s", tc.args, err, tc.want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "kustomization.yaml")); err != nil {
		t.Errorf("-out %s: %v", dir, err)
	}
}
