package devstack_test

import (
	"context"
	"strings"
	"testing"

	"imgpipe/internal/devstack"
)

// A missing prerequisite stops Start with one line naming it and how to get it.
func TestMissingPrerequisiteIsNamed(t *testing.T) {
	tests := []struct {
		parts devstack.Part
		want  string
	}{
		{devstack.SQS, "missing prerequisite: node: install Node.js"},
		{devstack.PubSub, "missing prerequisite: java: install a Java"},
		{devstack.Firestore, "missing prerequisite: java: install a Java"},
	}
	for _, tt := range tests {
		t.Run(tt.parts.String(), func(t *testing.T) {
			t.Setenv("PATH", t.TempDir()) // nothing on PATH: no node, no java
			_, err := devstack.Start(context.Background(), &devstack.Options{Parts: tt.parts, LogDir: t.TempDir()})
			if err == nil {
				t.Fatal("Start succeeded without its prerequisites")
			}
			if !devstack.IsMissing(err) || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line starting %q", err, tt.want)
			}
		})
	}
	t.Run("stand-ins binary missing", func(t *testing.T) {
		t.Setenv("DEVSTACK_STANDINS", t.TempDir()+"/no-such-binary")
		_, err := devstack.StartVision(context.Background(), nil)
		if !devstack.IsMissing(err) || !strings.Contains(err.Error(), "DEVSTACK_STANDINS") {
			t.Fatalf("error %v: want a missing-prerequisite error naming DEVSTACK_STANDINS", err)
		}
	})
	t.Run("fauxqs not installed", func(t *testing.T) {
		t.Setenv("DEVSTACK_FAUXQS_DIR", t.TempDir())
		_, err := devstack.Start(context.Background(), &devstack.Options{Parts: devstack.SQS, LogDir: t.TempDir()})
		if !devstack.IsMissing(err) || !strings.Contains(err.Error(), "make deps") {
			t.Fatalf("error %v: want a missing-prerequisite error pointing at make deps", err)
		}
	})
}

func TestParseParts(t *testing.T) {
	p, err := devstack.ParseParts("sqs, s3,vision")
	if err != nil || p != devstack.SQS|devstack.S3|devstack.Vision || p.String() != "sqs,s3,vision" {
		t.Fatalf("ParseParts = %v (%s), %v", p, p, err)
	}
	if p, _ := devstack.ParseParts("all"); p != devstack.All {
		t.Fatalf("all = %v", p)
	}
	if _, err := devstack.ParseParts("sqs,dynamo"); err == nil || !strings.Contains(err.Error(), "dynamo") {
		t.Fatalf("unknown part: %v", err)
	}
}
