package main

import (
	"bytes"
	"context"
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
