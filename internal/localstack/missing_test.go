package localstack_test

import (
	"context"
	"strings"
	"testing"

	"imgpipe/internal/localstack"
)

// A missing prerequisite stops Start with one line naming it and how to get it.
func TestMissingPrerequisiteIsNamed(t *testing.T) {
	tests := []struct {
		parts localstack.Part
		want  string
	}{
		{localstack.SQS, "missing prerequisite: node: install Node.js"},
		{localstack.PubSub, "missing prerequisite: java: install a Java"},
		{localstack.Firestore, "missing prerequisite: java: install a Java"},
	}
	for _, tt := range tests {
		t.Run(tt.parts.String(), func(t *testing.T) {
			t.Setenv("PATH", t.TempDir()) // nothing on PATH: no node, no java
			_, err := localstack.Start(context.Background(), &localstack.Options{Parts: tt.parts, LogDir: t.TempDir()})
			if err == nil {
				t.Fatal("Start succeeded without its prerequisites")
			}
			if !localstack.IsMissing(err) || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line starting %q", err, tt.want)
			}
		})
	}
	t.Run("fauxqs not installed", func(t *testing.T) {
		t.Setenv("LOCALSTACK_FAUXQS_DIR", t.TempDir())
		_, err := localstack.Start(context.Background(), &localstack.Options{Parts: localstack.SQS, LogDir: t.TempDir()})
		if !localstack.IsMissing(err) || !strings.Contains(err.Error(), "make deps") {
			t.Fatalf("error %v: want a missing-prerequisite error pointing at make deps", err)
		}
	})
}

func TestParseParts(t *testing.T) {
	p, err := localstack.ParseParts("sqs, s3,vision")
	if err != nil || p != localstack.SQS|localstack.S3|localstack.Vision || p.String() != "sqs,s3,vision" {
		t.Fatalf("ParseParts = %v (%s), %v", p, p, err)
	}
	if p, _ := localstack.ParseParts("all"); p != localstack.All {
		t.Fatalf("all = %v", p)
	}
	if _, err := localstack.ParseParts("sqs,dynamo"); err == nil || !strings.Contains(err.Error(), "dynamo") {
		t.Fatalf("unknown part: %v", err)
	}
}
