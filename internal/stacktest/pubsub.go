package stacktest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	vkit "cloud.google.com/go/pubsub/v2/apiv1"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"imgpipe/internal/devstack"
)

// InterceptedSubscriptions returns a subscription admin client of the real SDK, connected to
// the stack's Pub/Sub emulator, whose calls pass through intercept before they go out (failure
// injection at the transport). It is closed when the test ends.
func InterceptedSubscriptions(t testing.TB, st *devstack.Stack, intercept grpc.UnaryClientInterceptor) *vkit.SubscriptionAdminClient {
	t.Helper()
	c, err := vkit.NewSubscriptionAdminClient(context.Background(),
		option.WithEndpoint(st.PubSubHost), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithGRPCDialOption(grpc.WithUnaryInterceptor(intercept)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ExpireFirstPull returns an interceptor that counts the Pulls going out in pulls and lets the
// first one run out of time on the client (a real DeadlineExceeded from gRPC): Pub/Sub's
// empty answer to a Pull while the subscription holds messages.
func ExpireFirstPull(pulls *atomic.Int32) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := req.(*pubsubpb.PullRequest); ok && pulls.Add(1) == 1 {
			expired, cancel := context.WithTimeout(ctx, time.Nanosecond)
			defer cancel()
			<-expired.Done()
			return invoker(expired, method, req, reply, cc, opts...)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}
