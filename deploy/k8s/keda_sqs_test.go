package k8s

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/kedacore/keda/v2/pkg/scalers"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
	v2 "k8s.io/api/autoscaling/v2"

	"imgpipe/deploy/internal/iam"
	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
)

func TestMain(m *testing.M) {
	// The stack finds fauxqs from the module root, which here is deploy/: point it at the
	// product's pinned install.
	if os.Getenv("DEVSTACK_FAUXQS_DIR") == "" {
		os.Setenv("DEVSTACK_FAUXQS_DIR", filepath.Join(Dir(), "..", "..", "devstack", "fauxqs"))
	}
	stacktest.Main(m, devstack.SQS)
}

// KEDA's own aws-sqs-queue scaler, configured from each overlay's ScaledObject and
// TriggerAuthentication, reads a known backlog from the SQS stand-in: the metric it reports
// and the replica count the HPA derives from it. The SQS calls it makes are recorded: they
// must be iam.KEDA, what KEDA's role in deploy/terraform is granted.
func TestKEDAScalesTheAnalyzerOnTheQueue(t *testing.T) {
	st := stacktest.Require(t, devstack.SQS)
	client := st.NewSQSClient()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// KEDA's operator authenticates with its own credentials here (the environment's): the
	// role it would assume (the TriggerAuthentication's roleArn, checked by TestOverlays and
	// deploy/terraform's names test) needs AWS STS, which no stand-in offers.
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	rec := recordSQS(t, st.SQSEndpoint)

	for _, overlay := range Overlays {
		t.Run(overlay, func(t *testing.T) {
			s, err := Build(filepath.Join(Dir(), "overlays", overlay))
			if err != nil {
				t.Fatal(err)
			}
			so := s.ScaledObjects[analyzerName]
			res := stacktest.Bootstrap(t, st, devstack.Resources{})
			scaler, target := newSQSScaler(ctx, t, s, so, res.QueueURL, rec.URL)
			defer scaler.Close(ctx)
			if target != 160 {
				t.Errorf("target per replica %g, want 160 (IMGPIPE_WORKERS x IMGPIPE_TARGET_BACKLOG_PER_WORKER)", target)
			}

			check := func(what string, wantMetric float64, wantActive bool, wantReplicas int) {
				t.Helper()
				metric, active := sqsMetric(ctx, t, scaler)
				if metric != wantMetric || active != wantActive {
					t.Fatalf("%s: metric %g active %v, want %g active %v", what, metric, active, wantMetric, wantActive)
				}
				if got := replicas(metric, target, active, so); got != wantReplicas {
					t.Errorf("%s: %d replicas, want %d", what, got, wantReplicas)
				}
			}
			// An empty queue: nothing to do, and the analyzer scales to zero.
			check("empty queue", 0, false, 0)
			// 230 visible + 70 in flight (received, not deleted) + 20 delayed, left out:
			// ceil(300 / 160) = 2.
			send(ctx, t, client, res.QueueURL, 300, 0)
			receive(ctx, t, client, res.QueueURL, 70)
			send(ctx, t, client, res.QueueURL, 20, 900)
			check("230 visible, 70 in flight, 20 delayed", 300, true, 2)
			// 500 more: ceil(800 / 160) = 5, capped at maxReplicaCount 4.
			send(ctx, t, client, res.QueueURL, 500, 0)
			check("800 visible or in flight", 800, true, 4)
		})
	}
	var want []string
	for op := range iam.KEDA {
		want = append(want, op.Method)
	}
	sort.Strings(want)
	if got := rec.operations(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("KEDA's scaler called %v; KEDA's role is granted the actions of %v (deploy/internal/iam.KEDA)", got, want)
	}
}

// sqsRecorder is a reverse proxy to the SQS stand-in that notes the operation of every call.
type sqsRecorder struct {
	URL string
	mu  sync.Mutex
	ops map[string]bool
}

func recordSQS(t *testing.T, endpoint string) *sqsRecorder {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	r := &sqsRecorder{ops: map[string]bool{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		op, _ := strings.CutPrefix(req.Header.Get("X-Amz-Target"), "AmazonSQS.") // the JSON protocol
		if op == "" {
			op = req.URL.Query().Get("Action") // the query protocol
		}
		r.mu.Lock()
		r.ops[op] = true
		r.mu.Unlock()
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *sqsRecorder) operations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for op := range r.ops {
		out = append(out, op)
	}
	sort.Strings(out)
	return out
}

// newSQSScaler builds KEDA's scaler from the ScaledObject's trigger as KEDA's operator would:
// the trigger's metadata, the env it names resolved from the analyzer container (with the
// stand-in's queue URL in place of the production one), the TriggerAuthentication's pod
// identity. The endpoint is the one setting added: the stand-in's address. It returns the
// scaler and the per-replica target of the metric spec it gives the HPA.
func newSQSScaler(ctx context.Context, t *testing.T, s *Set, so *kedav1alpha1.ScaledObject, queueURL, endpoint string) (scalers.Scaler, float64) {
	t.Helper()
	var trigger kedav1alpha1.ScaleTriggers
	index := -1
	for i, tr := range so.Spec.Triggers {
		if tr.Type == "aws-sqs-queue" {
			trigger, index = tr, i
		}
	}
	if index < 0 {
		t.Fatal("no aws-sqs-queue trigger")
	}
	md := map[string]string{}
	for k, v := range trigger.Metadata {
		md[k] = v
	}
	md["awsEndpoint"] = endpoint
	envName := md["queueURLFromEnv"]
	if env(t, s, container(t, s.Deployments[so.Spec.ScaleTargetRef.Name]))[envName] == "" {
		t.Fatalf("queueURLFromEnv %q is not set in the analyzer container", envName)
	}
	ta := s.TriggerAuthentications[trigger.AuthenticationRef.Name]
	identity := *ta.Spec.PodIdentity
	identity.RoleArn = nil // assumed through STS; see above
	cfg := scalerConfig(so, index, md, map[string]string{envName: queueURL})
	cfg.PodIdentity = identity
	sc, err := scalers.NewAwsSqsQueueScaler(ctx, cfg)
	if err != nil {
		t.Fatalf("KEDA rejects the trigger: %v", err)
	}
	specs := sc.GetMetricSpecForScaling(ctx)
	if len(specs) != 1 || specs[0].External == nil || specs[0].External.Target.Type != v2.AverageValueMetricType || specs[0].External.Target.AverageValue == nil {
		t.Fatalf("metric spec %+v, want one external metric with an average value target", specs)
	}
	return sc, specs[0].External.Target.AverageValue.AsApproximateFloat64()
}

// scalerConfig is what KEDA's operator hands a scaler for trigger index of so, with the
// trigger's metadata md and the environment it resolved.
func scalerConfig(so *kedav1alpha1.ScaledObject, index int, md, resolvedEnv map[string]string) *scalersconfig.ScalerConfig {
	tr := so.Spec.Triggers[index]
	return &scalersconfig.ScalerConfig{
		ScalableObjectName: so.Name, ScalableObjectNamespace: "imgpipe", ScalableObjectType: "ScaledObject",
		TriggerName: tr.Name, TriggerType: tr.Type, TriggerIndex: index,
		TriggerUniqueKey: fmt.Sprintf("imgpipe-%s-%d", so.Name, index),
		TriggerMetadata:  md, ResolvedEnv: resolvedEnv, AuthParams: map[string]string{},
		MetricType: tr.MetricType, GlobalHTTPTimeout: 10 * time.Second,
	}
}

func sqsMetric(ctx context.Context, t *testing.T, sc scalers.Scaler) (float64, bool) {
	t.Helper()
	name := sc.GetMetricSpecForScaling(ctx)[0].External.Metric.Name
	vals, active, err := sc.GetMetricsAndActivity(ctx, name)
	if err != nil || len(vals) != 1 {
		t.Fatalf("GetMetricsAndActivity: %v (%d values)", err, len(vals))
	}
	return vals[0].Value.AsApproximateFloat64(), active
}

// replicas is what KEDA and the HPA make of a metric: zero while the trigger is inactive and
// minReplicaCount is 0, else the HPA's rule for an average-value external metric,
// ceil(metric / target), within [max(minReplicaCount, 1), maxReplicaCount].
func replicas(metric, target float64, active bool, so *kedav1alpha1.ScaledObject) int {
	lo, hi := 0, 100
	if so.Spec.MinReplicaCount != nil {
		lo = int(*so.Spec.MinReplicaCount)
	}
	if so.Spec.MaxReplicaCount != nil {
		hi = int(*so.Spec.MaxReplicaCount)
	}
	if !active && lo == 0 {
		return 0
	}
	n := int(math.Ceil(metric / target))
	return min(max(n, lo, 1), hi)
}

func send(ctx context.Context, t *testing.T, c *sqs.Client, url string, n int, delaySeconds int32) {
	t.Helper()
	for i := 0; i < n; i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(fmt.Sprintf(`{"n":%d}`, j)), DelaySeconds: delaySeconds,
			})
		}
		out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("send: %v %+v", err, out)
		}
	}
}

// receive takes n messages in flight (a long visibility timeout, never deleted).
func receive(ctx context.Context, t *testing.T, c *sqs.Client, url string, n int) {
	t.Helper()
	for got := 0; got < n; {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &url, MaxNumberOfMessages: int32(min(10, n-got)), VisibilityTimeout: 900, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		got += len(out.Messages)
	}
}
