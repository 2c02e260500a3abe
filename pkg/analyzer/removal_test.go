package analyzer

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/samples"
)

// records keeps every record the analyzer published, in order.
type records struct {
	next Publisher
	mu   sync.Mutex
	all  []record.Analysis
}

func (p *records) Publish(ctx context.Context, rec *record.Analysis) (string, error) {
	id, err := p.next.Publish(ctx, rec)
	if err == nil {
		p.mu.Lock()
		p.all = append(p.all, *rec)
		p.mu.Unlock()
	}
	return id, err
}

// of returns the records published for key so far.
func (p *records) of(key string) []record.Analysis {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []record.Analysis
	for _, r := range p.all {
		if r.Key == key {
			out = append(out, r)
		}
	}
	return out
}

// recordAll makes the rig keep every published record.
func (r *rig) recordAll() *records {
	rec := &records{next: r.pub.next}
	r.pub.next = rec
	return rec
}

// putVersion uploads a w x h PNG and returns its version ID.
func (r *rig) putVersion(t *testing.T, key string, seed int64, w, h int) string {
	t.Helper()
	body, err := samples.Image(seed, w, h, "png")
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(r.res.Bucket), Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.VersionId)
}

func (r *rig) deleteVersion(t *testing.T, key, version string) string {
	t.Helper()
	in := &s3.DeleteObjectInput{Bucket: aws.String(r.res.Bucket), Key: &key}
	if version != "" {
		in.VersionId = &version
	}
	out, err := r.s3.DeleteObject(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.VersionId)
}

// waitQueueEmpty waits until the S3 stand-in has delivered its events and the analyzers have
// deleted every message of the queue (a message is deleted only after its records are
// published).
func (r *rig) waitQueueEmpty(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.st.S3Server.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, "the queue to empty", time.Minute, func() (bool, string) {
		out, err := r.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String(r.res.QueueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages,
				sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
		})
		if err != nil {
			return false, err.Error()
		}
		v := out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]
		nv := out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)]
		return v == "0" && nv == "0", fmt.Sprintf("%s visible, %s in flight", v, nv)
	})
}

// waitRecords waits until key has n records and returns them.
func waitRecords(t *testing.T, p *records, key string, n int) []record.Analysis {
	t.Helper()
	stacktest.WaitFor(t, fmt.Sprintf("%d records of %s", n, key), time.Minute, func() (bool, string) {
		got := len(p.of(key))
		return got >= n, strconv.Itoa(got)
	})
	return p.of(key)
}

func describe(r record.Analysis) string {
	return fmt.Sprintf("%s version %q %dx%d sequencer %s", r.Event, r.VersionID, r.Width, r.Height, r.Sequencer)
}

// TestVersionedRemovals: what the analyzer publishes for each removal on a versioned bucket.
// Expiring a noncurrent version publishes nothing; deleting the current version by its ID
// publishes the analysis of the version that became current, at the removal's sequencer;
// deleting the last version publishes a removal; a delete marker publishes a removal and
// deleting it republishes the version it hid.
func TestVersionedRemovals(t *testing.T) {
	r := newRig(t, devstack.Resources{})
	ctx := context.Background()
	if _, err := r.s3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(r.res.Bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.s3.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{
		Bucket: aws.String(r.res.Bucket),
		LifecycleConfiguration: &s3types.BucketLifecycleConfiguration{Rules: []s3types.LifecycleRule{{
			ID: aws.String("old"), Status: s3types.ExpirationStatusEnabled, Filter: &s3types.LifecycleRuleFilter{Prefix: aws.String("")},
			NoncurrentVersionExpiration: &s3types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(1), NewerNoncurrentVersions: aws.Int32(1)},
		}}},
	}); err != nil {
		t.Fatal(err)
	}
	pub := r.recordAll()
	r.start(t, r.visionClient(t, nil), Options{Workers: 2}, nil)

	key := r.res.Prefix + "v/dog.png"
	v1 := r.putVersion(t, key, 501, 121, 91)
	v2 := r.putVersion(t, key, 502, 131, 97)
	v3 := r.putVersion(t, key, 503, 141, 103)
	waitRecords(t, pub, key, 3)
	r.waitQueueEmpty(t)

	// v1 expires (v2 is kept as the newest noncurrent version): nothing to publish.
	res, err := r.st.S3Server.RunLifecycle(ctx, time.Now().Add(72*time.Hour))
	if err != nil || res.Expired != 1 {
		t.Fatalf("lifecycle: %+v, %v", res, err)
	}
	r.waitQueueEmpty(t)
	if got := pub.of(key); len(got) != 3 {
		t.Fatalf("after v1 (noncurrent) expired: %d records, want still 3; the last is %s", len(got), describe(got[len(got)-1]))
	}

	// The current version deleted by its ID: v2 is current again and republished.
	r.deleteVersion(t, key, v3)
	got := waitRecords(t, pub, key, 4)
	last, created := got[3], got[2]
	if last.Event != record.Created || last.VersionID != v2 || last.Width != 131 || last.Height != 97 {
		t.Errorf("after the current version was deleted: %s, want the analysis of v2 (131x97)", describe(last))
	}
	if c, err := s3event.CompareSequencer(last.Sequencer, created.Sequencer); err != nil || c <= 0 {
		t.Errorf("republished v2 has sequencer %s, not newer than v3's %s (%v)", last.Sequencer, created.Sequencer, err)
	}

	// A delete marker: a removal. Deleting the marker: v2 again.
	marker := r.deleteVersion(t, key, "")
	if got := waitRecords(t, pub, key, 5); got[4].Event != record.Removed {
		t.Errorf("after a delete marker: %s, want a removal", describe(got[4]))
	}
	r.deleteVersion(t, key, marker)
	if got := waitRecords(t, pub, key, 6); got[5].Event != record.Created || got[5].VersionID != v2 {
		t.Errorf("after the delete marker was deleted: %s, want v2", describe(got[5]))
	}

	// A noncurrent version deleted by hand leaves the current one: it is republished (the
	// analyzer cannot tell whether the deleted version was current).
	v4 := r.putVersion(t, key, 504, 151, 109)
	waitRecords(t, pub, key, 7)
	r.deleteVersion(t, key, v2)
	if got := waitRecords(t, pub, key, 8); got[7].Event != record.Created || got[7].VersionID != v4 || got[7].Width != 151 {
		t.Errorf("after a noncurrent version was deleted: %s, want v4", describe(got[7]))
	}

	// The last version deleted: a removal.
	r.deleteVersion(t, key, v4)
	if got := waitRecords(t, pub, key, 9); got[8].Event != record.Removed || got[8].VersionID != v4 {
		t.Errorf("after the last version was deleted: %s, want the removal of v4", describe(got[8]))
	}

	// A current version that can never be indexed (not an image) counts as nothing.
	text := r.res.Prefix + "v/notes.png"
	img := r.putVersion(t, text, 505, 161, 111)
	if _, err := r.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(r.res.Bucket), Key: &text, Body: bytes.NewReader([]byte("plain text, not a picture"))}); err != nil {
		t.Fatal(err)
	}
	r.waitQueueEmpty(t) // the text version went to the DLQ, after a removal of the image's document
	r.deleteVersion(t, text, img)
	got = waitRecords(t, pub, text, 3)
	// The text version's event and the image's may be handled in either order: the
	// sequencers order them, as at the index.
	slices.SortFunc(got, func(a, b record.Analysis) int { return strings.Compare(a.Sequencer, b.Sequencer) })
	if got[1].Event != record.Removed || got[1].VersionID == img {
		t.Errorf("the text version written over the image: %s, want a removal at its own event", describe(got[1]))
	}
	if got[2].Event != record.Removed {
		t.Errorf("current version not an image: %s, want a removal", describe(got[2]))
	}
	if d := r.dlqContents(t); len(d) != 1 || d[0].failure.Reason != "NotAnImage" {
		t.Errorf("DLQ holds %d messages, want only the text version's (NotAnImage): %+v", len(d), d)
	}
	_ = v1
}

// TestUnversionedRemovalUnchanged: a removal event without a version ID is published as a
// removal without reading S3, as before versioned buckets were handled: even when the key has
// been written again since (the index orders the two by sequencer).
func TestUnversionedRemovalUnchanged(t *testing.T) {
	r := newRig(t, devstack.Resources{})
	pub := r.recordAll()
	key := r.res.Prefix + "u/again.png"
	r.putVersion(t, key, 601, 127, 95)
	r.start(t, r.visionClient(t, nil), Options{Workers: 2}, nil)
	waitRecords(t, pub, key, 1)

	rec := s3event.NewRecord("ObjectRemoved:Delete", r.res.Bucket, key, time.Now())
	rec.Sequencer = s3event.FormatSequencer(1)
	body, err := s3event.MarshalEvent([]s3event.Record{rec})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(r.res.QueueURL), MessageBody: aws.String(string(body))}); err != nil {
		t.Fatal(err)
	}
	got := waitRecords(t, pub, key, 2)
	if got[1].Event != record.Removed || got[1].Sequencer != rec.Sequencer {
		t.Errorf("unversioned removal: %s, want a removal at sequencer %s", describe(got[1]), rec.Sequencer)
	}
}

// TestNullVersionPinnedByETag: the null version of a suspended bucket is replaced by every
// write, so an event about it is pinned to its ETag like one of an unversioned bucket: once
// overwritten, the older event is skipped instead of attaching the newer content to it.
func TestNullVersionPinnedByETag(t *testing.T) {
	r := newRig(t, devstack.Resources{})
	ctx := context.Background()
	for _, status := range []s3types.BucketVersioningStatus{s3types.BucketVersioningStatusEnabled, s3types.BucketVersioningStatusSuspended} {
		if _, err := r.s3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(r.res.Bucket),
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: status}}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := New(r.deps(t, r.visionClient(t, nil), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	key := r.res.Prefix + "null/pinned.png"
	if v := r.putVersion(t, key, 701, 133, 99); v != s3event.NullVersionID {
		t.Fatalf("version %q, want null", v)
	}
	head, err := r.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.res.Bucket), Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	rec := &s3event.Record{Bucket: r.res.Bucket, Key: key, VersionID: s3event.NullVersionID, ETag: strings.Trim(aws.ToString(head.ETag), `"`)}
	if _, _, why, err := a.prepareObject(ctx, newMsgTrace(ctx, &queue.Message{}), rec); err != nil || why != "" {
		t.Fatalf("before the overwrite: why %q, %v", why, err)
	}
	r.putVersion(t, key, 702, 135, 101) // replaces the null version
	if _, _, why, err := a.prepareObject(ctx, newMsgTrace(ctx, &queue.Message{}), rec); err != nil || why != "object overwritten since the event" {
		t.Errorf("after the overwrite: why %q, %v; want the event skipped as overwritten", why, err)
	}
}
