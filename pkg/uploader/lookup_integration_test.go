package uploader_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/uploader"
)

// lookupEnv is a bootstrapped stack with three uploaded files and an index store.
type lookupEnv struct {
	st    *devstack.Stack
	b     *devstack.Bootstrapped
	store *indexstore.Store
	sqs   *sqs.Client
	dir   string
	keys  map[string]string // file name -> key
}

func newLookupEnv(t *testing.T) *lookupEnv {
	t.Helper()
	st := stacktest.Require(t, devstack.S3|devstack.SQS|devstack.Firestore)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx := testCtx(t)
	fs, err := firestore.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	e := &lookupEnv{st: st, b: b, store: indexstore.New(fs, b.Collection, nil), sqs: st.NewSQSClient(), dir: t.TempDir(), keys: map[string]string{}}
	writeTree(t, e.dir, map[string][]byte{
		"indexed.jpg":   mustImage(t, 51, 300, 200, "jpeg"),
		"failed é.png":  mustImage(t, 52, 40, 40, "png"),
		"pending.gif":   mustImage(t, 53, 80, 80, "gif"),
		"redriven.tiff": mustImage(t, 54, 80, 80, "tiff"),
	})
	up, err := uploader.New(st.NewS3Client(), b.Bucket, b.Prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := up.Put(ctx, []string{e.dir})
	if err != nil || sum.Uploaded != 4 {
		t.Fatalf("put: %v, %+v", err, sum)
	}
	for _, f := range sum.Files {
		e.keys[filepath.Base(f.Path)] = f.Key
	}
	return e
}

func (e *lookupEnv) index(t *testing.T, key string) {
	t.Helper()
	if err := e.indexErr(testCtx(t), key); err != nil {
		t.Fatal(err)
	}
}

func (e *lookupEnv) indexErr(ctx context.Context, key string) error {
	now := time.Now().UTC()
	_, err := e.store.Apply(ctx, &record.Analysis{
		SchemaVersion: record.SchemaVersion, Event: record.Created, Bucket: e.b.Bucket, Key: key,
		Sequencer: s3event.FormatSequencer(uint64(now.UnixNano())), EventTime: now,
		Size: 1234, ContentType: "image/jpeg", Format: "jpeg", Width: 300, Height: 200,
		Tags:    []record.Tag{{Name: "sky", Confidence: 0.98}, {Name: "outdoor", Confidence: 0.9}},
		Caption: "a gradient sky", CaptionConfidence: 0.8, ModelVersion: "2023-10-01", AnalyzedAt: now,
	})
	if err != nil {
		return fmt.Errorf("index %s: %w", key, err)
	}
	return nil
}

// deadLetter sends an S3 event for key to the DLQ, with failure attributes unless err is nil.
func (e *lookupEnv) deadLetter(t *testing.T, key string, err error) {
	t.Helper()
	if err := e.deadLetterErr(testCtx(t), key, err); err != nil {
		t.Fatal(err)
	}
}

func (e *lookupEnv) deadLetterErr(ctx context.Context, key string, err error) error {
	body, merr := s3event.MarshalEvent([]s3event.Record{s3event.NewRecord("ObjectCreated:Put", e.b.Bucket, key, time.Now())})
	if merr != nil {
		return merr
	}
	return e.sendDLQErr(ctx, string(body), err)
}

func (e *lookupEnv) sendDLQ(t *testing.T, body string, err error) {
	t.Helper()
	if err := e.sendDLQErr(testCtx(t), body, err); err != nil {
		t.Fatal(err)
	}
}

func (e *lookupEnv) sendDLQErr(ctx context.Context, body string, err error) error {
	in := &sqs.SendMessageInput{QueueUrl: &e.b.DLQURL, MessageBody: &body}
	if err != nil {
		now := time.Now()
		in.MessageAttributes = map[string]sqstypes.MessageAttributeValue{}
		for k, v := range failure.DetailsOf(err, 3, e.b.QueueURL, now, now).Attributes() {
			in.MessageAttributes[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
	}
	if _, err := e.sqs.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("send to DLQ: %w", err)
	}
	return nil
}

func (e *lookupEnv) dlqDepth(t *testing.T) (visible, hidden int) {
	t.Helper()
	out, err := e.sqs.GetQueueAttributes(testCtx(t), &sqs.GetQueueAttributesInput{
		QueueUrl: &e.b.DLQURL,
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	visible, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	hidden, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, hidden
}

func (e *lookupEnv) lookup() *uploader.Lookup {
	l, err := uploader.NewLookup(e.st.NewS3Client(), e.b.Bucket, &uploader.LookupOptions{Index: e.store, SQS: e.sqs, DLQURL: e.b.DLQURL})
	if err != nil {
		panic(err) // the options are the defaults'
	}
	return l
}

func TestStatusIndexedFailedPendingAndDLQUntouched(t *testing.T) {
	e := newLookupEnv(t)
	ctx := testCtx(t)
	e.index(t, e.keys["indexed.jpg"])
	e.sendDLQ(t, "not an S3 event", failure.Permanentf(s3event.ReasonMalformedEvent, "junk"))
	e.deadLetter(t, "upload/other/key.jpg", failure.Permanentf("InvalidImageFormat", "bad"))
	e.deadLetter(t, e.keys["failed é.png"], failure.Permanentf(samplesReasonTooSmall, "image of 40x40 pixels is too small"))
	e.deadLetter(t, e.keys["redriven.tiff"], nil)
	const dlqMessages = 4

	// FILE arguments resolve to the keys put used.
	var keys []string
	for _, name := range []string{"indexed.jpg", "failed é.png", "pending.gif", "redriven.tiff"} {
		key, fromFile, err := uploader.ResolveKey(ctx, filepath.Join(e.dir, name), e.b.Prefix)
		if err != nil || !fromFile || key != e.keys[name] {
			t.Fatalf("ResolveKey(%s) = %q, %v, %v; want %q from the file", name, key, fromFile, err, e.keys[name])
		}
		keys = append(keys, key)
	}
	if key, fromFile, err := uploader.ResolveKey(ctx, "upload/never/uploaded.jpg", e.b.Prefix); err != nil || fromFile || key != "upload/never/uploaded.jpg" {
		t.Fatalf("ResolveKey of a key = %q, %v, %v", key, fromFile, err)
	}
	keys = append(keys, "upload/never/uploaded.jpg")

	got, err := e.lookup().Status(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		state  uploader.State
		inS3   bool
		reason string
	}{
		{uploader.StateIndexed, true, ""},
		{uploader.StateFailed, true, samplesReasonTooSmall},
		{uploader.StatePending, true, ""},
		{uploader.StateFailed, true, uploader.ReasonRedriven},
		{uploader.StatePending, false, ""},
	}
	for i, w := range want {
		g := got[i]
		reason := ""
		if g.Failure != nil {
			reason = g.Failure.Reason
		}
		if g.Key != keys[i] || g.State != w.state || g.InS3 != w.inS3 || reason != w.reason {
			t.Errorf("%s: state %s inS3 %v reason %q; want %s %v %q", keys[i], g.State, g.InS3, reason, w.state, w.inS3, w.reason)
		}
	}
	if d := got[0].Document; d == nil || d.Caption != "a gradient sky" || d.Width != 300 || d.Height != 200 || len(d.Tags) != 2 || d.Tags[0].Name != "sky" {
		t.Errorf("indexed document: %+v", got[0].Document)
	}
	if f := got[1].Failure; f == nil || f.Class != "permanent" || f.Error == "" || f.Attempts != 3 || f.MessageID == "" {
		t.Errorf("failure: %+v", got[1].Failure)
	}

	// Nothing was consumed: every message is back and visible at once.
	if visible, hidden := e.dlqDepth(t); visible != dlqMessages || hidden != 0 {
		t.Errorf("after status the DLQ has %d visible and %d hidden messages; want %d and 0", visible, hidden, dlqMessages)
	}
	// And a second look gives the same answer.
	again, err := e.lookup().Status(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if again[i].State != got[i].State {
			t.Errorf("%s: second status %s, first %s", keys[i], again[i].State, got[i].State)
		}
	}
}

// samplesReasonTooSmall is Vision's inner error code for a tiny image.
const samplesReasonTooSmall = "InvalidImageSize"

func TestWaitEndsWhenIndexedOrFailedAndTimesOut(t *testing.T) {
	e := newLookupEnv(t)
	ctx := testCtx(t)
	l := e.lookup()
	pending, indexed := e.keys["pending.gif"], e.keys["indexed.jpg"]

	// A key that stays pending: Wait returns the pending status with the context's error.
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	st, err := l.Wait(short, []string{pending}, 100*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || len(st) != 1 || st[0].State != uploader.StatePending || !st[0].InS3 {
		t.Fatalf("Wait on a pending key = %+v, %v; want pending and DeadlineExceeded", st, err)
	}

	// Keys that become indexed and failed while Wait polls.
	bgErr := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		bgErr <- errors.Join(e.indexErr(ctx, indexed), e.deadLetterErr(ctx, pending, failure.Permanentf("CorruptImage", "truncated")))
	}()
	st, err = l.Wait(ctx, []string{indexed, pending}, 100*time.Millisecond)
	if err := <-bgErr; err != nil {
		t.Fatal(err)
	}
	if err != nil || st[0].State != uploader.StateIndexed || st[1].State != uploader.StateFailed || st[1].Failure.Reason != "CorruptImage" {
		t.Fatalf("Wait = %+v, %v; want indexed and failed", st, err)
	}
}

// fixedFailures is a FailureSource that knows one failure and records what it was asked.
type fixedFailures struct {
	key   string
	asked []map[string]bool
}

func (f *fixedFailures) Failures(_ context.Context, bucket string, keys map[string]bool) (map[string]uploader.FailureInfo, error) {
	f.asked = append(f.asked, keys)
	if !keys[f.key] {
		return nil, nil
	}
	return map[string]uploader.FailureInfo{f.key: uploader.NewFailureInfo(failure.Details{Reason: "NotAnImage", Class: failure.Permanent}, "m-1", 1)}, nil
}

// With a FailureSource, Status asks it (for the keys not indexed only) instead of scanning the
// dead-letter queue, which is left alone.
func TestStatusAsksTheFailureSource(t *testing.T) {
	e := newLookupEnv(t)
	ctx := testCtx(t)
	e.index(t, e.keys["indexed.jpg"])
	e.deadLetter(t, e.keys["pending.gif"], failure.Permanentf("CorruptImage", "in the queue, not in the source"))
	src := &fixedFailures{key: e.keys["failed é.png"]}
	l, err := uploader.NewLookup(e.st.NewS3Client(), e.b.Bucket, &uploader.LookupOptions{Index: e.store, SQS: e.sqs, DLQURL: e.b.DLQURL, Failures: src})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{e.keys["indexed.jpg"], e.keys["failed é.png"], e.keys["pending.gif"]}
	got, err := l.Status(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].State != uploader.StateIndexed || got[1].State != uploader.StateFailed || got[1].Failure.Reason != "NotAnImage" ||
		got[1].Failure.Class != "permanent" || got[2].State != uploader.StatePending {
		t.Fatalf("statuses %+v", got)
	}
	if len(src.asked) != 1 || len(src.asked[0]) != 2 || src.asked[0][keys[0]] {
		t.Fatalf("source asked %v; want once, for the two keys not indexed", src.asked)
	}
	// Only now is the dead-letter message received for the first time.
	out, err := e.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &e.b.DLQURL, WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive the DLQ message: %v, %d messages", err, len(out.Messages))
	}
	if n := out.Messages[0].Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]; n != "1" {
		t.Fatalf("the DLQ message was received %s times: Status scanned the queue", n)
	}
}

func TestNewFailureInfo(t *testing.T) {
	f := uploader.NewFailureInfo(failure.Details{Reason: "InvalidImageSize", Class: failure.Permanent, Error: "small", Attempts: 2}, "id", 7)
	if f.Reason != "InvalidImageSize" || f.Class != "permanent" || f.Attempts != 2 || f.MessageID != "id" || f.Error != "small" {
		t.Fatalf("with a reason: %+v", f)
	}
	f = uploader.NewFailureInfo(failure.Details{}, "id", 7)
	if f.Reason != uploader.ReasonRedriven || f.Attempts != 7 || f.Class != "" {
		t.Fatalf("redriven: %+v", f)
	}
}
