package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

// Every bad command line stops the binary with one error naming what is wrong, before it
// listens anywhere.
func TestBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: standins s3"},
		{[]string{"ftp"}, `unknown stand-in "ftp"`},
		{[]string{"s3", "-credential", "nosecret"}, `-credential "nosecret": want ACCESS_KEY_ID=SECRET`},
		{[]string{"s3", "-credential", "=s"}, "want ACCESS_KEY_ID=SECRET"},
		{[]string{"s3", "extra"}, `unexpected arguments ["extra"]`},
		{[]string{"s3", "-addr", "256.0.0.1:0"}, "listen on 256.0.0.1:0"},
		{[]string{"vision", "-faults", `{"badKey":true,"typo":1}`}, `-faults: json: unknown field "typo"`},
		{[]string{"vision", "-faults", `{"transient":{"rate":2}}`}, "vision stand-in faults: transient"},
		{[]string{"vision", "-manual-clock", "yesterday"}, "-manual-clock: parsing time"},
		{[]string{"vision", "-nope"}, "flag provided but not defined: -nope"},
	} {
		var stdout, stderr bytes.Buffer
		// An argument wrongly accepted starts serving: the timeout ends it, and the test fails.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := run(ctx, tc.args, &stdout, &stderr)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("standins %q: error %v, want one containing %q", tc.args, err, tc.want)
		}
		if strings.Contains(stdout.String(), "listening") {
			t.Errorf("standins %q listened: %s", tc.args, stdout.String())
		}
	}
}

// -h, -help and --help of a stand-in print its flags on stdout and exit 0, without listening;
// a bad flag still exits 2 with its message on stderr.
func TestSubcommandHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // a flag of that stand-in only
	}{
		{[]string{"s3", "-h"}, "-sqs-endpoint"},
		{[]string{"s3", "--help"}, "-sqs-endpoint"},
		{[]string{"vision", "-help"}, "-manual-clock"},
		{[]string{"vision", "-key", "k", "--help"}, "-manual-clock"},
	} {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := run(ctx, tc.args, &stdout, &stderr)
		cancel()
		if code := exitCode(err); code != 0 {
			t.Errorf("standins %q: exit %d (%v), want 0", tc.args, code, err)
		}
		if out := stdout.String(); !strings.Contains(out, "Usage of standins "+tc.args[0]) || !strings.Contains(out, tc.want) || strings.Contains(out, "listening") {
			t.Errorf("standins %q: stdout %q, want its usage naming %s", tc.args, out, tc.want)
		}
		if stderr.Len() != 0 {
			t.Errorf("standins %q: stderr %q, want nothing", tc.args, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"s3", "-nope"}, &stdout, &stderr)
	if code := exitCode(err); code != 2 || errors.Is(err, flag.ErrHelp) {
		t.Errorf("standins s3 -nope: exit %d (%v), want 2", code, err)
	}
	if !strings.Contains(stderr.String(), "-sqs-endpoint") || stdout.Len() != 0 {
		t.Errorf("standins s3 -nope: stdout %q, stderr %q; want the usage on stderr only", stdout.String(), stderr.String())
	}
	if code := exitCode(nil); code != 0 {
		t.Errorf("exitCode(nil) = %d, want 0", code)
	}
}
