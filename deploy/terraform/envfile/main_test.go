package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	fixture, err := os.ReadFile("../testdata/output-eks.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args    []string
		in      string
		want    string
		wantErr string
	}{
		{[]string{"-binary", "indexer"}, string(fixture), "IMGPIPE_SUBSCRIPTION=imgpipe-indexer\n", ""},
		{[]string{"-format", "configmap", "-namespace", "pipeline"}, string(fixture), "namespace: pipeline", ""},
		{nil, string(fixture), "", "needs -binary"},
		{[]string{"-format", "yaml"}, string(fixture), "", `unknown -format "yaml"`},
		{[]string{"-binary", "indexer", "out.json"}, string(fixture), "", "standard input"},
		{[]string{"-binary", "indexer"}, "[]", "", "not the JSON"},
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
}
