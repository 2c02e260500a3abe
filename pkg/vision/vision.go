// Package vision is a client for Azure AI Vision image analysis over its REST API (there is
// no Go SDK for Image Analysis 4.0): Image Analysis 4.0 and v3.2, an image given by URL or
// streamed as bytes, a subscription key (given, or read from a file that may be rotated) or
// an Entra ID bearer token.
//
// A Client is shared by all workers. Each call waits for the shared token bucket and for a
// slot under the adaptive concurrency limit, then makes up to 1+Retries attempts, each with
// its own timeout, within an overall deadline. Between attempts it waits the server's
// retry-after when given, else an exponential backoff with full jitter, or the token bucket's
// delay if that is longer. Every error it returns is classified with pkg/failure once, by
// Classify; permanent errors (a bad image) are never retried.
package vision

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/ratelimit"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/tracing"
)

// API versions.
const (
	// V40 is Image Analysis 4.0, api-version 2024-02-01 (the default).
	V40 = "2024-02-01"
	// V40Previous is Image Analysis 4.0's earlier GA api-version, 2023-10-01.
	V40Previous = "2023-10-01"
	// V32 is the Computer Vision v3.2 analyze operation.
	V32 = "v3.2"
)

// Feature is an analysis feature, named independently of the API version.
type Feature string

// Features. DenseCaptions is 4.0 only; Color is v3.2 only.
const (
	FeatureTags          Feature = "tags"
	FeatureCaption       Feature = "caption"       // v3.2: Description
	FeatureDenseCaptions Feature = "denseCaptions" // 4.0 only
	FeatureObjects       Feature = "objects"
	FeatureColor         Feature = "color" // v3.2 only
)

var (
	features40 = map[Feature]string{FeatureTags: "tags", FeatureCaption: "caption", FeatureDenseCaptions: "denseCaptions", FeatureObjects: "objects"}
	features32 = map[Feature]string{FeatureTags: "Tags", FeatureCaption: "Description", FeatureObjects: "Objects", FeatureColor: "Color"}
)

// Size limits of the two API versions: 4.0 takes images under 20 MB, v3.2 under 4 MB.
const (
	MaxImageBytes40 = 20 << 20
	MaxImageBytes32 = 4 << 20
)

// maxResponseBytes bounds how much of a response is read.
const maxResponseBytes = 8 << 20

// Defaults for Options.
const (
	DefaultAttemptTimeout = 30 * time.Second
	DefaultTimeout        = 2 * time.Minute
	DefaultRatePerSecond  = 10
	DefaultBurst          = 10
)

// Observer receives metrics events. Its methods must be quick and must not block; they are
// called from the calling goroutine.
type Observer interface {
	// OnAttempt reports one HTTP attempt: its status (0 when no response came back) and how
	// long it took.
	OnAttempt(status int, latency time.Duration)
	// OnThrottle reports a 429 and the wait the client will honour (or would have, had the
	// deadline allowed).
	OnThrottle(wait time.Duration)
	// OnRetry reports that retry number attempt (1 for the first retry) is about to be made
	// after err.
	OnRetry(attempt int, err error)
}

// Options configure a Client. A nil *Options, and every zero field, means the default.
type Options struct {
	// APIVersion is V40 (default), V40Previous or V32.
	APIVersion string
	// Features to request. Default: FeatureTags and FeatureCaption.
	Features []Feature
	// Language of tags and captions, e.g. "en". Default: the service's (English).
	Language string
	// ModelVersion pins the model ("latest" or a dated version). Default: the service's.
	ModelVersion string

	// HTTPClient makes the requests. Default: a client with its own transport, released by
	// Close. Redirects are never followed, so that the key is never sent elsewhere.
	HTTPClient *http.Client
	// AttemptTimeout bounds one attempt. Default DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// Timeout bounds a whole call, all attempts and waits included. Default DefaultTimeout.
	// A wait that would end past it is not started: the call returns the last error, which
	// for a throttled call carries the server's retry-after so the caller can reschedule.
	Timeout time.Duration
	// Retry is the backoff policy. The zero value is the Azure SDK's: 3 retries, 800 ms base,
	// 60 s cap, full jitter.
	Retry retry.Policy

	// RateLimit is the token bucket every call waits on before each attempt. Share one
	// between clients to share the budget. Default: DefaultRatePerSecond with DefaultBurst,
	// on the clock Now.
	RateLimit *ratelimit.Bucket
	// Concurrency bounds calls in flight and adapts to 429s. Default: an AIMD limiter with
	// its default sizes and slow start.
	Concurrency *ratelimit.AIMD

	// Observer receives metrics events. Default: none.
	Observer Observer

	// Now, Sleep and Rand replace the clock, the wait between attempts and the jitter
	// source, for tests. Sleep must return ctx's error when ctx ends first. Defaults:
	// time.Now, a timer, math/rand/v2.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64
}

// Client calls Azure AI Vision. It is safe for concurrent use and starts no goroutines.
type Client struct {
	endpoint string
	url      string // the analyze URL, query included
	version  string
	maxImage int64
	cred     Credential

	http      *http.Client
	ownHTTP   bool
	closeOnce sync.Once

	attemptTimeout time.Duration
	timeout        time.Duration
	policy         retry.Policy
	bucket         *ratelimit.Bucket
	conc           *ratelimit.AIMD
	obs            Observer
	now            func() time.Time
	sleep          func(context.Context, time.Duration) error
	rand           func() float64
}

// New returns a Client for the resource at endpoint (e.g.
// https://myresource.cognitiveservices.azure.com) authorised by cred.
func New(endpoint string, cred Credential, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	if cred == nil {
		return nil, errors.New("vision: nil credential")
	}
	if tc, ok := cred.(*tokenCredential); ok && tc.src == nil {
		return nil, errors.New("vision: nil TokenSource")
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("vision: endpoint %q is not an http(s) URL", endpoint)
	}
	c := &Client{
		endpoint:       strings.TrimRight(endpoint, "/"),
		version:        cmp.Or(opts.APIVersion, V40),
		cred:           cred,
		attemptTimeout: positiveOr(opts.AttemptTimeout, DefaultAttemptTimeout),
		timeout:        positiveOr(opts.Timeout, DefaultTimeout),
		policy:         opts.Retry,
		bucket:         opts.RateLimit,
		conc:           opts.Concurrency,
		obs:            opts.Observer,
		now:            opts.Now,
		sleep:          opts.Sleep,
		rand:           opts.Rand,
	}
	feats := opts.Features
	if len(feats) == 0 {
		feats = []Feature{FeatureTags, FeatureCaption}
	}
	if c.url, err = c.analyzeURL(feats, opts.Language, opts.ModelVersion); err != nil {
		return nil, err
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	if c.obs == nil {
		c.obs = nopObserver{}
	}
	if c.bucket == nil {
		c.bucket = ratelimit.NewBucket(DefaultRatePerSecond, DefaultBurst, &ratelimit.BucketOptions{Now: c.now})
	}
	if c.conc == nil {
		c.conc = ratelimit.NewAIMD(&ratelimit.AIMDOptions{SlowStart: true})
	}
	if opts.HTTPClient != nil {
		hc := *opts.HTTPClient
		c.http = &hc
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Keep a connection per concurrent call: Go's default of 2 idle connections per host
		// would make most calls of a busy pool dial (and TLS-handshake) anew.
		t.MaxIdleConns, t.MaxIdleConnsPerHost = maxIdleConns, maxIdleConns
		c.http = &http.Client{Transport: t}
		c.ownHTTP = true
	}
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// maxIdleConns bounds the idle connections the client's own transport keeps to Vision; the
// pool's concurrency limit is what really bounds them.
const maxIdleConns = 1024

// analyzeURL builds the operation's URL for the chosen version and features.
func (c *Client) analyzeURL(feats []Feature, language, model string) (string, error) {
	names, path := features40, "/computervision/imageanalysis:analyze?api-version="+c.version
	c.maxImage = MaxImageBytes40
	switch c.version {
	case V40, V40Previous:
	case V32:
		names, path = features32, "/vision/v3.2/analyze?"
		c.maxImage = MaxImageBytes32
	default:
		return "", fmt.Errorf("vision: unknown API version %q (want %s, %s or %s)", c.version, V40, V40Previous, V32)
	}
	var params []string
	for _, f := range feats {
		p, ok := names[f]
		if !ok {
			return "", fmt.Errorf("vision: feature %q is not available in API version %s", f, c.version)
		}
		if !slices.Contains(params, p) {
			params = append(params, p)
		}
	}
	q := strings.Join(params, ",")
	if c.version == V32 {
		path += "visualFeatures=" + q
	} else {
		path += "&features=" + q
	}
	if language != "" {
		path += "&language=" + url.QueryEscape(language)
	}
	if model != "" {
		path += "&model-version=" + url.QueryEscape(model)
	}
	return c.endpoint + path, nil
}

// ConcurrencyLimit returns the adaptive limit on calls in flight, for metrics.
func (c *Client) ConcurrencyLimit() int { return c.conc.Limit() }

// InFlight returns the number of attempts in flight, for metrics.
func (c *Client) InFlight() int { return c.conc.InFlight() }

// APIVersion returns the API version the client calls.
func (c *Client) APIVersion() string { return c.version }

// Close releases idle connections of the client's own transport. It does not touch an
// Options.HTTPClient. It is safe to call more than once, and calls made after it still work.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if c.ownHTTP {
			c.http.CloseIdleConnections()
		}
	})
	return nil
}

// String describes the client without its credential.
func (c *Client) String() string {
	return fmt.Sprintf("vision.Client(%s, %s)", c.endpoint, c.version)
}

// GoString describes the client without its credential.
func (c *Client) GoString() string { return c.String() }

// Format describes the client without its credential, for every verb.
func (c *Client) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// AnalyzeURL analyses the image at imageURL, which the service fetches itself (for example
// a presigned S3 URL). The URL is never included in errors, and the query of any signed URL
// the service quotes in its answer is removed (failure.RedactURLs). When the service cannot
// fetch the URL (400 InvalidImageUrl) the error is a setup fault, not a verdict on the image.
func (c *Client) AnalyzeURL(ctx context.Context, imageURL string) (*Result, error) {
	u, err := url.Parse(imageURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, failure.Permanentf(ReasonInvalidImageURL, "image URL is not an absolute http(s) URL")
	}
	body, err := json.Marshal(struct {
		URL string `json:"url"`
	}{imageURL})
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return c.analyze(ctx, func() (io.ReadCloser, int64, string, error) {
		return io.NopCloser(bytes.NewReader(body)), int64(len(body)), "application/json", nil
	})
}

// AnalyzeStream analyses an image sent as bytes. open is called once per attempt, just
// before the request is sent, and returns the image's bytes and their length (-1 when
// unknown: the request is then sent chunked). The body is streamed, never held whole in
// memory, and is always closed. An error from open ends the call at once, returned as is
// (wrapped), so it keeps its own classification.
func (c *Client) AnalyzeStream(ctx context.Context, open func() (io.ReadCloser, int64, error)) (*Result, error) {
	if open == nil {
		return nil, errors.New("vision: nil open func")
	}
	return c.analyze(ctx, func() (io.ReadCloser, int64, string, error) {
		rc, n, err := open()
		if err != nil {
			return nil, 0, "", fmt.Errorf("open image: %w", err)
		}
		switch {
		case n == 0:
			rc.Close()
			return nil, 0, "", failure.Permanentf("InvalidImageSize", "image is empty")
		case n > c.maxImage:
			rc.Close()
			return nil, 0, "", failure.Permanentf("InvalidImageSize", "image is %d bytes; API %s takes less than %d", n, c.version, c.maxImage)
		}
		return rc, n, "application/octet-stream", nil
	})
}

// bodyFunc opens one attempt's request body: the reader, its length (-1 if unknown) and
// its content type.
type bodyFunc func() (io.ReadCloser, int64, string, error)

// attemptResult is what one attempt came to.
type attemptResult struct {
	status       int           // 0 when no response came back
	transportErr error         // set when no (complete) response came back
	serverWait   time.Duration // the response's retry-after, if any
	err          error         // classified; nil on success
	final        bool          // err did not come from the service: do not retry
}

// analyze is one call: the span vision.analyze (its attempts, 429 waits and retries are its
// events) around the retry loop.
func (c *Client) analyze(ctx context.Context, body bodyFunc) (*Result, error) {
	ctx, span := tracing.Tracer("imgpipe/pkg/vision").Start(ctx, "vision.analyze", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("imgpipe.vision.api_version", c.version)))
	res, err := c.retryLoop(ctx, span, body)
	tracing.End(span, err)
	return res, err
}

// retryLoop runs the retry loop: this is the only place the client retries.
func (c *Client) retryLoop(ctx context.Context, span trace.Span, body bodyFunc) (*Result, error) {
	start := c.now()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var (
		last     error
		wait     time.Duration // per-call wait before the next attempt
		attempts int
		retries  int
		reauthed bool
	)
	for {
		// The per-call wait and the shared bucket are separate knobs: wait for the larger.
		rsv := c.bucket.Reserve()
		if d := max(wait, rsv.Delay); d > 0 {
			if d > c.remaining(ctx, start) {
				rsv.Cancel()
				if last == nil {
					return nil, failure.ThrottledAfter("ClientRateLimit", d,
						fmt.Errorf("client rate limit wait %v exceeds the deadline", d))
				}
				return nil, withAttempts(last, attempts)
			}
			if err := c.sleep(ctx, d); err != nil {
				rsv.Cancel()
				return nil, retry.Interrupted(ctxErr(ctx, err), last)
			}
		}
		if rsv.Again {
			// An adaptive bucket gives tokens only so far ahead: take a place in line again.
			wait = 0
			continue
		}
		if err := c.conc.Acquire(ctx); err != nil {
			return nil, retry.Interrupted(err, last)
		}
		attempts++
		res, ar := c.attempt(ctx, body)
		if span.IsRecording() {
			span.AddEvent("vision.attempt", trace.WithAttributes(attribute.Int("imgpipe.attempt", attempts), attribute.Int("http.response.status_code", ar.status)))
		}
		outcome := ratelimit.Failed
		switch {
		case ar.err == nil:
			outcome = ratelimit.Succeeded
		case ar.status == http.StatusTooManyRequests:
			outcome = ratelimit.Throttled
		}
		c.conc.Release(outcome)
		if ar.err == nil {
			return res, nil
		}
		last = ar.err
		if ar.final {
			return nil, withAttempts(last, attempts)
		}
		if err := ctx.Err(); err != nil {
			return nil, retry.Interrupted(err, last)
		}
		if ar.status == http.StatusUnauthorized {
			// The key file may have been rotated or the token revoked: reload once, and
			// try again at once if that changed anything.
			if !reauthed {
				reauthed = true
				if changed, err := c.cred.refresh(ctx); err == nil && changed {
					wait = 0
					continue
				}
			}
			return nil, withAttempts(last, attempts)
		}
		if !retryable(ar.status, ar.transportErr) || retries >= c.policy.Retries() {
			return nil, withAttempts(last, attempts)
		}
		retries++
		wait = c.policy.Delay(retries, ar.serverWait, c.rand)
		if ar.status == http.StatusTooManyRequests {
			c.obs.OnThrottle(wait)
		}
		if wait > c.remaining(ctx, start) {
			return nil, withAttempts(last, attempts)
		}
		c.obs.OnRetry(retries, last)
		if span.IsRecording() {
			span.AddEvent("vision.retry", trace.WithAttributes(attribute.Int("imgpipe.retry", retries),
				attribute.Int("http.response.status_code", ar.status), attribute.Int64("imgpipe.wait_ms", wait.Milliseconds()),
				attribute.String("imgpipe.reason", failure.ReasonOf(last))))
		}
	}
}

// attempt makes one HTTP request.
func (c *Client) attempt(ctx context.Context, body bodyFunc) (*Result, attemptResult) {
	ctx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()

	h := http.Header{}
	if err := c.cred.authorize(ctx, h); err != nil {
		return nil, attemptResult{err: err, final: true}
	}
	rc, size, ctype, err := body()
	if err != nil {
		return nil, attemptResult{err: err, final: true}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, rc)
	if err != nil {
		rc.Close()
		return nil, attemptResult{err: failure.New(failure.Transient, "BadRequestURL", err), final: true}
	}
	req.Header = h
	tracing.InjectHTTP(ctx, req.Header)
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", "application/json")
	req.ContentLength = size

	begin := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.obs.OnAttempt(0, c.now().Sub(begin))
		return nil, c.transportFailure(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	c.obs.OnAttempt(resp.StatusCode, c.now().Sub(begin))
	if err != nil {
		return nil, c.transportFailure(fmt.Errorf("read response: %w", err))
	}
	serverWait, _ := retry.ParseRetryAfter(resp.Header, c.now())
	ar := attemptResult{status: resp.StatusCode, serverWait: serverWait}

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if len(data) > maxResponseBytes {
			ar.err = failure.Transientf("BadResponse", "vision response larger than %d bytes", maxResponseBytes)
			ar.final = true
			return nil, ar
		}
		decode := decode40
		if c.version == V32 {
			decode = decode32
		}
		res, err := decode(data)
		if err != nil {
			ar.err = failure.New(failure.Transient, "BadResponse", err)
			ar.final = true
			return nil, ar
		}
		res.APIVersion = c.version
		if id := requestID(resp.Header); id != "" {
			res.RequestID = id
		}
		return res, ar
	}

	apiErr := parseAPIError(resp.StatusCode, resp.Header, data, c.cred.scrub)
	fe := Classify(resp.StatusCode, apiErr.Code, apiErr.InnerCode, nil).Wrap(apiErr)
	if fe.Class == failure.Throttled {
		fe.RetryAfter = serverWait
	}
	ar.err = fe
	return nil, ar
}

func (c *Client) transportFailure(err error) attemptResult {
	return attemptResult{transportErr: err, err: Classify(0, "", "", err).Wrap(err)}
}

// remaining returns the time left before the call's deadline: the Timeout budget on the
// client's clock, or the context's deadline if that comes first.
func (c *Client) remaining(ctx context.Context, start time.Time) time.Duration {
	left := c.timeout - c.now().Sub(start)
	if dl, ok := ctx.Deadline(); ok {
		left = min(left, time.Until(dl))
	}
	return left
}

// withAttempts adds the attempt count to an error when there was more than one.
func withAttempts(err error, attempts int) error {
	if attempts <= 1 {
		return err
	}
	return fmt.Errorf("%d attempts: %w", attempts, err)
}

// ctxErr prefers the context's own error over whatever a sleep returned.
func ctxErr(ctx context.Context, err error) error {
	if e := ctx.Err(); e != nil {
		return e
	}
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func positiveOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

type nopObserver struct{}

func (nopObserver) OnAttempt(int, time.Duration) {}
func (nopObserver) OnThrottle(time.Duration)     {}
func (nopObserver) OnRetry(int, error)           {}
