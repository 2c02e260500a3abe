package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	legacyrouter "github.com/getkin/kin-openapi/routers/legacy"
	"go.uber.org/zap/zaptest"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/console"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
)

func TestMain(m *testing.M) {
	stacktest.Main(m, devstack.SQS|devstack.S3|devstack.Firestore|devstack.PubSub)
}

// spec is openapi.yaml, loaded and validated once, with a router over its paths.
var spec = sync.OnceValues(func() (*openapi3.T, error) {
	doc, err := openapi3.NewLoader().LoadFromData(console.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not valid OpenAPI: %w", err)
	}
	return doc, nil
})

var specRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := spec()
	if err != nil {
		return nil, err
	}
	return legacyrouter.NewRouter(doc)
})

func init() {
	for _, ct := range []string{"text/html", "text/css", "text/javascript", "image/svg+xml"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
}

// env is a console over fresh resources on the shared stack.
type env struct {
	st    *devstack.Stack
	res   *devstack.Bootstrapped
	s3    *s3.Client
	sqs   *sqs.Client
	ps    *pubsub.Client
	store *indexstore.Store
	srv   *console.Server
	ts    *httptest.Server
	// header is sent with every request of do (for example Authorization).
	header http.Header
}

// newEnv starts a console; tune changes its options before it is built.
func newEnv(t testing.TB, tune func(*console.Options)) *env {
	t.Helper()
	st := stacktest.Get(t)
	res := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx := context.Background()
	fs, err := firestore.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	ps, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	opts := &console.Options{
		Prefix: res.Prefix, QueueURL: res.QueueURL, DLQURL: res.DLQURL, DeadLetterSubscription: res.DeadLetterSubscriptionName,
		DLQRefresh: 200 * time.Millisecond, Logger: zaptest.NewLogger(t),
	}
	if tune != nil {
		tune(opts)
	}
	// The index writes indexedAt on the console's clock.
	e := &env{st: st, res: res, s3: st.NewS3Client(), sqs: st.NewSQSClient(), ps: ps,
		store: indexstore.New(fs, res.Collection, &indexstore.Options{Now: opts.Now}), header: http.Header{}}
	e.srv, err = console.New(res.Bucket, console.Deps{S3: e.s3, Index: e.store, SQS: e.sqs, PubSub: ps.SubscriptionAdminClient}, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(e.srv)
	t.Cleanup(e.ts.Close)
	return e
}

// response is one answer, its body read.
type response struct {
	*http.Response
	body []byte
}

func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s answer %d: %v\n%s", r.Request.URL.Path, r.StatusCode, err, r.body)
	}
}

// errorCode is the code of a JSON error answer.
func (r *response) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message, RequestID string }
	}
	r.decode(t, &e)
	if e.Error.Code == "" || e.Error.Message == "" || e.Error.RequestID == "" {
		t.Fatalf("error answer without code, message or request ID: %s", r.body)
	}
	return e.Error.Code
}

// do sends a request to the console and checks the answer against openapi.yaml: the
// operation's documented status, headers and body schema, or (for a path or method the API
// does not have) the Error schema.
func (e *env) do(t *testing.T, method, path string, body any, header ...string) *response {
	t.Helper()
	var rd io.Reader = http.NoBody
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range e.header {
		req.Header[k] = v
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Request = req
	checkAgainstSpec(t, req, resp, b)
	return &response{resp, b}
}

func checkAgainstSpec(t *testing.T, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	router, err := specRouter()
	if err != nil {
		t.Fatal(err)
	}
	vreq := req.Clone(context.Background())
	route, params, err := router.FindRoute(vreq)
	if err != nil {
		// Not an operation of the API: the answer must still be a JSON error.
		doc, _ := spec()
		var v any
		if jerr := json.Unmarshal(body, &v); jerr != nil {
			t.Fatalf("%s %s (no such operation: %v) answered %d with a body that is not JSON: %q", req.Method, req.URL.Path, err, resp.StatusCode, body)
		}
		if verr := doc.Components.Schemas["Error"].Value.VisitJSON(v); verr != nil {
			t.Fatalf("%s %s answered %d with a body that is not an Error: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, verr, body)
		}
		return
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts},
		Status:                 resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)), Options: opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Fatalf("%s %s answered %d outside openapi.yaml: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, truncate(body))
	}
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}

// putObject stores body at key in the env's bucket (an image the index then describes).
func (e *env) putObject(t *testing.T, key string, body []byte) {
	t.Helper()
	if _, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &e.res.Bucket, Key: &key, Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// indexed writes an analysis of key into the index, analysed at the given time.
func (e *env) indexed(t testing.TB, key string, at time.Time, tags ...string) {
	t.Helper()
	rec := &record.Analysis{
		SchemaVersion: record.SchemaVersion, Event: record.Created, Bucket: e.res.Bucket, Key: key,
		Sequencer: s3event.FormatSequencer(uint64(at.UnixNano())), EventTime: at,
		Size: 2048, ContentType: "image/png", Format: "png", Width: 320, Height: 240,
		Caption: "a picture of " + strings.Join(tags, " and "), CaptionConfidence: 0.7, ModelVersion: "2023-10-01", APIVersion: "4.0", AnalyzedAt: at,
	}
	for _, tag := range tags {
		rec.Tags = append(rec.Tags, record.Tag{Name: tag, Confidence: 0.9})
	}
	if _, err := e.store.Apply(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

// deadLetter puts an S3 event about key into the SQS DLQ, as the analyzer does for a permanent
// failure with reason.
func (e *env) deadLetter(t testing.TB, key, reason string) {
	t.Helper()
	body, err := s3event.MarshalEvent([]s3event.Record{s3event.NewRecord("ObjectCreated:Put", e.res.Bucket, key, time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	attrs := map[string]sqstypes.MessageAttributeValue{}
	for k, v := range failure.DetailsOf(permanent(reason), 1, e.res.QueueURL, now, now).Attributes() {
		attrs[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	if _, err := e.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &e.res.DLQURL, MessageBody: aws.String(string(body)), MessageAttributes: attrs}); err != nil {
		t.Fatal(err)
	}
}
