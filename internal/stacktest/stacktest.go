// Package stacktest starts the local stack for a test package and shares it between the
// package's tests.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { stacktest.Main(m, devstack.SQS|devstack.S3) }
//
// and in each integration test:
//
//	st := stacktest.Get(t)              // skips (fails with CI=true) when the stack is missing
//	res := stacktest.Bootstrap(t, st, devstack.Resources{}) // fresh, uniquely named resources
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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/internal/devstack"
	"imgpipe/pkg/failure"
)

var (
	stack    *devstack.Stack
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
// DEVSTACK_NO_FRONTS=1 starts it without the emulators' gRPC fronts (devstack.NoFronts).
// children are the programs the package's tests may start as processes of their own
// (StartChild); a test binary started as one runs it instead of the tests.
func Main(m *testing.M, parts devstack.Part, children ...Child) {
	runChild(children)
	flag.Parse()
	if testing.Short() {
		startErr = fmt.Errorf("integration tests skipped in -short mode")
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		stack, startErr = devstack.Start(ctx, &devstack.Options{Parts: parts, NoFronts: os.Getenv("DEVSTACK_NO_FRONTS") == "1"})
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
func Get(t testing.TB) *devstack.Stack {
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
func Require(t testing.TB, parts devstack.Part) *devstack.Stack {
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
func Bootstrap(t testing.TB, st *devstack.Stack, res devstack.Resources) *devstack.Bootstrapped {
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

// WaitFor polls cond every 100 ms until it reports true, or fails the test when timeout
// passes, quoting the last state cond described. The timeout bounds a test, it asserts no
// speed: pick it generously.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() (ok bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DeadLetter is one message taken off a dead-letter queue: its body and the failure its
// attributes describe.
type DeadLetter struct {
	Body       string
	Failure    failure.Details
	Attributes map[string]string // the message's string attributes
}

// DrainDLQ receives every message on the queue at url, deletes it, and returns them all. It
// stops at the first empty one-second receive.
func DrainDLQ(t testing.TB, client *sqs.Client, url string) []DeadLetter {
	t.Helper()
	ctx := context.Background()
	var out []DeadLetter
	for {
		resp, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatalf("receive from %s: %v", url, err)
		}
		if len(resp.Messages) == 0 {
			return out
		}
		for _, m := range resp.Messages {
			attrs := map[string]string{}
			for k, v := range m.MessageAttributes {
				attrs[k] = aws.ToString(v.StringValue)
			}
			out = append(out, DeadLetter{Body: aws.ToString(m.Body), Failure: failure.ParseDetails(attrs), Attributes: attrs})
			if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete from %s: %v", url, err)
			}
		}
	}
}
