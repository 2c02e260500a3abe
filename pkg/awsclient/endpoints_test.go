package awsclient_test

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"

	"imgpipe/internal/stacktest"
	"imgpipe/pkg/awsclient"
)

// describe is everything of an endpoint the SDK uses: its URI, headers and properties.
func describe(e smithyendpoints.Endpoint, err error) string {
	var props []string
	for k, v := range e.Properties.Values() {
		if opts, ok := v.([]*smithyauth.Option); ok {
			for _, o := range opts {
				props = append(props, fmt.Sprintf("auth %s %v %v", o.SchemeID, o.IdentityProperties.Values(), o.SignerProperties.Values()))
			}
			continue
		}
		props = append(props, fmt.Sprintf("%#v=%#v", k, v))
	}
	slices.Sort(props)
	return fmt.Sprintf("%s|%v|%v|%v", e.URI.String(), e.Headers, props, err)
}

// TestEndpointCacheSameAsSDK: over buckets, ARNs, regions, endpoints and every switch of the
// rule set, with the keys, prefixes and copy sources the calls vary, the cached resolver
// gives what the SDK's own rules give, on first resolve and from the cache.
func TestEndpointCacheSameAsSDK(t *testing.T) {
	rules := s3.NewDefaultEndpointResolverV2()
	cached, kept := awsclient.NewCachedEndpoints(rules)
	ctx := context.Background()
	yes, no := aws.Bool(true), aws.Bool(false)
	var params []s3.EndpointParameters
	for _, bucket := range []*string{nil, aws.String("images"), aws.String("with.dots.bucket"), aws.String("Bad_Bucket"),
		aws.String("arn:aws:s3:us-west-2:123456789012:accesspoint/ap"), aws.String("data--usw2-az1--x-s3")} {
		for _, region := range []*string{aws.String("us-east-1"), aws.String("eu-west-1"), aws.String("aws-global")} {
			for _, endpoint := range []*string{nil, aws.String("http://127.0.0.1:9000"), aws.String("https://s3.example.com/base")} {
				for _, sw := range []struct{ path, fips, dual, accel *bool }{{nil, nil, nil, nil}, {yes, no, no, no}, {no, yes, no, no}, {no, no, yes, no}, {no, no, no, yes}} {
					params = append(params, s3.EndpointParameters{Bucket: bucket, Region: region, Endpoint: endpoint,
						ForcePathStyle: sw.path, UseFIPS: sw.fips, UseDualStack: sw.dual, Accelerate: sw.accel})
				}
			}
		}
	}
	varied := 0
	for _, p := range params {
		for i, k := range []struct{ key, prefix, copy *string }{
			{aws.String("a.png"), nil, nil}, {aws.String("dir/x y+&=é.jpg"), nil, nil}, {nil, aws.String("thumbnail/images/"), nil},
			{aws.String("b"), nil, aws.String("other/src")}, {nil, nil, nil},
		} {
			p.Key, p.Prefix, p.CopySource = k.key, k.prefix, k.copy
			want := describe(rules.ResolveEndpoint(ctx, p))
			if got := describe(cached.ResolveEndpoint(ctx, p)); got != want {
				t.Fatalf("params %+v (variant %d):\n got %s\nwant %s", p, i, got, want)
			}
			varied++
		}
	}
	if n := kept(); n == 0 || n >= varied {
		t.Errorf("%d endpoints kept for %d resolves: want fewer kept than resolved, and some", n, varied)
	}
	// Every caller gets its own properties: a change to one leaves the next untouched.
	p := s3.EndpointParameters{Bucket: aws.String("images"), Region: aws.String("us-east-1")}
	e, err := cached.ResolveEndpoint(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	e.Properties.Set("changed", true)
	if again, _ := cached.ResolveEndpoint(ctx, p); again.Properties.Has("changed") {
		t.Error("a caller's change to the endpoint's properties reached the next caller")
	}
}

// TestEndpointCacheConcurrentCalls: a client of S3 with the cached resolver, called from
// many goroutines against the S3 stand-in (run with -race).
func TestEndpointCacheConcurrentCalls(t *testing.T) {
	st := stacktest.Get(t)
	client := awsclient.S3(st.AWSConfig(), &awsclient.Options{S3PathStyle: true, S3RangedReads: true})
	client = s3.New(client.Options(), func(o *s3.Options) { o.BaseEndpoint = aws.String(st.S3Endpoint) })
	ctx := context.Background()
	bucket := stacktest.Unique("epcache")
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				key := fmt.Sprintf("d%d/k %d+&.png", g, i)
				body := []byte(key)
				if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
					t.Error(err)
					return
				}
				out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Range: aws.String("bytes=0-99")})
				if err != nil {
					t.Error(err)
					return
				}
				var got bytes.Buffer
				_, _ = got.ReadFrom(out.Body)
				out.Body.Close()
				if !reflect.DeepEqual(got.Bytes(), body) {
					t.Errorf("%s read back as %q", key, got.Bytes())
				}
				list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(fmt.Sprintf("d%d/", g))})
				if err != nil || len(list.Contents) != i+1 {
					t.Errorf("list d%d/: %v objects, err %v; want %d", g, len(list.Contents), err, i+1)
				}
			}
		})
	}
	wg.Wait()
}
