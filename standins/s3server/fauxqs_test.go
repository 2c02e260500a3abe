package s3server_test

import (
	"testing"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
)

// The SQS stand-in for this package's tests comes from the shared harness; the S3 stand-in
// under test is started by each test itself.
func TestMain(m *testing.M) { stacktest.Main(m, devstack.SQS) }

// requireSQS returns the SQS stand-in's endpoint, or skips the test (fails it when CI=true).
func requireSQS(t *testing.T) string {
	t.Helper()
	return stacktest.Require(t, devstack.SQS).SQSEndpoint
}
