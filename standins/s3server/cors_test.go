package s3server

import (
	"context"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func preflight(t *testing.T, u, origin, method, headers string) *http.Response {
	t.Helper()
	h := http.Header{"Origin": {origin}, "Access-Control-Request-Method": {method}}
	if headers != "" {
		h.Set("Access-Control-Request-Headers", headers)
	}
	return send(t, "OPTIONS", u, h, nil)
}

// The bucket's CORS rules, and only they, decide preflights and the CORS headers of answers:
// gofakes3's allow-everything layer never shows.
func TestBucketCORS(t *testing.T) {
	ts, c, bucket := presignServer(t, nil)
	ctx := context.Background()
	obj := ts.URL + "/" + bucket + "/upload/x/a.png?X-Amz-Signature=whatever"
	const console = "http://127.0.0.1:8080"

	resp := preflight(t, obj, console, "PUT", "content-type")
	if code, _ := s3Error(t, resp); resp.StatusCode != 403 || code != "AccessForbidden" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight without a CORS configuration: %d %s, ACAO %q", resp.StatusCode, code, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if _, err := c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: &bucket}); apiCode(err) != "NoSuchCORSConfiguration" {
		t.Fatalf("GetBucketCors before any: %v", err)
	}

	_, err := c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: &bucket, CORSConfiguration: &s3types.CORSConfiguration{
		CORSRules: []s3types.CORSRule{{
			AllowedOrigins: []string{console}, AllowedMethods: []string{"PUT"},
			AllowedHeaders: []string{"content-type", "x-amz-meta-*"}, ExposeHeaders: []string{"ETag"}, MaxAgeSeconds: aws.Int32(600),
		}, {
			AllowedOrigins: []string{"https://*.example.com"}, AllowedMethods: []string{"GET", "HEAD"},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: &bucket})
	if err != nil || len(got.CORSRules) != 2 || got.CORSRules[0].AllowedOrigins[0] != console || aws.ToInt32(got.CORSRules[0].MaxAgeSeconds) != 600 {
		t.Fatalf("GetBucketCors: %v %+v", err, got)
	}

	resp = preflight(t, obj, console, "PUT", "Content-Type, X-Amz-Meta-Original-Name")
	h := resp.Header
	if resp.StatusCode != 200 || h.Get("Access-Control-Allow-Origin") != console || h.Get("Access-Control-Allow-Methods") != "PUT" ||
		h.Get("Access-Control-Allow-Headers") != "content-type, x-amz-meta-original-name" || h.Get("Access-Control-Max-Age") != "600" ||
		h.Get("Access-Control-Expose-Headers") != "ETag" {
		t.Fatalf("allowed preflight: %d %v", resp.StatusCode, h)
	}
	if resp := preflight(t, obj, "https://a.example.com", "GET", ""); resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://a.example.com" {
		t.Fatalf("wildcard origin: %d %v", resp.StatusCode, resp.Header)
	}
	for _, tc := range []struct{ name, origin, method, headers string }{
		{"other origin", "http://evil.test", "PUT", "content-type"},
		{"origin prefix only", console + ".evil.test", "PUT", ""},
		{"method not allowed", console, "DELETE", ""},
		{"header not allowed", console, "PUT", "content-type, authorization"},
		{"wildcard origin, other method", "https://a.example.com", "PUT", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := preflight(t, obj, tc.origin, tc.method, tc.headers)
			if code, _ := s3Error(t, resp); resp.StatusCode != 403 || code != "AccessForbidden" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("%d %s, ACAO %q", resp.StatusCode, code, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		})
	}

	// Answers to real requests carry the rule's headers for an allowed origin and method only.
	put := func(origin string) *http.Response {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return send(t, "PUT", ts.URL+"/"+bucket+"/upload/x/b.png", h, []byte("data"))
	}
	if resp := put(console); resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != console || resp.Header.Get("Access-Control-Expose-Headers") != "ETag" {
		t.Fatalf("PUT from the allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	for _, origin := range []string{"http://evil.test", ""} {
		if resp := put(origin); resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("PUT from %q carries ACAO %q", origin, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}

	if _, err := c.DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	if resp := preflight(t, obj, console, "PUT", ""); resp.StatusCode != 403 {
		t.Fatalf("preflight after DeleteBucketCors: %d", resp.StatusCode)
	}
}

func TestBucketCORSRejectsBadRules(t *testing.T) {
	ts, c, bucket := presignServer(t, nil)
	for _, tc := range []struct {
		name string
		rule s3types.CORSRule
		code string
	}{
		{"unsupported method", s3types.CORSRule{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"PATCH"}}, "InvalidRequest"},
		{"two wildcards", s3types.CORSRule{AllowedOrigins: []string{"http://*.*.test"}, AllowedMethods: []string{"GET"}}, "InvalidRequest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.PutBucketCors(context.Background(), &s3.PutBucketCorsInput{Bucket: &bucket,
				CORSConfiguration: &s3types.CORSConfiguration{CORSRules: []s3types.CORSRule{tc.rule}}})
			if apiCode(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
	// The SDK refuses a rule without an origin itself; a raw request reaches the stand-in.
	for _, body := range []string{
		`<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>`,
		`<CORSConfiguration></CORSConfiguration>`,
		`<CORSConfiguration><CORSRule>`,
	} {
		resp := send(t, "PUT", ts.URL+"/"+bucket+"?cors", nil, []byte(body))
		if code, _ := s3Error(t, resp); resp.StatusCode != 400 || code != "MalformedXML" {
			t.Errorf("%s: %d %s, want 400 MalformedXML", body, resp.StatusCode, code)
		}
	}
	missing := "no-such-bucket"
	if _, err := c.GetBucketCors(context.Background(), &s3.GetBucketCorsInput{Bucket: &missing}); apiCode(err) != "NoSuchBucket" {
		t.Fatalf("GetBucketCors of a missing bucket: %v", err)
	}
}
