package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/imagemeta"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/samples"
)

func (p *pipeline) setVersioning(t *testing.T, status s3types.BucketVersioningStatus) {
	t.Helper()
	if _, err := p.s3.PutBucketVersioning(context.Background(), &s3.PutBucketVersioningInput{Bucket: aws.String(p.res.Bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: status}}); err != nil {
		t.Fatal(err)
	}
}

// putVersion uploads a w x h PNG to key and returns the version ID S3 gave it.
func (p *pipeline) putVersion(t *testing.T, key string, seed int64, w, h int) string {
	t.Helper()
	body, err := samples.Image(seed, w, h, "png")
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(p.res.Bucket), Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return aws.ToString(out.VersionId)
}

func (p *pipeline) deleteVersion(t *testing.T, key, version string) string {
	t.Helper()
	in := &s3.DeleteObjectInput{Bucket: aws.String(p.res.Bucket), Key: &key}
	if version != "" {
		in.VersionId = &version
	}
	out, err := p.s3.DeleteObject(context.Background(), in)
	if err != nil {
		t.Fatalf("delete %s version %q: %v", key, version, err)
	}
	return aws.ToString(out.VersionId)
}

// waitDoc waits until key's document is the analysis of version (with its dimensions), or
// until there is no document when version is "".
func (p *pipeline) waitDoc(t *testing.T, what, key, version string, w, h int) {
	t.Helper()
	stacktest.WaitFor(t, what, 2*time.Minute, func() (bool, string) {
		d, err := p.store.Get(context.Background(), p.res.Bucket, key)
		switch {
		case errors.Is(err, indexstore.ErrNotFound):
			return version == "", "no document"
		case err != nil:
			return false, err.Error()
		}
		state := fmt.Sprintf("document of version %q, %dx%d, sequencer %s", d.VersionID, d.Width, d.Height, d.Sequencer)
		return version != "" && d.VersionID == version && d.Width == w && d.Height == h, state
	})
}

// TestVersionedBucketIndex: on a versioned bucket the index follows the key's current version
// through lifecycle expiration of noncurrent versions, deletion of the current version by its
// ID, delete markers and their removal.
func TestVersionedBucketIndex(t *testing.T) {
	p := startPipeline(t, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	ctx := context.Background()
	p.setVersioning(t, s3types.BucketVersioningStatusEnabled)
	_, err := p.s3.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{
		Bucket: aws.String(p.res.Bucket),
		LifecycleConfiguration: &s3types.BucketLifecycleConfiguration{Rules: []s3types.LifecycleRule{{
			ID: aws.String("old-versions"), Status: s3types.ExpirationStatusEnabled,
			Filter: &s3types.LifecycleRuleFilter{Prefix: aws.String(p.res.Prefix)},
			NoncurrentVersionExpiration: &s3types.NoncurrentVersionExpiration{
				NoncurrentDays: aws.Int32(1), NewerNoncurrentVersions: aws.Int32(1)},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	key := p.res.Prefix + "versioned/dog.png"
	v1 := p.putVersion(t, key, 1, 210, 150)
	p.waitDoc(t, "the first version indexed", key, v1, 210, 150)
	v2 := p.putVersion(t, key, 2, 320, 200)
	v3 := p.putVersion(t, key, 3, 400, 300)
	p.waitDoc(t, "the third version indexed", key, v3, 400, 300)

	// Lifecycle expires v1 (v2 is the one noncurrent version kept): the live document stays.
	res, err := p.st.S3Server.RunLifecycle(ctx, time.Now().Add(72*time.Hour))
	if err != nil || res.Expired != 1 {
		t.Fatalf("lifecycle: %+v, %v: want v1 expired", res, err)
	}
	// Deleting the current version by its ID makes v2 current again: the index must show v2.
	p.deleteVersion(t, key, v3)
	p.waitDoc(t, "v2 indexed after the current version was deleted", key, v2, 320, 200)

	// A delete marker hides the object; deleting the marker brings v2 back.
	marker := p.deleteVersion(t, key, "")
	p.waitDoc(t, "no document behind a delete marker", key, "", 0, 0)
	p.deleteVersion(t, key, marker)
	p.waitDoc(t, "v2 indexed again once its delete marker is gone", key, v2, 320, 200)

	// The last version gone: no document.
	p.deleteVersion(t, key, v2)
	p.waitDoc(t, "no document once every version is gone", key, "", 0, 0)
}

// TestSuspendedBucketIndex: with versioning suspended, deleting the null version makes the
// version written while versioning was enabled current again.
func TestSuspendedBucketIndex(t *testing.T) {
	p := startPipeline(t, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	p.setVersioning(t, s3types.BucketVersioningStatusEnabled)
	key := p.res.Prefix + "suspended/cat.png"
	v1 := p.putVersion(t, key, 11, 230, 170)
	p.waitDoc(t, "the versioned write indexed", key, v1, 230, 170)
	p.setVersioning(t, s3types.BucketVersioningStatusSuspended)
	if v := p.putVersion(t, key, 12, 250, 190); v != "null" {
		t.Fatalf("write on a suspended bucket got version %q, want null", v)
	}
	p.waitDoc(t, "the null version indexed", key, "null", 250, 190)
	p.putVersion(t, key, 13, 270, 180) // replaces the null version
	p.waitDoc(t, "the new null version indexed", key, "null", 270, 180)
	p.deleteVersion(t, key, "null")
	p.waitDoc(t, "v1 indexed after the null version was deleted", key, v1, 230, 170)
}

// TestOverwriteByNonImage: an image overwritten by a non-image leaves no document and no
// thumbnail (the non-image goes to the DLQ with its reason), on an unversioned bucket and on a
// versioned one, where deleting the non-image's version brings the image back.
func TestOverwriteByNonImage(t *testing.T) {
	p := startPipeline(t, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	ctx := context.Background()
	thumbGone := func(what, thumb string) {
		t.Helper()
		stacktest.WaitFor(t, what, 2*time.Minute, func() (bool, string) {
			_, err := p.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(p.res.Bucket), Key: aws.String(thumb)})
			var nf *s3types.NotFound
			return errors.As(err, &nf), fmt.Sprintf("head: %v", err)
		})
	}
	text := []byte("plain text, not an image")
	for _, versioned := range []bool{false, true} {
		key := fmt.Sprintf("%soverwrite/versioned=%v.png", p.res.Prefix, versioned)
		if versioned {
			p.setVersioning(t, s3types.BucketVersioningStatusEnabled)
		}
		v1 := p.putVersion(t, key, 11, 210, 150)
		var thumb string
		stacktest.WaitFor(t, "the image indexed", 2*time.Minute, func() (bool, string) {
			d, err := p.store.Get(ctx, p.res.Bucket, key)
			if err != nil {
				return false, err.Error()
			}
			thumb = d.ThumbnailKey
			return d.VersionID == v1 && d.Width == 210 && d.Height == 150 && thumb != "", fmt.Sprintf("%+v", d)
		})
		if _, err := p.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(p.res.Bucket), Key: aws.String(thumb)}); err != nil {
			t.Fatalf("no thumbnail of the image: %v", err)
		}
		out, err := p.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(p.res.Bucket), Key: &key, Body: bytes.NewReader(text)})
		if err != nil {
			t.Fatal(err)
		}
		p.waitDoc(t, "no document once a non-image overwrote the image", key, "", 0, 0)
		thumbGone("the image's thumbnail removed", thumb)
		var dead map[string]failure.Details
		stacktest.WaitFor(t, "the non-image in the DLQ", time.Minute, func() (bool, string) {
			for k, d := range p.drainDLQ(t) {
				if dead == nil {
					dead = map[string]failure.Details{}
				}
				dead[k] = d
			}
			return dead[key].Reason != "", fmt.Sprintf("%v", dead)
		})
		if d := dead[key]; d.Reason != imagemeta.ReasonNotAnImage || d.Class != failure.Permanent {
			t.Errorf("dead letter %+v, want %s", d, imagemeta.ReasonNotAnImage)
		}
		if versioned {
			p.deleteVersion(t, key, aws.ToString(out.VersionId))
			p.waitDoc(t, "the image indexed again once the non-image's version is deleted", key, v1, 210, 150)
		}
	}
}
