package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/record"
)

func TestPrintDocs(t *testing.T) {
	docs := []indexstore.Document{{Analysis: record.Analysis{
		Bucket: "images", Key: "upload/a b.jpg", Size: 42, Width: 640, Height: 480, Caption: "a cat",
		Tags:       []record.Tag{{Name: "cat", Confidence: 0.912}, {Name: "sofa", Confidence: 0.5}},
		AnalyzedAt: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
	}}}
	var table bytes.Buffer
	if err := printDocs(&table, docs, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "BUCKET") {
		t.Fatalf("table:\n%s", table.String())
	}
	for _, want := range []string{"upload/a b.jpg", "640x480", "2026-11-22T10:00:00Z", "cat(0.91),sofa(0.50)", "a cat"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("table row lacks %q: %s", want, lines[1])
		}
	}
	var js bytes.Buffer
	if err := printDocs(&js, docs, true); err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, js.String())
	}
	if len(back) != 1 || back[0]["key"] != "upload/a b.jpg" || back[0]["indexedAt"] == nil {
		t.Fatalf("JSON output: %v", back)
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	t.Setenv("IMGPIPE_SUBSCRIPTION", "")
	tests := []struct {
		cmd  string
		args []string
		want string
	}{
		{"frobnicate", nil, "unknown command"},
		{"get", []string{"--project", "p", "only-bucket"}, "takes 2 arguments"},
		{"search", []string{"--project", "p"}, "takes 1 arguments"},
		{"search", []string{"--project", "p", "--limit", "0", "cat"}, "limit"},
		{"run", []string{"--project", "p", "--subscription", "s", "--batch-size", "0"}, "batch-size"},
		{"run", []string{"--project", "p"}, "subscription"},
		{"run", []string{"--project", "p", "--subscription", "s", "--ack-extension", "5s"}, "ack-extension"},
		{"run", []string{"--project", "p", "--subscription", "s", "--ack-extension", "11m"}, "ack-extension"},
		{"run", []string{"--project", "p", "--subscription", "s", "--retry-for", "-1s"}, "retry-for"},
	}
	for _, tt := range tests {
		err := run(tt.cmd, tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%s %v) = %v, want an error mentioning %q", tt.cmd, tt.args, err, tt.want)
		}
	}
}
