package console_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/internal/stacktest"
	"imgpipe/pkg/console"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/record"
	"imgpipe/pkg/uploader"
)

func permanent(reason string) error { return failure.Permanentf(reason, "%s (test)", reason) }

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return "?" + v.Encode()
}

// Every route the console serves is in openapi.yaml and every operation there is served.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, err := spec()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, nil)
	served := map[string]bool{"GET /assets/{file}": true}
	for _, r := range e.srv.Routes() {
		served[r.Method+" "+r.Path] = true
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	for r := range served {
		if !documented[r] {
			t.Errorf("%s is served but not in openapi.yaml", r)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("%s is in openapi.yaml but not served", r)
		}
	}
	// And each documented GET without required parameters answers as documented (readiness
	// once the emulator has warmed up: its first answer may be slow on a busy machine).
	stacktest.WaitFor(t, "/readyz", time.Minute, func() (bool, string) {
		r := e.do(t, "GET", "/readyz", nil)
		return r.StatusCode == 200, string(r.body)
	})
	for _, path := range []string{"/", "/assets/app.js", "/assets/style.css", "/assets/placeholder.svg", "/healthz",
		"/api/v1/openapi.yaml", "/api/v1/info", "/api/v1/images", "/api/v1/pipeline"} {
		if r := e.do(t, "GET", path, nil); r.StatusCode != 200 {
			t.Errorf("GET %s: %d", path, r.StatusCode)
		}
	}
}

// The read side of the API over a real index, S3 bucket and dead-letter queues.
func TestImagesAnalysisStatusAndPipeline(t *testing.T) {
	// One fixed instant for the index and the console: the five documents count as indexed
	// in the last minute however long the test takes on a busy machine.
	start := time.Now()
	clock := func() time.Time { return start }
	e := newEnv(t, func(o *console.Options) { o.Now = clock })
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	prefix := e.res.Prefix
	keys := []string{prefix + "a/cat.png", prefix + "b/cat and dog.png", prefix + "c/dog.png", prefix + "d/ünï+cødé&=.png", prefix + "e/cat.png"}
	for i, k := range keys {
		tags := []string{"cat"}
		if strings.Contains(k, "dog") {
			tags = append(tags, "dog")
		}
		e.putObject(t, k, []byte("png bytes of "+k))
		e.indexed(t, k, t0.Add(time.Duration(i)*time.Minute), tags...)
	}

	// Newest first, in pages that neither repeat nor skip.
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		path := "/api/v1/images" + q("limit", "2")
		if cursor != "" {
			path = "/api/v1/images" + q("limit", "2", "cursor", cursor)
		}
		var p console.ImagePage
		e.do(t, "GET", path, nil).decode(t, &p)
		for _, img := range p.Images {
			got = append(got, img.Key)
			if img.ImageURL != "" || img.ThumbnailURL != "" {
				t.Errorf("%s: a list carries no image URL and, without a thumbnail key, no thumbnail URL: %+v", img.Key, img)
			}
		}
		if p.Next == "" {
			break
		}
		if page > 5 {
			t.Fatal("the cursor does not advance")
		}
		cursor = p.Next
	}
	want := slices.Clone(keys)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("images %v, want %v", got, want)
	}

	// By tag.
	var dogs console.ImagePage
	e.do(t, "GET", "/api/v1/images"+q("tag", "dog"), nil).decode(t, &dogs)
	if len(dogs.Images) != 2 || dogs.Images[0].Key != keys[2] || dogs.Images[1].Key != keys[1] || dogs.Next != "" {
		t.Fatalf("dogs: %+v", dogs)
	}
	if r := e.do(t, "GET", "/api/v1/images"+q("tag", "cat", "cursor", cursor), nil); r.StatusCode != 400 || r.errorCode(t) != console.CodeInvalidCursor {
		t.Fatalf("a cursor of another listing: %d %s", r.StatusCode, r.body)
	}

	// One object's analysis, with a presigned URL that fetches exactly that object from S3.
	odd := keys[3]
	var img console.Image
	r := e.do(t, "GET", "/api/v1/analysis"+q("bucket", e.res.Bucket, "key", odd), nil)
	r.decode(t, &img)
	if r.StatusCode != 200 || img.Key != odd || img.Name != "ünï+cødé&=.png" || img.Width != 320 || len(img.Tags) != 1 || img.Tags[0].Name != "cat" || img.Caption == "" {
		t.Fatalf("analysis: %d %+v", r.StatusCode, img)
	}
	resp, err := http.Get(img.ImageURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "png bytes of "+odd {
		t.Fatalf("GET imageUrl: %d %q", resp.StatusCode, body)
	}
	if r := e.do(t, "GET", "/api/v1/analysis"+q("bucket", e.res.Bucket, "key", prefix+"never.png"), nil); r.StatusCode != 404 || r.errorCode(t) != console.CodeNotIndexed {
		t.Fatalf("analysis of an unknown key: %d %s", r.StatusCode, r.body)
	}

	// Upload status: indexed, failed (SQS DLQ, and Pub/Sub dead letters), pending in S3 or not.
	failedKey, deadKey, pendingKey := prefix+"f/notes.jpg", prefix+"g/bad-record.png", prefix+"h/waiting.gif"
	e.putObject(t, failedKey, []byte("This is not an image."))
	e.putObject(t, pendingKey, []byte("GIF89a"))
	e.deadLetter(t, failedKey, "NotAnImage")
	e.deadLetter(t, prefix+"f/other.jpg", "NotAnImage")
	e.deadLetter(t, prefix+"f/small.png", "InvalidImageSize")
	e.pubsubDeadLetter(t, deadKey)
	var st console.StatusList
	statusKeys := []string{keys[0], failedKey, deadKey, pendingKey, prefix + "never/sent.png"}
	e.do(t, "POST", "/api/v1/uploads/status", console.StatusRequest{Keys: statusKeys}).decode(t, &st)
	if len(st.Uploads) != len(statusKeys) {
		t.Fatalf("statuses: %+v", st)
	}
	for i, w := range []struct {
		state, reason string
		inS3          bool
	}{{"indexed", "", true}, {"failed", "NotAnImage", true}, {"failed", uploader.ReasonRedriven, false}, {"pending", "", true}, {"pending", "", false}} {
		u := st.Uploads[i]
		reason := ""
		if u.Failure != nil {
			reason = u.Failure.Reason
		}
		if u.Key != statusKeys[i] || u.State != w.state || reason != w.reason || u.InS3 != w.inS3 {
			t.Errorf("%s: %s %q inS3=%v, want %s %q %v", statusKeys[i], u.State, reason, u.InS3, w.state, w.reason, w.inS3)
		}
	}
	if im := st.Uploads[0].Image; im == nil || im.Key != keys[0] || len(im.Tags) != 1 {
		t.Errorf("indexed upload without its image: %+v", st.Uploads[0])
	}

	// The pipeline: queue depth, dead letters by reason, throughput.
	if _, err := e.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &e.res.QueueURL, MessageBody: aws.String("{}")}); err != nil {
		t.Fatal(err)
	}
	var p console.Pipeline
	e.do(t, "GET", "/api/v1/pipeline", nil).decode(t, &p)
	// The bucket's own test event (s3:TestEvent) is on the queue too.
	if p.Queue == nil || p.Queue.Name != queueName(e.res.QueueURL) || p.Queue.Depth == nil || p.Queue.Depth.Visible < 1 || p.Queue.OldestAgeSeconds != nil {
		t.Fatalf("queue: %+v", p.Queue)
	}
	if len(p.DeadLetters) != 2 {
		t.Fatalf("dead letters: %+v", p.DeadLetters)
	}
	sqsDL, psDL := p.DeadLetters[0], p.DeadLetters[1]
	if sqsDL.Kind != "sqs" || sqsDL.Messages != 3 || !sqsDL.Complete || sqsDL.Depth == nil || sqsDL.Depth.Visible+sqsDL.Depth.NotVisible != 3 ||
		len(sqsDL.ByReason) != 2 || sqsDL.ByReason[0].Value != "NotAnImage" || sqsDL.ByReason[0].Count != 2 || sqsDL.Oldest == nil {
		t.Errorf("SQS dead letters: %+v", sqsDL)
	}
	if psDL.Kind != "pubsub" || psDL.Messages != 1 || !psDL.Complete || psDL.Depth != nil {
		t.Errorf("Pub/Sub dead letters: %+v", psDL)
	}
	tp := p.Throughput
	if tp.Error != nil || tp.LastMinute == nil || *tp.LastMinute != 5 || *tp.Last15Minutes != 5 || tp.PerMinute5Min == nil || *tp.PerMinute5Min != 1 {
		t.Errorf("throughput (5 documents just indexed): %+v", tp)
	}
}

func queueName(u string) string { return u[strings.LastIndex(u, "/")+1:] }

// pubsubDeadLetter publishes an analysis record of key to the dead-letter topic, as the
// indexer's dead-letter policy does with a record it can never index.
func (e *env) pubsubDeadLetter(t *testing.T, key string) {
	t.Helper()
	rec := &record.Analysis{SchemaVersion: record.SchemaVersion, Event: record.Created, Bucket: e.res.Bucket, Key: key, EventTime: time.Now()}
	data, err := record.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.ps.TopicAdminClient.Publish(context.Background(), &pubsubpb.PublishRequest{
		Topic: e.res.DeadLetterTopicName, Messages: []*pubsubpb.PubsubMessage{{Data: data, Attributes: rec.Attributes()}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A browser upload: the console signs, the client PUTs straight to S3, and S3 (the stand-in,
// which verifies presigned URLs) takes exactly the signed file and nothing else.
func TestPresignedUpload(t *testing.T) {
	e := newEnv(t, func(o *console.Options) { o.MaxUploadBytes = 1000 })
	body := bytes.Repeat([]byte("x"), 600)
	var up console.Upload
	r := e.do(t, "POST", "/api/v1/uploads", console.UploadRequest{Name: "../../etc/holiday photo.png", Size: int64(len(body)), Type: "image/png"})
	r.decode(t, &up)
	if r.StatusCode != 201 || up.Method != "PUT" || !strings.HasPrefix(up.Key, e.res.Prefix) || !strings.HasSuffix(up.Key, "/holiday photo.png") ||
		strings.Contains(up.Key, "..") || up.Headers["Content-Type"] != "image/png" || up.ExpiresAt.Before(time.Now()) {
		t.Fatalf("upload: %d %+v", r.StatusCode, up)
	}
	put := func(b []byte, header map[string]string) int { return putSigned(t, up, b, header) }
	// More bytes than signed, or another type, are refused by S3 itself.
	if code := put(append(slices.Clone(body), body...), up.Headers); code != 403 {
		t.Fatalf("PUT of twice the signed size: %d", code)
	}
	other := map[string]string{}
	for k, v := range up.Headers {
		other[k] = v
	}
	other["Content-Type"] = "text/html"
	if code := put(body, other); code != 403 {
		t.Fatalf("PUT as text/html: %d", code)
	}
	if code := put(body, up.Headers); code != 200 {
		t.Fatalf("PUT as signed: %d", code)
	}
	head, err := e.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &e.res.Bucket, Key: &up.Key})
	if err != nil {
		t.Fatal(err)
	}
	name, _ := uploader.DecodeName(head.Metadata[uploader.MetaOriginalName])
	if aws.ToInt64(head.ContentLength) != 600 || aws.ToString(head.ContentType) != "image/png" || name != "holiday photo.png" ||
		!strings.HasPrefix(head.Metadata[uploader.MetaUploader], "imgpipe-console/") {
		t.Fatalf("stored object: %d bytes, %s, metadata %v", aws.ToInt64(head.ContentLength), aws.ToString(head.ContentType), head.Metadata)
	}
	// The bucket's notification reached the pipeline's queue.
	stacktest.WaitFor(t, "the upload's event on the queue", 30*time.Second, func() (bool, string) {
		out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.res.QueueURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			if strings.Contains(aws.ToString(m.Body), url.QueryEscape(up.Key)) || strings.Contains(aws.ToString(m.Body), strings.ReplaceAll(url.QueryEscape(up.Key), "%2F", "/")) {
				return true, ""
			}
		}
		return false, "not yet"
	})

	// Two uploads of one name get two keys.
	var again console.Upload
	e.do(t, "POST", "/api/v1/uploads", console.UploadRequest{Name: "../../etc/holiday photo.png", Size: 10, Type: "image/png"}).decode(t, &again)
	if again.Key == up.Key || !strings.HasSuffix(again.Key, "/holiday photo.png") {
		t.Fatalf("second upload of the same name: %q and %q", up.Key, again.Key)
	}

	for _, tc := range []struct {
		name   string
		req    console.UploadRequest
		status int
		code   string
	}{
		{"over the limit", console.UploadRequest{Name: "big.jpg", Size: 1001, Type: "image/jpeg"}, 413, console.CodeTooLarge},
		{"not an image type", console.UploadRequest{Name: "page.html", Size: 10, Type: "text/html"}, 415, console.CodeUnsupportedType},
		{"no type", console.UploadRequest{Name: "x.heic", Size: 10}, 415, console.CodeUnsupportedType},
		{"empty file", console.UploadRequest{Name: "empty.jpg", Size: 0, Type: "image/jpeg"}, 400, console.CodeEmptyFile},
		{"negative size", console.UploadRequest{Name: "neg.jpg", Size: -5, Type: "image/jpeg"}, 400, console.CodeBadRequest},
		{"no name", console.UploadRequest{Name: "  ", Size: 5, Type: "image/jpeg"}, 400, console.CodeInvalidName},
		{"name too long", console.UploadRequest{Name: strings.Repeat("n", 1025) + ".jpg", Size: 5, Type: "image/jpeg"}, 400, console.CodeInvalidName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", "/api/v1/uploads", tc.req)
			if r.StatusCode != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("%d %s, want %d %s", r.StatusCode, r.body, tc.status, tc.code)
			}
		})
	}
}

// putSigned sends body to a signed upload's URL with header, as the browser does, and returns
// S3's status.
func putSigned(t *testing.T, up console.Upload, body []byte, header map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest(up.Method, up.URL, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Hostile and malformed requests get a 4xx with a JSON error naming the problem.
func TestHostileRequests(t *testing.T) {
	e := newEnv(t, nil)
	b := e.res.Bucket
	long := strings.Repeat("k", 1025)
	manyKeys := make([]string, console.MaxStatusKeys+1)
	for i := range manyKeys {
		manyKeys[i] = e.res.Prefix + "k.png"
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		header             []string
		status             int
		code               string
	}{
		{"traversal in key", "GET", "/api/v1/analysis" + q("bucket", b, "key", "upload/../../other-bucket/x.png"), nil, nil, 400, console.CodeInvalidKey},
		{"dot segment in key", "GET", "/api/v1/analysis" + q("bucket", b, "key", "upload/./x.png"), nil, nil, 400, console.CodeInvalidKey},
		{"leading slash", "GET", "/api/v1/analysis" + q("bucket", b, "key", "/upload/x.png"), nil, nil, 400, console.CodeInvalidKey},
		{"control character in key", "GET", "/api/v1/analysis" + q("bucket", b, "key", "upload/\x00x.png"), nil, nil, 400, console.CodeInvalidKey},
		{"key not UTF-8", "GET", "/api/v1/analysis?bucket=" + b + "&key=upload%2F%FF.png", nil, nil, 400, console.CodeInvalidKey},
		{"key too long", "GET", "/api/v1/analysis" + q("bucket", b, "key", long), nil, nil, 400, console.CodeInvalidKey},
		{"no key", "GET", "/api/v1/analysis" + q("bucket", b), nil, nil, 400, console.CodeInvalidKey},
		{"bad bucket name", "GET", "/api/v1/analysis" + q("bucket", "../etc", "key", "k"), nil, nil, 400, console.CodeInvalidBucket},
		{"another bucket", "GET", "/api/v1/analysis" + q("bucket", "someone-elses", "key", "k"), nil, nil, 404, console.CodeUnknownBucket},
		{"repeated key", "GET", "/api/v1/analysis" + q("bucket", b, "key", "a", "key", "b"), nil, nil, 400, console.CodeBadRequest},
		{"bad cursor", "GET", "/api/v1/images" + q("cursor", "not-a-cursor"), nil, nil, 400, console.CodeInvalidCursor},
		{"forged cursor", "GET", "/api/v1/images" + q("cursor", "eyJhIjoiMjAyNi0wMS0wMVQwMDowMDowMFoiLCJkIjoiLi4vLi4ifQ"), nil, nil, 400, console.CodeInvalidCursor},
		{"limit zero", "GET", "/api/v1/images" + q("limit", "0"), nil, nil, 400, console.CodeInvalidLimit},
		{"limit over the maximum", "GET", "/api/v1/images" + q("limit", "101"), nil, nil, 400, console.CodeInvalidLimit},
		{"limit not a number", "GET", "/api/v1/images" + q("limit", "1e9"), nil, nil, 400, console.CodeInvalidLimit},
		{"tag with control characters", "GET", "/api/v1/images" + q("tag", "cat\n"), nil, nil, 400, console.CodeInvalidTag},
		{"bad JSON", "POST", "/api/v1/uploads", `{"name": "a.png", "size": `, nil, 400, console.CodeBadRequest},
		{"wrong JSON types", "POST", "/api/v1/uploads", `{"name": 7, "size": "big", "type": true}`, nil, 400, console.CodeBadRequest},
		{"unknown field", "POST", "/api/v1/uploads", `{"name": "a.png", "size": 5, "type": "image/png", "key": "upload/mine.png"}`, nil, 400, console.CodeBadRequest},
		{"two JSON values", "POST", "/api/v1/uploads", `{"name": "a.png", "size": 5, "type": "image/png"} {}`, nil, 400, console.CodeBadRequest},
		{"huge body", "POST", "/api/v1/uploads", `{"name": "` + strings.Repeat("a", 20<<10) + `", "size": 5, "type": "image/png"}`, nil, 413, console.CodeBodyTooLarge},
		{"not JSON", "POST", "/api/v1/uploads", `name=a.png`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, console.CodeUnsupportedMedia},
		{"no keys", "POST", "/api/v1/uploads/status", console.StatusRequest{}, nil, 400, console.CodeBadRequest},
		{"too many keys", "POST", "/api/v1/uploads/status", console.StatusRequest{Keys: manyKeys}, nil, 400, console.CodeTooManyKeys},
		{"traversal in a status key", "POST", "/api/v1/uploads/status", console.StatusRequest{Keys: []string{"upload/ok.png", "../x"}}, nil, 400, console.CodeInvalidKey},
		{"wrong method", "DELETE", "/api/v1/images", nil, nil, 405, console.CodeMethodNotAllowed},
		{"GET of a POST route", "GET", "/api/v1/uploads", nil, nil, 405, console.CodeMethodNotAllowed},
		{"POST to the page", "POST", "/", "{}", nil, 405, console.CodeMethodNotAllowed},
		{"unknown API route", "GET", "/api/v1/secrets", nil, nil, 404, console.CodeNotFound},
		{"unknown version", "GET", "/api/v2/images", nil, nil, 404, console.CodeNotFound},
		{"asset path traversal", "GET", "/assets/../api/v1/openapi.yaml", nil, nil, 404, ""},
		{"asset directory", "GET", "/assets/", nil, nil, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r *response
			if tc.code == "" {
				r = e.raw(t, tc.method, tc.path)
			} else {
				r = e.do(t, tc.method, tc.path, tc.body, tc.header...)
			}
			if r.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, tc.status, truncate(r.body))
			}
			if tc.code != "" {
				if got := r.errorCode(t); got != tc.code {
					t.Fatalf("code %s, want %s: %s", got, tc.code, r.body)
				}
			}
			if tc.status == 405 && r.Header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}
}

// raw sends a request without the spec check, for paths outside the API (assets).
func (e *env) raw(t *testing.T, method, path string) *response {
	t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path // send the path as written, ".." included
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{resp, b}
}

// Every answer carries the security headers; the page's CSP allows no inline script and names
// S3's origin for the images and uploads.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/", "/assets/app.js", "/api/v1/info", "/api/v1/nope", "/healthz"} {
		r := e.raw(t, "GET", path)
		h := r.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "connect-src 'self' " + e.srv.S3Origin(), "img-src 'self' data: " + e.srv.S3Origin()} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q allows something unsafe", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Request-Id") == "" {
			t.Errorf("%s: headers %v", path, h)
		}
		if strings.HasPrefix(path, "/api/") && h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", path, h.Get("Cache-Control"))
		}
	}
	if e.srv.S3Origin() != e.st.S3Endpoint {
		t.Errorf("S3 origin %q, want the stand-in's %q", e.srv.S3Origin(), e.st.S3Endpoint)
	}
}

// Without configured origins no cross-origin caller gets CORS headers, and one that would
// change something is refused; a configured origin gets its preflight answered.
func TestCORS(t *testing.T) {
	up := console.UploadRequest{Name: "a.png", Size: 5, Type: "image/png"}
	e := newEnv(t, nil)
	if r := e.do(t, "POST", "/api/v1/uploads", up, "Origin", "http://evil.test"); r.StatusCode != 403 || r.errorCode(t) != console.CodeCrossOriginDenied {
		t.Fatalf("cross-origin POST: %d %s", r.StatusCode, r.body)
	}
	if r := e.do(t, "GET", "/api/v1/info", nil, "Origin", "http://evil.test"); r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("cross-origin GET: %d, ACAO %q", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
	}
	if r := e.do(t, "OPTIONS", "/api/v1/uploads", nil, "Origin", "http://evil.test", "Access-Control-Request-Method", "POST"); r.StatusCode != 403 {
		t.Fatalf("preflight: %d", r.StatusCode)
	}
	same := "http://" + strings.TrimPrefix(e.ts.URL, "http://")
	if r := e.do(t, "POST", "/api/v1/uploads", up, "Origin", same); r.StatusCode != 201 {
		t.Fatalf("same-origin POST with an Origin: %d %s", r.StatusCode, r.body)
	}

	const friend = "https://dashboard.example.com"
	e = newEnv(t, func(o *console.Options) { o.CORSOrigins = []string{friend} })
	r := e.raw(t, "OPTIONS", "/api/v1/uploads")
	if r.StatusCode == 204 {
		t.Fatal("OPTIONS without Origin answered as a preflight")
	}
	req, _ := http.NewRequest("OPTIONS", e.ts.URL+"/api/v1/uploads", nil)
	req.Header.Set("Origin", friend)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != friend || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight of a configured origin: %d %v", resp.StatusCode, resp.Header)
	}
	if r := e.do(t, "POST", "/api/v1/uploads", up, "Origin", friend); r.StatusCode != 201 || r.Header.Get("Access-Control-Allow-Origin") != friend {
		t.Fatalf("POST of a configured origin: %d %v", r.StatusCode, r.Header)
	}
}

// The dead-letter queues are scanned once per refresh however many requests ask.
func TestDeadLetterScanIsShared(t *testing.T) {
	e := newEnv(t, func(o *console.Options) { o.DLQRefresh = time.Hour })
	key := e.res.Prefix + "x/bad.jpg"
	e.deadLetter(t, key, "NotAnImage")
	for range 5 {
		var st console.StatusList
		e.do(t, "POST", "/api/v1/uploads/status", console.StatusRequest{Keys: []string{key}}).decode(t, &st)
		if st.Uploads[0].State != "failed" {
			t.Fatalf("status %+v", st.Uploads[0])
		}
		e.do(t, "GET", "/api/v1/pipeline", nil)
	}
	out, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &e.res.DLQURL, WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v %d", err, len(out.Messages))
	}
	if n := out.Messages[0].Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]; n != "2" {
		t.Fatalf("the dead letter was received %s times: want one scan, then this receive", n)
	}
}

// AllowUploads sets the console's CORS rule, replacing its own earlier one and keeping the
// bucket's other rules; S3 then answers the browser's preflight for a presigned PUT.
func TestAllowUploads(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	other := s3types.CORSRule{ID: aws.String("someone-else"), AllowedOrigins: []string{"https://other.example"}, AllowedMethods: []string{"GET"}}
	if _, err := e.s3.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: &e.res.Bucket, CORSConfiguration: &s3types.CORSConfiguration{CORSRules: []s3types.CORSRule{other}}}); err != nil {
		t.Fatal(err)
	}
	for _, origin := range []string{"http://old.example:8080", e.ts.URL} {
		if err := console.AllowUploads(ctx, e.s3, e.res.Bucket, origin); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.s3.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: &e.res.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.CORSRules) != 2 || aws.ToString(got.CORSRules[0].ID) != "someone-else" || !slices.Equal(got.CORSRules[1].AllowedOrigins, []string{e.ts.URL}) {
		t.Fatalf("rules %+v", got.CORSRules)
	}
	var up console.Upload
	e.do(t, "POST", "/api/v1/uploads", console.UploadRequest{Name: "a.png", Size: 5, Type: "image/png"}).decode(t, &up)
	var names []string
	for k := range up.Headers {
		names = append(names, strings.ToLower(k))
	}
	req, _ := http.NewRequest("OPTIONS", up.URL, nil)
	req.Header.Set("Origin", e.ts.URL)
	req.Header.Set("Access-Control-Request-Method", "PUT")
	req.Header.Set("Access-Control-Request-Headers", strings.Join(names, ","))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != e.ts.URL {
		t.Fatalf("preflight of the presigned PUT with headers %v: %d %v", names, resp.StatusCode, resp.Header)
	}
	req.Header.Set("Origin", "http://old.example:8080")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("preflight from the replaced origin: %d", resp.StatusCode)
	}
}
