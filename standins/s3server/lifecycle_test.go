package s3server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"imgpipe/standins/s3server"
)

func noncurrentRule(id, prefix string, days, keep int32) s3types.LifecycleRule {
	r := s3types.LifecycleRule{
		ID: aws.String(id), Status: s3types.ExpirationStatusEnabled,
		Filter:                      &s3types.LifecycleRuleFilter{Prefix: aws.String(prefix)},
		NoncurrentVersionExpiration: &s3types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(days)},
	}
	if keep > 0 {
		r.NoncurrentVersionExpiration.NewerNoncurrentVersions = aws.Int32(keep)
	}
	return r
}

func expirationRule(id, prefix string, days int32) s3types.LifecycleRule {
	return s3types.LifecycleRule{
		ID: aws.String(id), Status: s3types.ExpirationStatusEnabled,
		Filter:     &s3types.LifecycleRuleFilter{Prefix: aws.String(prefix)},
		Expiration: &s3types.LifecycleExpiration{Days: aws.Int32(days)},
	}
}

func putLifecycle(ctx context.Context, c *s3.Client, bucket string, rules ...s3types.LifecycleRule) error {
	_, err := c.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{
		Bucket: &bucket, LifecycleConfiguration: &s3types.BucketLifecycleConfiguration{Rules: rules},
	})
	return err
}

func TestLifecycleConfiguration(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, "")
	ctx := testCtx(t)
	if err := putLifecycle(ctx, e.s3, e.bucket, noncurrentRule("old-versions", "upload/", 1, 2), expirationRule("tmp", "tmp/", 7)); err != nil {
		t.Fatal(err)
	}
	got, err := e.s3.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: &e.bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Rules) != 2 || aws.ToString(got.Rules[0].ID) != "old-versions" || aws.ToString(got.Rules[0].Filter.Prefix) != "upload/" ||
		aws.ToInt32(got.Rules[0].NoncurrentVersionExpiration.NoncurrentDays) != 1 ||
		aws.ToInt32(got.Rules[0].NoncurrentVersionExpiration.NewerNoncurrentVersions) != 2 ||
		aws.ToInt32(got.Rules[1].Expiration.Days) != 7 || got.Rules[1].Status != s3types.ExpirationStatusEnabled {
		t.Errorf("configuration read back: %+v", got.Rules)
	}

	for _, tt := range []struct {
		name   string
		bucket string
		rule   s3types.LifecycleRule
		code   string
	}{
		{"transition", e.bucket, s3types.LifecycleRule{ID: aws.String("t"), Status: s3types.ExpirationStatusEnabled,
			Filter:      &s3types.LifecycleRuleFilter{Prefix: aws.String("")},
			Transitions: []s3types.Transition{{Days: aws.Int32(30), StorageClass: s3types.TransitionStorageClassGlacier}}}, "NotImplemented"},
		{"expired delete markers", e.bucket, s3types.LifecycleRule{ID: aws.String("m"), Status: s3types.ExpirationStatusEnabled,
			Filter:     &s3types.LifecycleRuleFilter{Prefix: aws.String("")},
			Expiration: &s3types.LifecycleExpiration{ExpiredObjectDeleteMarker: aws.Bool(true)}}, "NotImplemented"},
		{"tag filter", e.bucket, s3types.LifecycleRule{ID: aws.String("g"), Status: s3types.ExpirationStatusEnabled,
			Filter:     &s3types.LifecycleRuleFilter{Tag: &s3types.Tag{Key: aws.String("a"), Value: aws.String("b")}},
			Expiration: &s3types.LifecycleExpiration{Days: aws.Int32(1)}}, "NotImplemented"},
		{"zero days", e.bucket, noncurrentRule("z", "", 0, 0), "InvalidArgument"},
		{"no action", e.bucket, s3types.LifecycleRule{ID: aws.String("n"), Status: s3types.ExpirationStatusEnabled,
			Filter: &s3types.LifecycleRuleFilter{Prefix: aws.String("")}}, "InvalidArgument"},
		{"unknown bucket", "no-such-bucket-lc", expirationRule("x", "", 1), "NoSuchBucket"},
	} {
		if err := putLifecycle(ctx, e.s3, tt.bucket, tt.rule); errorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	// A refused configuration left the stored one alone.
	if got, err := e.s3.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: &e.bucket}); err != nil || len(got.Rules) != 2 {
		t.Errorf("after refused configurations: %v, %d rules", err, len(got.Rules))
	}

	if _, err := e.s3.DeleteBucketLifecycle(ctx, &s3.DeleteBucketLifecycleInput{Bucket: &e.bucket}); err != nil {
		t.Fatal(err)
	}
	_, err = e.s3.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: &e.bucket})
	if errorCode(err) != "NoSuchLifecycleConfiguration" {
		t.Errorf("get after delete: %v", err)
	}
}

// Noncurrent versions expire NoncurrentDays after they became noncurrent (rounded to the next
// midnight UTC, as S3 does), keeping NewerNoncurrentVersions; the current version stays, and
// each removal sends LifecycleExpiration:Delete with the version's ID.
func TestLifecycleNoncurrentExpiration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	ctx := testCtx(t)
	setVersioning(t, e.s3, e.bucket, s3types.BucketVersioningStatusEnabled)
	e.configure(t, queueConfig("all", e.qARN, []string{"s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"}))
	e.drain(t)
	if err := putLifecycle(ctx, e.s3, e.bucket, noncurrentRule("old", "upload/", 1, 0), noncurrentRule("keep", "keep/", 1, 1)); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, body := range []string{"v1", "v2", "v3"} {
		ids = append(ids, aws.ToString(e.put(t, "upload/a.jpg", body).VersionId))
	}
	var kept []string
	for _, body := range []string{"k1", "k2", "k3"} {
		kept = append(kept, aws.ToString(e.put(t, "keep/b.jpg", body).VersionId))
	}
	e.put(t, "other/c.jpg", "x1")
	e.put(t, "other/c.jpg", "x2")
	e.drain(t)

	srv := e.run.Server()
	if res, err := srv.RunLifecycle(ctx, time.Now()); err != nil || res != (s3server.LifecycleResult{}) {
		t.Fatalf("run now: %+v, %v: nothing is due yet", res, err)
	}
	res, err := srv.RunLifecycle(ctx, time.Now().Add(72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res.Expired != 3 || res.DeleteMarkers != 0 {
		t.Errorf("run in three days: %+v, want 3 expired (v1, v2 and k1)", res)
	}
	var got []string
	for _, r := range records(t, e.drain(t)) {
		if r.EventName != "LifecycleExpiration:Delete" || r.PrincipalID != "s3.amazonaws.com" || r.Sequencer == "" {
			t.Errorf("event %s by %q sequencer %q", r.EventName, r.PrincipalID, r.Sequencer)
		}
		got = append(got, r.Key+"@"+r.VersionID)
	}
	slices.Sort(got)
	want := []string{"keep/b.jpg@" + kept[0], "upload/a.jpg@" + ids[0], "upload/a.jpg@" + ids[1]}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	b := &s3Only{s3: e.s3, bucket: e.bucket}
	if body, v := b.mustGet(t, "upload/a.jpg", ""); body != "v3" || v != ids[2] {
		t.Errorf("current version after expiration: %q %q", body, v)
	}
	if v := b.versions(t, "keep/b.jpg"); !slices.Equal(v, []string{kept[2] + "*", kept[1]}) {
		t.Errorf("keep/ versions %q: the newest noncurrent one is kept", v)
	}
	if v := b.versions(t, "other/c.jpg"); len(v) != 2 {
		t.Errorf("other/ versions %q: no rule selects them", v)
	}
}

// Current versions expire Days after their creation: hidden behind a delete marker in a
// versioned bucket (LifecycleExpiration:DeleteMarkerCreated), deleted in an unversioned one
// (LifecycleExpiration:Delete without a version).
func TestLifecycleCurrentExpiration(t *testing.T) {
	t.Parallel()
	for _, versioned := range []bool{true, false} {
		e := newEnv(t, "")
		ctx := testCtx(t)
		if versioned {
			setVersioning(t, e.s3, e.bucket, s3types.BucketVersioningStatusEnabled)
		}
		e.configure(t, queueConfig("lc", e.qARN, []string{"s3:LifecycleExpiration:*"}))
		e.drain(t)
		if err := putLifecycle(ctx, e.s3, e.bucket, expirationRule("exp", "", 2)); err != nil {
			t.Fatal(err)
		}
		v1 := aws.ToString(e.put(t, "a.jpg", "x").VersionId)
		if res, err := e.run.Server().RunLifecycle(ctx, time.Now().Add(24*time.Hour)); err != nil || res != (s3server.LifecycleResult{}) {
			t.Fatalf("versioned %v: run after one day: %+v, %v", versioned, res, err)
		}
		res, err := e.run.Server().RunLifecycle(ctx, time.Now().Add(72*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		r := one(t, records(t, e.drain(t)))
		b := &s3Only{s3: e.s3, bucket: e.bucket}
		if versioned {
			if res.DeleteMarkers != 1 || r.EventName != "LifecycleExpiration:DeleteMarkerCreated" || r.VersionID == "" || r.VersionID == v1 {
				t.Errorf("versioned: %+v, event %s version %q", res, r.EventName, r.VersionID)
			}
			if body, _ := b.mustGet(t, "a.jpg", v1); body != "x" {
				t.Errorf("the expired version is kept behind the marker: %q", body)
			}
			// The marker is current: a second run adds nothing.
			if res, _ := e.run.Server().RunLifecycle(ctx, time.Now().Add(72*time.Hour)); res != (s3server.LifecycleResult{}) {
				t.Errorf("second run: %+v", res)
			}
		} else if res.Expired != 1 || r.EventName != "LifecycleExpiration:Delete" || r.VersionID != "" {
			t.Errorf("unversioned: %+v, event %s version %q", res, r.EventName, r.VersionID)
		}
		if _, _, err := b.get(t, "a.jpg", ""); errorCode(err) != "NoSuchKey" {
			t.Errorf("versioned %v: get after expiration: %v", versioned, err)
		}
	}
}

// POST /_standin/lifecycle runs expiration at the given time (for the local stack, where tests
// and operators have no Go handle on the stand-in).
func TestLifecycleAdminEndpoint(t *testing.T) {
	t.Parallel()
	e := newS3Only(t, s3types.BucketVersioningStatusEnabled)
	ctx := testCtx(t)
	if err := putLifecycle(ctx, e.s3, e.bucket, noncurrentRule("old", "", 1, 0)); err != nil {
		t.Fatal(err)
	}
	e.put(t, "k", "1")
	e.put(t, "k", "2")
	post := func(query string) (*http.Response, s3server.LifecycleResult) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.run.URL()+"/_standin/lifecycle"+query, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res s3server.LifecycleResult
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
				t.Fatal(err)
			}
		}
		return resp, res
	}
	if resp, _ := post("?at=tomorrow"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad time: status %d", resp.StatusCode)
	}
	if resp, res := post(""); resp.StatusCode != http.StatusOK || res.Expired != 0 {
		t.Errorf("run now: %d %+v", resp.StatusCode, res)
	}
	at := time.Now().UTC().Add(72 * time.Hour).Format(time.RFC3339)
	if resp, res := post("?at=" + at); resp.StatusCode != http.StatusOK || res.Expired != 1 {
		t.Errorf("run in three days: %d %+v", resp.StatusCode, res)
	}
	resp, err := http.Get(e.run.URL() + "/_standin/lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", resp.StatusCode)
	}
	if v := e.versions(t, "k"); len(v) != 1 || !strings.HasSuffix(v[0], "*") {
		t.Errorf("versions after the run: %q", v)
	}
}
