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

// notRead are the fields of s3.EndpointParameters the S3 rule set never reads: the cache
// leaves them out of its key. Every other field is part of the key.
var notRead = []string{"Key", "Prefix", "CopySource"}

// switches returns, for each *bool field of s3.EndpointParameters, a function that sets it.
func switches(t *testing.T) map[string]func(*s3.EndpointParameters, *bool) {
	t.Helper()
	out := map[string]func(*s3.EndpointParameters, *bool){}
	typ := reflect.TypeFor[s3.EndpointParameters]()
	for f := range typ.Fields() {
		if f.Type == reflect.TypeFor[*bool]() {
			out[f.Name] = func(p *s3.EndpointParameters, v *bool) {
				reflect.ValueOf(p).Elem().FieldByIndex(f.Index).Set(reflect.ValueOf(v))
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("s3.EndpointParameters has no *bool fields")
	}
	return out
}

// TestEndpointCacheSameAsSDK: over buckets (access point, multi-region access point and S3
// Express ones among them), regions, endpoints and each switch of the rule set set on its own
// (true, false, unset), with the keys, prefixes and copy sources the calls vary, the cached
// resolver gives what the SDK's own rules give, on first resolve and from the cache.
func TestEndpointCacheSameAsSDK(t *testing.T) {
	rules := s3.NewDefaultEndpointResolverV2()
	ctx := context.Background()
	sets := switches(t)
	// One cache per bucket, region and endpoint: far below the cache's bound, so every
	// variant of the switches is kept and a key that confused two of them would show.
	var groups [][]s3.EndpointParameters
	for _, bucket := range []*string{nil, aws.String("images"), aws.String("with.dots.bucket"), aws.String("Bad_Bucket"),
		aws.String("arn:aws:s3:us-west-2:123456789012:accesspoint/ap"), aws.String("arn:aws:s3::123456789012:accesspoint:mfzwi23gnjvgw.mrap"),
		aws.String("data--usw2-az1--x-s3")} {
		for _, region := range []*string{aws.String("us-east-1"), aws.String("eu-west-1"), aws.String("aws-global")} {
			for _, endpoint := range []*string{nil, aws.String("http://127.0.0.1:9000"), aws.String("https://s3.example.com/base")} {
				base := s3.EndpointParameters{Bucket: bucket, Region: region, Endpoint: endpoint}
				group := []s3.EndpointParameters{base}
				for _, set := range sets {
					for _, v := range []*bool{aws.Bool(true), aws.Bool(false)} {
						p := base
						set(&p, v)
						group = append(group, p)
					}
				}
				groups = append(groups, group)
			}
		}
	}
	varied, allKept := 0, 0
	for _, group := range groups {
		cached, kept := awsclient.NewCachedEndpoints(rules)
		for _, p := range group {
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
		allKept += kept()
	}
	if allKept == 0 || allKept >= varied {
		t.Errorf("%d endpoints kept for %d resolves: want fewer kept than resolved, and some", allKept, varied)
	}
	cached, _ := awsclient.NewCachedEndpoints(rules)
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
	// Down to the auth options, which the SDK's signing middlewares change per call.
	opts, ok := smithyauth.GetAuthOptions(&e.Properties)
	if !ok || len(opts) == 0 {
		t.Fatalf("no auth options on the endpoint for %+v", p)
	}
	opts[0].SignerProperties.Set("changed", true)
	again, _ := cached.ResolveEndpoint(ctx, p)
	if opts, _ := smithyauth.GetAuthOptions(&again.Properties); len(opts) == 0 || opts[0].SignerProperties.Has("changed") {
		t.Error("a caller's change to an auth option's signer properties reached the next caller")
	}
}

// TestEndpointCacheKeyCoversEveryParameter: each field of s3.EndpointParameters (read by
// reflection, so a field a later SDK adds is covered) is either part of the cache's key (set
// on its own, it makes a new entry) or one of notRead (it makes none).
func TestEndpointCacheKeyCoversEveryParameter(t *testing.T) {
	ctx := context.Background()
	base := s3.EndpointParameters{Bucket: aws.String("images"), Region: aws.String("us-east-1")}
	// Values that resolve without error, for the string fields; a new one uses the fallback.
	texts := map[string]string{"Bucket": "other", "Region": "eu-west-1", "Endpoint": "http://127.0.0.1:9000"}
	typ := reflect.TypeFor[s3.EndpointParameters]()
	for f := range typ.Fields() {
		var values []reflect.Value
		switch f.Type {
		case reflect.TypeFor[*bool]():
			values = []reflect.Value{reflect.ValueOf(aws.Bool(true)), reflect.ValueOf(aws.Bool(false))}
		case reflect.TypeFor[*string]():
			text, ok := texts[f.Name]
			if !ok {
				text = "a"
			}
			values = []reflect.Value{reflect.ValueOf(aws.String(text))}
		default:
			t.Errorf("field %s has type %s: the cache's key does not know it", f.Name, f.Type)
			continue
		}
		inKey := !slices.Contains(notRead, f.Name)
		resolved := 0
		for _, v := range values {
			cached, kept := awsclient.NewCachedEndpoints(s3.NewDefaultEndpointResolverV2())
			if _, err := cached.ResolveEndpoint(ctx, base); err != nil {
				t.Fatal(err)
			}
			p := base
			reflect.ValueOf(&p).Elem().FieldByIndex(f.Index).Set(v)
			if _, err := cached.ResolveEndpoint(ctx, p); err != nil {
				continue // errors are not kept: this value tells nothing
			}
			resolved++
			if got := kept(); inKey && got != 2 {
				t.Errorf("%s = %v: %d endpoints kept, want 2 (the field must be part of the cache's key)", f.Name, v.Elem(), got)
			} else if !inKey && got != 1 {
				t.Errorf("%s = %v: %d endpoints kept, want 1 (the rules never read it)", f.Name, v.Elem(), got)
			}
		}
		if resolved == 0 {
			t.Errorf("field %s: no value tried resolves; give it one in texts", f.Name)
		}
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
