package devstack_test

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"

	"imgpipe/internal/visionstandin"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.All, subscriberChild) }

func TestEveryPartAnswersAndEnvIsComplete(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	env := map[string]string{}
	for _, e := range st.Env(b) {
		env[e.Name] = e.Value
	}
	for _, name := range []string{"AWS_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS", "PUBSUB_EMULATOR_HOST",
		"FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "AZURE_VISION_ENDPOINT", "AZURE_VISION_KEY",
		"IMGPIPE_BUCKET", "IMGPIPE_QUEUE_URL", "IMGPIPE_DLQ_URL", "IMGPIPE_TOPIC", "IMGPIPE_SUBSCRIPTION", "IMGPIPE_COLLECTION"} {
		if env[name] == "" {
			t.Errorf("env lacks %s", name)
		}
	}
	for name, v := range env {
		if strings.Contains(v, "://") && !strings.Contains(v, "127.0.0.1") {
			t.Errorf("%s=%s is not on loopback", name, v)
		}
	}
}

func TestBootstrapIsIdempotentAndConfiguresRedrive(t *testing.T) {
	st := stacktest.Get(t)
	ctx := context.Background()
	res := devstack.Resources{Bucket: stacktest.Unique("b"), Queue: stacktest.Unique("q"), DLQ: stacktest.Unique("dlq"),
		Topic: stacktest.Unique("t"), Subscription: stacktest.Unique("s"), DeadLetterTopic: stacktest.Unique("dt"),
		DeadLetterSubscription: stacktest.Unique("ds"), MaxReceiveCount: 2, VisibilityTimeout: time.Second}
	first, err := st.Bootstrap(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	second, err := st.Bootstrap(ctx, res)
	if err != nil {
		t.Fatalf("second bootstrap: %v", err)
	}
	if first.QueueURL != second.QueueURL || first.DLQURL != second.DLQURL {
		t.Fatalf("second bootstrap changed URLs: %+v vs %+v", first, second)
	}

	// SQS redrive: a message received MaxReceiveCount times without a delete lands in the DLQ.
	client := st.NewSQSClient()
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &first.QueueURL, MessageBody: aws.String("poison")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &first.DLQURL, WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 1 && aws.ToString(out.Messages[0].Body) == "poison" {
			return
		}
		// Receive (and abandon) from the source to burn receive counts.
		if _, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &first.QueueURL, WaitTimeSeconds: 1, VisibilityTimeout: 1}); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("message never reached the DLQ")
}

func TestPubSubDeadLettersAfterMaxAttempts(t *testing.T) {
	st := stacktest.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	client, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sub := getSubscription(t, client, b.SubscriptionName)
	// No retry policy by default: the emulator loses messages in that path (README).
	if sub.GetDeadLetterPolicy().GetMaxDeliveryAttempts() != 5 || sub.GetRetryPolicy() != nil {
		t.Fatalf("subscription not configured (want a dead-letter policy of 5 attempts and no retry policy): %v", sub)
	}
	pub := client.Publisher(b.TopicName)
	defer pub.Stop()
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte("never acked")}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	// Nack every delivery on the source subscription until the message shows up dead-lettered.
	srcCtx, stopSrc := context.WithCancel(ctx)
	attempts := 0
	go func() {
		_ = client.Subscriber(b.SubscriptionName).Receive(srcCtx, func(_ context.Context, m *pubsub.Message) {
			attempts++
			m.Nack()
		})
	}()
	got := make(chan *pubsub.Message, 1)
	dlCtx, stopDL := context.WithCancel(ctx)
	go func() {
		_ = client.Subscriber(b.DeadLetterSubscriptionName).Receive(dlCtx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			select {
			case got <- m:
			default:
			}
		})
	}()
	select {
	case m := <-got:
		stopSrc()
		stopDL()
		if string(m.Data) != "never acked" || m.Attributes["CloudPubSubDeadLetterSourceDeliveryCount"] != "5" {
			t.Fatalf("dead letter %q with attributes %v", m.Data, m.Attributes)
		}
	case <-ctx.Done():
		stopSrc()
		stopDL()
		t.Fatalf("no dead letter after %d deliveries", attempts)
	}
}

// TestPubSubRetryPolicyOnRequest: with Resources.RetryPolicy the subscription gets the given
// backoff; a backoff without it is refused before anything is created.
func TestPubSubRetryPolicyOnRequest(t *testing.T) {
	st := stacktest.Get(t)
	ctx := context.Background()
	b := stacktest.Bootstrap(t, st, devstack.Resources{RetryPolicy: true, MinBackoff: 2 * time.Second, MaxBackoff: 7 * time.Second})
	client, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sub := getSubscription(t, client, b.SubscriptionName)
	rp := sub.GetRetryPolicy()
	if rp.GetMinimumBackoff().AsDuration() != 2*time.Second || rp.GetMaximumBackoff().AsDuration() != 7*time.Second || sub.GetDeadLetterPolicy() == nil {
		t.Fatalf("subscription not configured (want retry policy 2s-7s and a dead-letter policy): %v", sub)
	}
	for _, res := range []devstack.Resources{{MinBackoff: time.Second}, {MaxBackoff: time.Second}} {
		if _, err := st.Bootstrap(ctx, res); err == nil || !strings.Contains(err.Error(), "without RetryPolicy") {
			t.Errorf("Bootstrap(%+v) = %v, want the backoff refused without RetryPolicy", res, err)
		}
	}
}

// TestBootstrapTakesItsOwnDefaultsAndResult: DefaultResources, and what Bootstrap answered,
// bootstrap again without error (the defaults carry no backoff without RetryPolicy).
func TestBootstrapTakesItsOwnDefaultsAndResult(t *testing.T) {
	st := stacktest.Get(t)
	ctx := context.Background()
	res := devstack.DefaultResources()
	id := stacktest.Unique("d")
	res.Bucket, res.Queue, res.DLQ = "images-"+id, "events-"+id, "events-dlq-"+id
	res.Topic, res.Subscription = "analyses-"+id, "analyses-sub-"+id
	res.DeadLetterTopic, res.DeadLetterSubscription = "analyses-dl-"+id, "analyses-dl-sub-"+id
	b, err := st.Bootstrap(ctx, res)
	if err != nil {
		t.Fatalf("Bootstrap(DefaultResources()) = %v", err)
	}
	if _, err := st.Bootstrap(ctx, b.Resources); err != nil {
		t.Fatalf("Bootstrap of what Bootstrap answered = %v", err)
	}
	with := res
	with.RetryPolicy = true
	if r, err := st.Bootstrap(ctx, with); err != nil || r.MinBackoff != time.Second || r.MaxBackoff != time.Minute {
		t.Fatalf("Bootstrap with RetryPolicy = %v, backoff %s-%s; want 1s-1m0s", err, r.MinBackoff, r.MaxBackoff)
	}
}

func getSubscription(t *testing.T, client *pubsub.Client, name string) *pubsubpb.Subscription {
	t.Helper()
	sub, err := client.SubscriptionAdminClient.GetSubscription(context.Background(), &pubsubpb.GetSubscriptionRequest{Subscription: name})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestFirestoreWriteRead(t *testing.T) {
	st := stacktest.Get(t)
	ctx := context.Background()
	client, err := firestore.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ref := client.Collection(stacktest.Unique("c")).Doc("d")
	if _, err := ref.Set(ctx, map[string]any{"n": 7}); err != nil {
		t.Fatal(err)
	}
	snap, err := ref.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Data()["n"] != int64(7) {
		t.Fatalf("read back %v", snap.Data())
	}
}

func TestS3AndVisionAnswer(t *testing.T) {
	st := stacktest.Get(t)
	ctx := context.Background()
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	if _, err := st.NewS3Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b.Bucket}); err != nil {
		t.Fatalf("bucket: %v", err)
	}
	if st.VisionServer == nil || !strings.HasPrefix(st.VisionEndpoint, "http://127.0.0.1:") {
		t.Fatalf("vision stand-in not running: %q", st.VisionEndpoint)
	}
	// Both are child processes driven through their admin endpoints: the bucket's test event
	// was counted by the S3 stand-in, and the Vision stand-in takes and reports faults.
	if s3 := st.S3Server.Stats(); s3.TestEvents == 0 {
		t.Errorf("S3 stand-in stats %+v: want the bucket's test event sent", s3)
	}
	if err := st.VisionServer.SetFaults(visionstandin.Faults{BadKey: true}); err != nil {
		t.Fatal(err)
	}
	if f := st.VisionServer.Faults(); !f.BadKey {
		t.Errorf("faults read back %+v, want BadKey", f)
	}
	if err := st.VisionServer.SetFaults(visionstandin.Faults{}); err != nil {
		t.Fatal(err)
	}
	if err := st.VisionServer.SetFaults(visionstandin.Faults{Transient: visionstandin.Transient{Rate: 2}}); err == nil {
		t.Error("the stand-in took a transient rate of 2")
	}
}

// TestStopLeavesNothing starts a second stack and checks that Close ends every process of it,
// the Java children included.
func TestStopLeavesNothing(t *testing.T) {
	stacktest.Get(t) // the same prerequisites as the shared stack
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := devstack.Start(ctx, &devstack.Options{Parts: devstack.All, NoFronts: true})
	if err != nil {
		t.Fatal(err)
	}
	pids := st.PIDs()
	if len(pids) != 5 {
		t.Fatalf("want 5 child processes (fauxqs, two emulators, the S3 and Vision stand-ins), got %v", pids)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, pid := range pids {
		// The group leader and every member of its group must be gone.
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			out, _ := exec.Command("ps", "-o", "pid,pgid,cmd", "-g", strconv.Itoa(pid)).CombinedOutput()
			t.Errorf("process group %d still alive (%v):\n%s", pid, err, out)
		}
	}
}
