// Package stacktest starts the local stack for a test package and shares it between the
// package's tests.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { stacktest.Main(m, localstack.SQS|localstack.S3) }
//
// and in each integration test:
//
//	st := stacktest.Get(t)              // skips (fails with CI=true) when the stack is missing
//	res := stacktest.Bootstrap(t, st, localstack.Resources{}) // fresh, uniquely named resources
//
// The stack is stopped when the package's tests end, whether they passed or not. If the test
// binary dies (a panic, a timeout), the stand-ins' processes die with it: they are started
// with a parent-death signal in their own process groups.
package stacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/localstack"
)

var (
	stack    *localstack.Stack
	startErr error
	started  bool
)

// InCI reports whether the tests run in CI (CI=true), where a missing stand-in is a failure.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// Main starts the requested parts of the stack, runs the package's tests, stops the stack and
// exits with the tests' status. With -short the stack is not started and integration tests skip.
func Main(m *testing.M, parts localstack.Part) {
	flag.Parse()
	if testing.Short() {
		startErr = fmt.Errorf("integration tests skipped in -short mode")
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		stack, startErr = localstack.Start(ctx, &localstack.Options{Parts: parts})
		cancel()
		started = true
		if startErr == nil {
			stack.SetEmulatorEnv()
		}
	}
	code := m.Run()
	if stack != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := stack.Close(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "stacktest: stop stack: %v\n", err)
		}
		cancel()
	}
	if startErr != nil && started && InCI() && code == 0 {
		// Every integration test already failed on Get; this catches a package whose tests
		// never called it.
		fmt.Fprintf(os.Stderr, "stacktest: stack did not start in CI: %v\n", startErr)
		code = 1
	}
	os.Exit(code)
}

// Get returns the package's running stack. When it could not start, the test is skipped with
// the reason, or failed when CI=true.
func Get(t testing.TB) *localstack.Stack {
	t.Helper()
	if stack == nil && startErr == nil {
		t.Fatal("stacktest.Get called without stacktest.Main in TestMain")
	}
	if startErr != nil {
		if InCI() && !testing.Short() {
			t.Fatalf("local stack unavailable in CI: %v", startErr)
		}
		t.Skipf("local stack unavailable: %v", startErr)
	}
	return stack
}

// Require is Get that also checks the stack runs the given parts.
func Require(t testing.TB, parts localstack.Part) *localstack.Stack {
	t.Helper()
	st := Get(t)
	if st.Parts&parts != parts {
		t.Fatalf("test needs stack parts %s; TestMain started %s", parts, st.Parts)
	}
	return st
}

// Unique returns a name that no other test of this run uses, built from prefix.
func Unique(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Bootstrap creates the pipeline's resources with unique names for this test (fields left
// empty in res are named uniquely; others are kept), so tests sharing a stack do not see each
// other's messages.
func Bootstrap(t testing.TB, st *localstack.Stack, res localstack.Resources) *localstack.Bootstrapped {
	t.Helper()
	id := Unique("t")
	name := func(v *string, base string) {
		if *v == "" {
			*v = base + "-" + id
		}
	}
	name(&res.Bucket, "images")
	name(&res.Queue, "events")
	name(&res.DLQ, "events-dlq")
	name(&res.Topic, "analyses")
	name(&res.Subscription, "analyses-sub")
	name(&res.DeadLetterTopic, "analyses-dl")
	name(&res.DeadLetterSubscription, "analyses-dl-sub")
	name(&res.Collection, "images")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := st.Bootstrap(ctx, res)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return b
}
