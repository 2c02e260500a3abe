package s3server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"imgpipe/pkg/failure"
)

// deadEndpoint returns the URL of a loopback port nobody listens on.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// s3For returns an S3 client for ts with its own transport, so the test can close its idle
// connections.
func s3For(ts *httptest.Server) (*s3.Client, *http.Transport) {
	tr := &http.Transport{}
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(ts.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
		HTTPClient:   &http.Client{Transport: tr},
		Retryer:      aws.NopRetryer{},
	}), tr
}

func apiCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func configureSkippingValidation(ctx context.Context, c *s3.Client, bucket string, skip bool) error {
	_, err := c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket),
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: aws.String(arnQ), Events: []s3types.Event{"s3:ObjectCreated:*"},
		}}},
		SkipDestinationValidation: aws.Bool(skip),
	})
	return err
}

func TestCloseWithUndeliverableEvents(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	srv, err := New(&Options{SQSEndpoint: deadEndpoint(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	client, tr := s3For(ts)
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	// Validation sends the test event, which cannot be delivered.
	err = configureSkippingValidation(ctx, client, "bkt", false)
	if apiCode(err) != "InvalidArgument" || !strings.Contains(err.Error(), "Unable to validate") {
		t.Fatalf("configuration with a dead SQS: %v", err)
	}
	if err := configureSkippingValidation(ctx, client, "bkt", true); err != nil {
		t.Fatalf("configuration skipping validation: %v", err)
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	for srv.Stats().FailedAttempts == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("no failed attempt")
		case <-time.After(10 * time.Millisecond):
		}
	}

	fctx, fcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer fcancel()
	if err := srv.Flush(fctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("flush with an undeliverable event: %v, want deadline exceeded", err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer ccancel()
	err1 := srv.Close(cctx)
	if !errors.Is(err1, context.DeadlineExceeded) {
		t.Errorf("close: %v, want deadline exceeded", err1)
	}
	if err2 := srv.Close(ctx); err2 != err1 {
		t.Errorf("second close: %v, want the first result %v", err2, err1)
	}
	if st := srv.Stats(); st.Pending != 1 || st.Enqueued != 1 || st.Sent != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}

	// Writes are refused after Close; reads still work.
	_, err = client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k2"), Body: strings.NewReader("x")})
	if apiCode(err) != "ServiceUnavailable" {
		t.Errorf("put after close: %v", err)
	}
	if _, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k")}); err != nil {
		t.Errorf("head after close: %v", err)
	}

	ts.Close()
	tr.CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
}

func TestFullOutboxHoldsWritersAndDropsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := New(&Options{SQSEndpoint: deadEndpoint(t), QueueCapacity: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv.sender.fullWait = 10 * time.Millisecond
	ts := httptest.NewServer(srv)
	defer ts.Close()
	client, tr := s3For(ts)
	defer tr.CloseIdleConnections()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	if err := configureSkippingValidation(ctx, client, "bkt", true); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String(fmt.Sprint(i)), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if st := srv.Stats(); st.Enqueued != 3 || st.Pending != 3 || st.Dropped != 0 {
		t.Errorf("stats %+v: want 3 enqueued and pending, none dropped", st)
	}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer ccancel()
	if err := srv.Close(cctx); err == nil {
		t.Error("close with undelivered events returned nil")
	}
}

func TestWithoutSQS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	client, tr := s3For(ts)
	defer tr.CloseIdleConnections()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	err = configureSkippingValidation(ctx, client, "bkt", true)
	if apiCode(err) != "InvalidArgument" || !strings.Contains(err.Error(), "no SQS endpoint") {
		t.Errorf("configuration without SQS: %v", err)
	}
	if err := srv.Flush(ctx); err != nil {
		t.Errorf("flush: %v", err)
	}
	if err := srv.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := srv.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestStartAndClose(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(run.URL(), "http://127.0.0.1:") || run.Server() == nil {
		t.Fatalf("URL %q, server %v", run.URL(), run.Server())
	}
	tr := &http.Transport{}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, run.URL()+"/bucket", nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("create bucket: %s", resp.Status)
	}
	tr.CloseIdleConnections()
	if err := run.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := run.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}
	goleak.VerifyNone(t, ignore)
}

func TestSenderLowWaterMark(t *testing.T) {
	s := &sender{log: zap.NewNop(), capacity: 10, fullWait: time.Millisecond, low: 1,
		finished: make(map[uint64]bool), changed: make(chan struct{})}
	for range 3 {
		if err := s.enqueue(arnQ, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.flush(done); err == nil {
		t.Fatal("flush with 3 pending returned nil")
	}
	s.finish(3)
	s.finish(2)
	if s.low != 1 || s.outstanding != 1 {
		t.Errorf("after finishing 3 and 2: low %d outstanding %d, want 1 and 1", s.low, s.outstanding)
	}
	if err := s.flush(done); err == nil {
		t.Fatal("flush with message 1 pending returned nil")
	}
	s.finish(1)
	if s.low != 4 || len(s.finished) != 0 || s.outstanding != 0 {
		t.Errorf("after finishing all: low %d finished %v outstanding %d", s.low, s.finished, s.outstanding)
	}
	if err := s.flush(done); err != nil {
		t.Errorf("flush with nothing pending: %v", err)
	}
}

func TestKeyLocks(t *testing.T) {
	var k keyLocks
	k.m = make(map[string]*keyLock)
	var wg sync.WaitGroup
	counter := 0
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := []string{"a", "b", "a"}
			if i%2 == 1 {
				keys = []string{"b", "a"}
			}
			unlock := k.lock("bucket", keys)
			counter++ // guarded by the lock on "a"
			unlock()
		}()
	}
	wg.Wait()
	if counter != 50 {
		t.Errorf("counter %d, want 50", counter)
	}
	if len(k.m) != 0 {
		t.Errorf("%d locks left in the map", len(k.m))
	}
}

// The sender waits the project's backoff: within the ceiling, which doubles from 100 ms and
// stops at 5 s.
func TestDeliveryBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 6: 3200 * time.Millisecond, 7: 5 * time.Second, 40: 5 * time.Second} {
		if got := deliveryBackoff.Ceiling(n); got != want {
			t.Errorf("ceiling before attempt %d: %v, want %v", n+1, got, want)
		}
		for range 20 {
			if d := deliveryBackoff.Backoff(n, nil); d < 0 || d >= want {
				t.Fatalf("backoff(%d) = %v, want in [0, %v)", n, d, want)
			}
		}
	}
}

func TestClassifySQS(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		class   failure.Class
		missing bool
	}{
		{"typed missing queue", &sqstypes.QueueDoesNotExist{Message: aws.String("nope")}, failure.Permanent, true},
		{"query-protocol missing queue", &smithy.GenericAPIError{Code: "AWS.SimpleQueueService.NonExistentQueue", Fault: smithy.FaultClient}, failure.Permanent, true},
		{"throttled", &smithy.GenericAPIError{Code: "RequestThrottled", Fault: smithy.FaultClient}, failure.Throttled, false},
		{"server fault", &smithy.GenericAPIError{Code: "InternalError", Fault: smithy.FaultServer}, failure.Transient, false},
		{"client fault", &smithy.GenericAPIError{Code: "InvalidParameterValue", Fault: smithy.FaultClient}, failure.Permanent, false},
		{"connection refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, failure.Transient, false},
	}
	for _, tt := range tests {
		err := classifySQS(fmt.Errorf("send: %w", tt.err))
		if got := failure.ClassOf(err); got != tt.class {
			t.Errorf("%s: class %v, want %v", tt.name, got, tt.class)
		}
		if got := isMissingQueue(err); got != tt.missing {
			t.Errorf("%s: missing %v, want %v", tt.name, got, tt.missing)
		}
	}
}

func TestDueAt(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tt := range []struct {
		from string
		days int
		want string
	}{
		{"2026-03-01T10:00:00Z", 1, "2026-03-03T00:00:00Z"}, // +1 day, rounded up to midnight
		{"2026-03-01T00:00:00Z", 1, "2026-03-02T00:00:00Z"}, // already midnight
		{"2026-03-31T23:59:59Z", 1, "2026-04-02T00:00:00Z"},
		{"2026-03-01T10:00:00+05:00", 1, "2026-03-03T00:00:00Z"}, // 05:00 UTC
		{"2026-12-31T12:00:00Z", 30, "2027-01-31T00:00:00Z"},
	} {
		if got := dueAt(at(tt.from), tt.days); !got.Equal(at(tt.want)) {
			t.Errorf("dueAt(%s, %d) = %s, want %s", tt.from, tt.days, got.Format(time.RFC3339), tt.want)
		}
	}
}

func TestParseLifecycleLegacyPrefix(t *testing.T) {
	cfg, err := parseLifecycle([]byte(`<LifecycleConfiguration><Rule><ID>a</ID><Prefix>logs/</Prefix><Status>Enabled</Status>` +
		`<Expiration><Days>3</Days></Expiration></Rule></LifecycleConfiguration>`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.rules) != 1 || cfg.rules[0].prefix != "logs/" || cfg.rules[0].expirationDays != 3 || !cfg.rules[0].enabled {
		t.Errorf("rules %+v", cfg.rules)
	}
	for _, body := range []string{
		`<LifecycleConfiguration><Rule><Prefix>a</Prefix><Filter><Prefix>b</Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>`,
		`<LifecycleConfiguration><Rule><Status>On</Status><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>`,
		`<LifecycleConfiguration></LifecycleConfiguration>`,
		`<LifecycleConfiguration><Rule>`,
	} {
		if _, err := parseLifecycle([]byte(body)); err == nil || !strings.Contains(err.Error(), "MalformedXML") {
			t.Errorf("%s: %v, want MalformedXML", body, err)
		}
	}
}

// TestChecksumCheckValues: each algorithm against the standard check value of "123456789"
// (the CRC catalogue's CRC-32/ISO-HDLC, CRC-32/ISCSI and CRC-64/NVME entries) or its digest.
func TestChecksumCheckValues(t *testing.T) {
	want := map[string]string{
		"crc32":     "cbf43926",
		"crc32c":    "e3069283",
		"crc64nvme": "ae8b14860a799888",
		"sha1":      "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
		"sha256":    "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
		"md5":       "25f9e794323b453885f5181f1b624d0b",
	}
	for _, a := range checksumAlgos {
		h := a.new()
		h.Write([]byte("123456789"))
		got := fmt.Sprintf("%x", h.Sum(nil))
		if w, ok := want[a.name]; ok && got != w {
			t.Errorf("%s(123456789) = %s, want %s", a.name, got, w)
		}
	}
}
