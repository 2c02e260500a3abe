package analyzer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/internal/visionstandin"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/samples"
)

// TestLargeImageStreamed: images bigger than the head read reach Vision byte for byte (the
// head bytes followed by the rest, read with a second ranged GET), and are analysed once.
func TestLargeImageStreamed(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 30 * time.Second})
	images := map[string][]byte{}
	for i, size := range [][2]int{{400, 300}, {1200, 900}} {
		body, err := samples.Image(int64(9100+i), size[0], size[1], "bmp")
		if err != nil {
			t.Fatal(err)
		}
		if len(body) <= headBytes {
			t.Fatalf("image %d is %d bytes, not above the head read", i, len(body))
		}
		key := fmt.Sprintf("%slarge-%d.bmp", r.res.Prefix, i)
		r.put(t, key, body)
		images[key] = body
	}
	r.start(t, r.visionClient(t, nil), Options{Workers: 2, VisibilityTimeout: 30 * time.Second}, nil)
	r.waitPublished(t, images, 60*time.Second)
	r.checkOnce(t, images)
	r.checkDLQEmpty(t)
}

// TestOpenNoticesChange: when the object changes or disappears between the head read and the
// read of the rest, the second read says so (errObjectGone) instead of splicing two contents.
func TestOpenNoticesChange(t *testing.T) {
	r := newRig(t, devstack.Resources{})
	a, err := New(r.deps(t, r.visionClient(t, nil), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := samples.Image(9200, 400, 300, "bmp")
	if err != nil {
		t.Fatal(err)
	}
	second, err := samples.Image(9201, 400, 300, "bmp")
	if err != nil {
		t.Fatal(err)
	}
	key := r.res.Prefix + "changing.bmp"
	rec := &s3event.Record{Bucket: r.res.Bucket, Key: key}

	r.put(t, key, first)
	head, err := a.readHead(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if head.Size != int64(len(first)) || len(head.Bytes) != headBytes || head.ETag == "" {
		t.Fatalf("head: size %d (want %d), %d bytes read (want %d), etag %q", head.Size, len(first), len(head.Bytes), headBytes, head.ETag)
	}
	rc, n, err := a.open(ctx, rec, head, new(atomic.Pointer[error]))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || n != int64(len(first)) || !bytes.Equal(got, first) {
		t.Fatalf("unchanged object: %d bytes (length %d), equal %v, err %v", len(got), n, bytes.Equal(got, first), err)
	}

	r.put(t, key, second)
	if _, _, err := a.open(ctx, rec, head, new(atomic.Pointer[error])); !errors.Is(err, errObjectGone) {
		t.Fatalf("overwritten object: err = %v, want errObjectGone", err)
	}
	if _, err := r.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(r.res.Bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.open(ctx, rec, head, new(atomic.Pointer[error])); !errors.Is(err, errObjectGone) {
		t.Fatalf("deleted object: err = %v, want errObjectGone", err)
	}
}

// gate is a publisher whose first Publish waits until the test opens the gate.
type gate struct {
	next    Publisher
	once    sync.Once
	entered chan struct{}
	open    chan struct{}
}

func (g *gate) Publish(ctx context.Context, rec *record.Analysis) (string, error) {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.entered)
		select {
		case <-g.open:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return g.next.Publish(ctx, rec)
}

// TestPublishDoesNotHoldWorker: with one worker, a message whose publish is stuck does not
// keep the next message from being analysed: the worker is free once Vision has answered.
// The finishing stage is bounded too (as many messages as workers), so the third message
// waits: nothing piles up in memory behind a stuck publish.
func TestPublishDoesNotHoldWorker(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 30 * time.Second})
	g := &gate{next: r.pub.next, entered: make(chan struct{}), open: make(chan struct{})}
	r.pub.next = g
	images := r.putImages(t, 9300, 3)
	r.start(t, r.visionClient(t, nil), Options{Workers: 1, VisibilityTimeout: 30 * time.Second}, nil)

	select {
	case <-g.entered:
	case <-time.After(60 * time.Second):
		t.Fatal("no publish started")
	}
	analysed := func() int {
		stats := r.st.VisionServer.Stats()
		done := 0
		for _, body := range images {
			if stats.AnalysedCount(body)-r.stats0.AnalysedCount(body) > 0 {
				done++
			}
		}
		return done
	}
	stacktest.WaitFor(t, "a second image analysed while the first publish is stuck", 60*time.Second, func() (bool, string) {
		n := analysed()
		return n >= 2, fmt.Sprintf("%d of %d analysed", n, len(images))
	})
	time.Sleep(time.Second)
	if n := analysed(); n != 2 {
		t.Fatalf("%d images analysed while one publish is stuck and one waits for the finishing stage, want 2", n)
	}
	close(g.open)
	r.waitPublished(t, images, 60*time.Second)
	r.checkOnce(t, images)
}

// TestNonImageTakesNoWorker: an image and a non-image arrive in one receive; while the only
// worker is busy on the image's slow Vision call, the non-image is identified from its first
// bytes, its key's removal published and the message dead-lettered without waiting for the
// worker.
func TestNonImageTakesNoWorker(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 30 * time.Second})
	if err := r.st.VisionServer.SetFaults(visionstandin.Faults{Latency: visionstandin.Latency{Fixed: visionstandin.Duration(8 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	images := r.putImages(t, 9400, 1)
	r.put(t, r.res.Prefix+"not-an-image.jpg", []byte("plain text, not a JPEG"))
	r.waitQueued(t, r.res.QueueURL, 2) // both in the first receive
	x := r.start(t, r.visionClient(t, nil), Options{Workers: 1, VisibilityTimeout: 30 * time.Second}, nil)
	r.waitQueued(t, r.res.DLQURL, 1)
	// The non-image's removal of its key (docs/analyzer.md, "Content that can never be
	// indexed") is all that may be published by then.
	if got := r.pub.counts(); len(got) != 1 || got[r.res.Prefix+"not-an-image.jpg"] != 1 {
		t.Fatalf("published %v while the only worker was still in its Vision call: the non-image did not overtake it (%+v)", got, snap(x.a))
	}
	r.waitPublished(t, images, 60*time.Second)
	dead := r.dlqContents(t)
	if len(dead) != 1 || dead[0].failure.Reason != "NotAnImage" {
		t.Fatalf("DLQ: %+v, want the non-image with reason NotAnImage", dead)
	}
}

// TestShutdownDuringLongPoll: a message that arrives while the analyzer, already told to
// stop, still waits in a long poll is released at once. (Cancelling the poll instead would
// leave it with a receiver that hung up, invisible for its whole visibility timeout: SQS and
// fauxqs both hand messages to such polls.)
func TestShutdownDuringLongPoll(t *testing.T) {
	r := newRig(t, devstack.Resources{VisibilityTimeout: 30 * time.Second})
	x := r.start(t, r.visionClient(t, nil), Options{Workers: 2, VisibilityTimeout: 30 * time.Second}, &startWith{wait: 5 * time.Second})
	time.Sleep(time.Second) // the first long poll of the empty queue is waiting
	x.cancel()
	time.Sleep(200 * time.Millisecond)
	r.putImages(t, 9500, 1)
	<-x.done
	out, err := r.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(r.res.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	visible := out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]
	hidden := out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)]
	if visible != "1" || hidden != "0" {
		t.Fatalf("after the analyzer stopped: %s visible, %s in flight; want the message visible at once", visible, hidden)
	}
	if s := snap(x.a); s.Released != 1 || s.Succeeded != 0 {
		t.Fatalf("released %d, succeeded %d; want the one message released unstarted", s.Released, s.Succeeded)
	}
}
