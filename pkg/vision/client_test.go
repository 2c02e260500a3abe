package vision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/ratelimit"
	"imgpipe/pkg/retry"
)

// The stand-in's starter (internal/devstack) links in Google's clients, whose opencensus
// dependency starts a worker goroutine at init: not the client's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"))
}

// fakeTime is the client's clock: Sleep advances it instead of sleeping, and records waits.
type fakeTime struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
	// onSleep, when set, runs inside Sleep (to cancel a context mid-wait, say).
	onSleep func()
}

func newFakeTime() *fakeTime { return &fakeTime{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	if f.onSleep != nil {
		f.onSleep()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slept = append(f.slept, d)
	f.now = f.now.Add(d)
	return nil
}

func (f *fakeTime) Slept() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.slept)
}

// recorder is an Observer that records every event.
type recorder struct {
	mu        sync.Mutex
	statuses  []int
	throttles []time.Duration
	retries   []int
}

func (r *recorder) OnAttempt(status int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, status)
}

func (r *recorder) OnThrottle(wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.throttles = append(r.throttles, wait)
}

func (r *recorder) OnRetry(attempt int, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries = append(r.retries, attempt)
}

// harness is a client wired to a test server with a fake clock, no rate limit and a jitter
// draw of 0.5 (so each backoff is half its ceiling: 400 ms, 800 ms, 1.6 s).
type harness struct {
	t      *testing.T
	srv    *httptest.Server
	client *Client
	clock  *fakeTime
	obs    *recorder
	hits   atomic.Int64
}

func newHarness(t *testing.T, cred Credential, opts *Options, handler func(h *harness, w http.ResponseWriter, r *http.Request)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeTime(), obs: &recorder{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		handler(h, w, r)
	}))
	t.Cleanup(h.srv.Close)
	if opts == nil {
		opts = &Options{}
	}
	if opts.Now == nil {
		opts.Now = h.clock.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = h.clock.Sleep
	}
	if opts.Rand == nil {
		opts.Rand = func() float64 { return 0.5 }
	}
	if opts.RateLimit == nil {
		opts.RateLimit = ratelimit.NewBucket(math.Inf(1), 1, nil)
	}
	if opts.Observer == nil {
		opts.Observer = h.obs
	}
	if cred == nil {
		var err error
		if cred, err = NewKeyCredential(secretKey); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(h.srv.URL, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	h.client = c
	return h
}

func writeAPIError(w http.ResponseWriter, status int, code, inner, msg string) {
	e := map[string]any{"code": code, "message": msg}
	if inner != "" {
		e["innererror"] = map[string]string{"code": inner, "message": msg}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func write40(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("apim-request-id", "req-40")
	_, _ = io.WriteString(w, body40)
}

func streamOf(data []byte) func() (io.ReadCloser, int64, error) {
	return func() (io.ReadCloser, int64, error) {
		return io.NopCloser(strings.NewReader(string(data))), int64(len(data)), nil
	}
}

func TestAnalyzeURL40(t *testing.T) {
	h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/computervision/imageanalysis:analyze" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		if got := r.URL.RawQuery; got != "api-version=2024-02-01&features=tags,caption" {
			t.Errorf("query = %q", got)
		}
		if got := r.Header.Get(HeaderSubscriptionKey); got != secretKey {
			t.Errorf("key header = %q", got)
		}
		if got := r.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("content type = %q", got)
		}
		var body map[string]string
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["url"] != "https://bucket.example/upload/a.jpg?X-Amz-Signature=abc" {
			t.Errorf("body = %v, %v", body, err)
		}
		write40(w)
	})
	res, err := h.client.AnalyzeURL(context.Background(), "https://bucket.example/upload/a.jpg?X-Amz-Signature=abc")
	if err != nil {
		t.Fatal(err)
	}
	if res.APIVersion != V40 || res.RequestID != "req-40" || res.ModelVersion != "2023-10-01" ||
		res.Width != 1038 || res.Height != 692 || res.Caption != "a man pointing at a screen" ||
		len(res.Tags) != 3 || res.Tags[0] != (Tag{"person", 0.9981}) {
		t.Fatalf("result = %+v", res)
	}
	if h.hits.Load() != 1 {
		t.Fatalf("%d hits, want 1", h.hits.Load())
	}
	if got := h.client.ConcurrencyLimit(); got != 9 {
		t.Fatalf("ConcurrencyLimit() = %d, want 9: the default 8, grown by one success in slow start", got)
	}
}

func TestAnalyzeStream32(t *testing.T) {
	img := []byte("\x89PNG\r\n\x1a\n pretend pixels")
	h := newHarness(t, nil, &Options{APIVersion: V32, Features: []Feature{FeatureTags, FeatureCaption, FeatureColor}, Language: "en"},
		func(h *harness, w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/vision/v3.2/analyze" {
				t.Errorf("path = %q", r.URL.Path)
			}
			if got := r.URL.RawQuery; got != "visualFeatures=Tags,Description,Color&language=en" {
				t.Errorf("query = %q", got)
			}
			if got := r.Header.Get("Content-Type"); got != "application/octet-stream" {
				t.Errorf("content type = %q", got)
			}
			if r.ContentLength != int64(len(img)) || len(r.TransferEncoding) != 0 {
				t.Errorf("Content-Length = %d, Transfer-Encoding = %v", r.ContentLength, r.TransferEncoding)
			}
			got, _ := io.ReadAll(r.Body)
			if string(got) != string(img) {
				t.Errorf("body = %q", got)
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, body32)
		})
	res, err := h.client.AnalyzeStream(context.Background(), streamOf(img))
	if err != nil {
		t.Fatal(err)
	}
	if res.APIVersion != V32 || res.RequestID != "0c3b0a8c-2f1b-4c55-a0b3-3a8f0f8d2a3e" || res.Width != 640 ||
		res.Caption != "a large green field with a house" || res.Color == nil || res.Color.Accent != "7E8A33" {
		t.Fatalf("result = %+v", res)
	}
}

func TestRetriesThenSuccess(t *testing.T) {
	statuses := []int{500, 503, 200}
	h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
		switch s := statuses[h.hits.Load()-1]; s {
		case 200:
			write40(w)
		case 500:
			writeAPIError(w, s, "InternalServerError", "FailedToProcess", "Failed to process the image.")
		default:
			writeAPIError(w, s, "ServiceUnavailable", "", "busy")
		}
	})
	if _, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg"); err != nil {
		t.Fatal(err)
	}
	if n := h.hits.Load(); n != 3 {
		t.Fatalf("%d hits, want 3", n)
	}
	if got, want := h.clock.Slept(), []time.Duration{400 * time.Millisecond, 800 * time.Millisecond}; !slices.Equal(got, want) {
		t.Fatalf("slept %v, want %v (full jitter at 0.5 of 800ms, 1.6s)", got, want)
	}
	if !slices.Equal(h.obs.statuses, []int{500, 503, 200}) || !slices.Equal(h.obs.retries, []int{1, 2}) || len(h.obs.throttles) != 0 {
		t.Fatalf("observer saw statuses %v retries %v throttles %v", h.obs.statuses, h.obs.retries, h.obs.throttles)
	}
}

func TestRetriesExhausted(t *testing.T) {
	h := newHarness(t, nil, &Options{Retry: retry.Policy{MaxRetries: 2}}, func(h *harness, w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, 503, "ServiceUnavailable", "", "busy")
	})
	_, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg")
	if n := h.hits.Load(); n != 3 {
		t.Fatalf("%d hits, want 3", n)
	}
	if failure.ClassOf(err) != failure.Transient || failure.ReasonOf(err) != "ServiceUnavailable" {
		t.Fatalf("err = %v", err)
	}
	if !strings.HasPrefix(err.Error(), "3 attempts: ServiceUnavailable (transient): vision 503 ServiceUnavailable: busy") {
		t.Fatalf("err = %q", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 {
		t.Fatalf("APIError not found in %v", err)
	}
}

func TestThrottleHonoursRetryAfter(t *testing.T) {
	t0 := newFakeTime().Now()
	tests := []struct {
		name   string
		header string
		value  string
		want   time.Duration
	}{
		{"retry-after-ms", "retry-after-ms", "1500", 1500 * time.Millisecond},
		{"x-ms-retry-after-ms", "x-ms-retry-after-ms", "250", 250 * time.Millisecond},
		{"Retry-After seconds", "Retry-After", "7", 7 * time.Second},
		{"Retry-After HTTP date", "Retry-After", t0.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"no header: backoff", "", "", 400 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aimd := ratelimit.NewAIMD(&ratelimit.AIMDOptions{Initial: 8})
			h := newHarness(t, nil, &Options{Concurrency: aimd}, func(h *harness, w http.ResponseWriter, r *http.Request) {
				if h.hits.Load() == 1 {
					if tt.header != "" {
						w.Header().Set(tt.header, tt.value)
					}
					writeAPIError(w, 429, "429", "", "Rate limit is exceeded.")
					return
				}
				write40(w)
			})
			if _, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg"); err != nil {
				t.Fatal(err)
			}
			if got := h.clock.Slept(); !slices.Equal(got, []time.Duration{tt.want}) {
				t.Fatalf("slept %v, want [%v]", got, tt.want)
			}
			if !slices.Equal(h.obs.throttles, []time.Duration{tt.want}) {
				t.Fatalf("OnThrottle saw %v, want [%v]", h.obs.throttles, tt.want)
			}
			if got := aimd.Limit(); got != 4 {
				t.Fatalf("concurrency limit after a 429 = %d, want 4", got)
			}
		})
	}
}

func TestRetryAfterOn503IsHonoured(t *testing.T) {
	h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
		if h.hits.Load() == 1 {
			w.Header().Set("Retry-After", "3")
			writeAPIError(w, 503, "ServiceUnavailable", "", "busy")
			return
		}
		write40(w)
	})
	if _, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg"); err != nil {
		t.Fatal(err)
	}
	if got := h.clock.Slept(); !slices.Equal(got, []time.Duration{3 * time.Second}) {
		t.Fatalf("slept %v, want [3s]", got)
	}
}

func TestPermanentErrorsAreNotRetried(t *testing.T) {
	tests := []struct {
		status      int
		code, inner string
		class       failure.Class
		reason      string
	}{
		{400, "InvalidRequest", "InvalidImageFormat", failure.Permanent, "InvalidImageFormat"},
		{400, "InvalidRequest", "InvalidImageSize", failure.Permanent, "InvalidImageSize"},
		{400, "InvalidRequest", "NotSupportedImage", failure.Permanent, "NotSupportedImage"},
		{415, "InvalidRequest", "UnsupportedMediaType", failure.Permanent, "UnsupportedMediaType"},
		{401, "401", "", failure.Transient, "Unauthorized"},
		{403, "403", "", failure.Throttled, "QuotaExceeded"},
		{404, "404", "", failure.Transient, "NotFound"},
		{400, "InvalidRequest", "NotSupportedLanguage", failure.Transient, "NotSupportedLanguage"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status, tt.inner), func(t *testing.T) {
			h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "1") // never honoured: these are not retried
				writeAPIError(w, tt.status, tt.code, tt.inner, "no")
			})
			_, err := h.client.AnalyzeStream(context.Background(), streamOf([]byte("not an image")))
			if n := h.hits.Load(); n != 1 {
				t.Fatalf("%d hits, want exactly 1", n)
			}
			if failure.ClassOf(err) != tt.class || failure.ReasonOf(err) != tt.reason {
				t.Fatalf("err = %v; want %v %s", err, tt.class, tt.reason)
			}
			if len(h.clock.Slept()) != 0 {
				t.Fatalf("slept %v", h.clock.Slept())
			}
		})
	}
}

func TestDeadlineStopsRetries(t *testing.T) {
	t.Run("server wait beyond the deadline", func(t *testing.T) {
		h := newHarness(t, nil, &Options{Timeout: 10 * time.Second}, func(h *harness, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "60")
			writeAPIError(w, 429, "429", "", "Rate limit is exceeded.")
		})
		_, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg")
		if n := h.hits.Load(); n != 1 {
			t.Fatalf("%d hits, want 1", n)
		}
		if failure.ClassOf(err) != failure.Throttled || failure.RetryAfterOf(err) != time.Minute {
			t.Fatalf("err = %v (retry after %v); want throttled with 1m", err, failure.RetryAfterOf(err))
		}
		if len(h.clock.Slept()) != 0 {
			t.Fatalf("slept %v, want no wait", h.clock.Slept())
		}
		if !slices.Equal(h.obs.throttles, []time.Duration{time.Minute}) || len(h.obs.retries) != 0 {
			t.Fatalf("observer: throttles %v retries %v", h.obs.throttles, h.obs.retries)
		}
	})
	t.Run("backoff beyond the deadline", func(t *testing.T) {
		// Draws just below 1: waits of about 800 ms then 1.6 s; only the first fits in 2 s.
		h := newHarness(t, nil, &Options{Timeout: 2 * time.Second, Rand: func() float64 { return 0.999 }},
			func(h *harness, w http.ResponseWriter, r *http.Request) {
				writeAPIError(w, 500, "InternalServerError", "", "oops")
			})
		_, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg")
		if n := h.hits.Load(); n != 2 {
			t.Fatalf("%d hits, want 2", n)
		}
		if len(h.clock.Slept()) != 1 {
			t.Fatalf("slept %v, want one wait", h.clock.Slept())
		}
		if failure.ClassOf(err) != failure.Transient || !strings.HasPrefix(err.Error(), "2 attempts: ") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("context deadline", func(t *testing.T) {
		h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "120")
			writeAPIError(w, 429, "429", "", "slow down")
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := h.client.AnalyzeURL(ctx, "https://example.com/a.jpg")
		if h.hits.Load() != 1 || failure.RetryAfterOf(err) != 2*time.Minute {
			t.Fatalf("%d hits, err %v", h.hits.Load(), err)
		}
	})
}

func TestCancelledRetryKeepsBothErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, 503, "ServiceUnavailable", "", "busy")
	})
	h.clock.onSleep = cancel
	_, err := h.client.AnalyzeURL(ctx, "https://example.com/a.jpg")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("context error lost: %v", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || failure.ReasonOf(err) != "ServiceUnavailable" {
		t.Fatalf("last attempt's error lost: %v", err)
	}
	if h.hits.Load() != 1 {
		t.Fatalf("%d hits, want 1", h.hits.Load())
	}
}

func TestCancelWhileWaitingForASlotKeepsBothErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aimd := ratelimit.NewAIMD(&ratelimit.AIMDOptions{Initial: 1, Max: 1})
	h := newHarness(t, nil, &Options{Concurrency: aimd}, func(h *harness, w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, 502, "", "", "bad gateway")
	})
	// During the backoff another caller takes the only slot; the retry then waits for it
	// until the context is cancelled.
	h.clock.onSleep = func() {
		if err := aimd.Acquire(context.Background()); err != nil {
			t.Error(err)
		}
		time.AfterFunc(10*time.Millisecond, cancel)
	}
	defer aimd.Release(ratelimit.Failed)
	_, err := h.client.AnalyzeURL(ctx, "https://example.com/a.jpg")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("context error lost: %v", err)
	}
	if failure.ReasonOf(err) != "BadGateway" {
		t.Fatalf("last attempt's error lost: %v", err)
	}
	if h.hits.Load() != 1 {
		t.Fatalf("%d hits, want 1", h.hits.Load())
	}
}

func TestStreamReopensBodyPerAttempt(t *testing.T) {
	img := []byte(strings.Repeat("image-bytes;", 1000))
	var opens, closes atomic.Int64
	var lengths []int64
	var mu sync.Mutex
	h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
		got, _ := io.ReadAll(r.Body)
		mu.Lock()
		lengths = append(lengths, r.ContentLength)
		mu.Unlock()
		if string(got) != string(img) {
			t.Errorf("attempt %d: body of %d bytes, want %d", h.hits.Load(), len(got), len(img))
		}
		if h.hits.Load() < 3 {
			writeAPIError(w, 500, "InternalServerError", "", "oops")
			return
		}
		write40(w)
	})
	open := func() (io.ReadCloser, int64, error) {
		opens.Add(1)
		return &countingCloser{Reader: strings.NewReader(string(img)), closes: &closes}, int64(len(img)), nil
	}
	if _, err := h.client.AnalyzeStream(context.Background(), open); err != nil {
		t.Fatal(err)
	}
	if opens.Load() != 3 || closes.Load() != 3 {
		t.Fatalf("opened %d, closed %d; want 3 and 3", opens.Load(), closes.Load())
	}
	if !slices.Equal(lengths, []int64{12000, 12000, 12000}) {
		t.Fatalf("Content-Length per attempt = %v", lengths)
	}
}

type countingCloser struct {
	io.Reader
	closes *atomic.Int64
}

func (c *countingCloser) Close() error {
	c.closes.Add(1)
	return nil
}

func TestStreamOpenErrors(t *testing.T) {
	h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) { write40(w) })
	gone := failure.Permanentf("NoSuchKey", "object deleted")
	_, err := h.client.AnalyzeStream(context.Background(), func() (io.ReadCloser, int64, error) { return nil, 0, gone })
	if !errors.Is(err, gone) || failure.ReasonOf(err) != "NoSuchKey" {
		t.Fatalf("err = %v, want the open error with its class", err)
	}
	var closes atomic.Int64
	for _, size := range []int64{0, MaxImageBytes40 + 1} {
		_, err = h.client.AnalyzeStream(context.Background(), func() (io.ReadCloser, int64, error) {
			return &countingCloser{Reader: strings.NewReader("x"), closes: &closes}, size, nil
		})
		if failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != "InvalidImageSize" {
			t.Fatalf("size %d: err = %v", size, err)
		}
	}
	if closes.Load() != 2 {
		t.Fatalf("rejected bodies closed %d times, want 2", closes.Load())
	}
	if _, err := h.client.AnalyzeURL(context.Background(), "ftp://example.com/a.jpg"); failure.ReasonOf(err) != "InvalidImageUrl" {
		t.Fatalf("bad URL: err = %v", err)
	}
	if h.hits.Load() != 0 {
		t.Fatalf("%d hits, want none", h.hits.Load())
	}
}

func TestUnknownLengthIsChunked(t *testing.T) {
	h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != -1 || !slices.Equal(r.TransferEncoding, []string{"chunked"}) {
			t.Errorf("Content-Length %d, Transfer-Encoding %v", r.ContentLength, r.TransferEncoding)
		}
		write40(w)
	})
	_, err := h.client.AnalyzeStream(context.Background(), func() (io.ReadCloser, int64, error) {
		return io.NopCloser(strings.NewReader("abc")), -1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestKeyFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	mod := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	writeFile(t, path, "old-key-0001", mod)
	cred, err := NewKeyFileCredential(path)
	if err != nil {
		t.Fatal(err)
	}
	var valid atomic.Value
	valid.Store("old-key-0001")
	var rotateOn401 atomic.Bool
	h := newHarness(t, cred, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderSubscriptionKey) != valid.Load().(string) {
			if rotateOn401.Load() {
				// The secret is rotated while the request is refused; same size and mtime,
				// so only the forced re-read after a 401 can see it.
				writeFile(t, path, valid.Load().(string), mod)
			}
			writeAPIError(w, 401, "401", "", "Access denied due to invalid subscription key or wrong API endpoint.")
			return
		}
		write40(w)
	})
	ctx := context.Background()
	if _, err := h.client.AnalyzeURL(ctx, "https://example.com/a.jpg"); err != nil {
		t.Fatal(err)
	}

	// Rotation picked up by mtime, before any 401.
	valid.Store("new-key-0002")
	writeFile(t, path, "new-key-0002", mod.Add(time.Hour))
	if _, err := h.client.AnalyzeURL(ctx, "https://example.com/a.jpg"); err != nil {
		t.Fatal(err)
	}
	if h.hits.Load() != 2 {
		t.Fatalf("%d hits, want 2", h.hits.Load())
	}

	// Rotation the mtime does not show: the 401 forces a re-read and one more attempt.
	valid.Store("new-key-0003")
	rotateOn401.Store(true)
	if _, err := h.client.AnalyzeURL(ctx, "https://example.com/a.jpg"); err != nil {
		t.Fatal(err)
	}
	if h.hits.Load() != 4 {
		t.Fatalf("%d hits, want 4", h.hits.Load())
	}

	// A key that stays wrong: one 401, one re-read, no further attempts; transient.
	valid.Store("something-else")
	rotateOn401.Store(false)
	_, err = h.client.AnalyzeURL(ctx, "https://example.com/a.jpg")
	if h.hits.Load() != 5 {
		t.Fatalf("%d hits, want 5", h.hits.Load())
	}
	if failure.ClassOf(err) != failure.Transient || failure.ReasonOf(err) != "Unauthorized" {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "new-key-0003") {
		t.Fatalf("key in error: %v", err)
	}
}

func TestBearerToken(t *testing.T) {
	src := &fakeTokens{tokens: []string{"revoked-token", "fresh-token"}, exp: time.Now().Add(time.Hour)}
	h := newHarness(t, NewTokenCredential(src), nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderSubscriptionKey) != "" {
			t.Errorf("key header sent with a token credential")
		}
		if r.Header.Get("Authorization") != "Bearer fresh-token" {
			writeAPIError(w, 401, "401", "", "Access denied due to invalid or expired token.")
			return
		}
		write40(w)
	})
	for range 2 {
		if _, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg"); err != nil {
			t.Fatal(err)
		}
	}
	if h.hits.Load() != 3 || src.calls != 2 {
		t.Fatalf("%d hits and %d token fetches, want 3 and 2 (one 401, then the cached fresh token)", h.hits.Load(), src.calls)
	}
}

func TestKeyNeverInErrorsOrOutput(t *testing.T) {
	h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
		// A server that echoes the key it was given.
		writeAPIError(w, 401, "401", "", "key "+r.Header.Get(HeaderSubscriptionKey)+" is not valid")
	})
	_, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg")
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		if strings.Contains(s, secretKey) {
			t.Fatalf("key in error: %s", s)
		}
	}
	if !strings.Contains(err.Error(), "key [REDACTED] is not valid") {
		t.Fatalf("err = %v", err)
	}
	assertRedacted(t, "client", h.client, secretKey)
}

func TestNoRedirects(t *testing.T) {
	var leaked atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Add(1)
		write40(w)
	}))
	defer other.Close()
	h := newHarness(t, nil, &Options{HTTPClient: &http.Client{}}, func(h *harness, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusSeeOther)
	})
	_, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg")
	if leaked.Load() != 0 {
		t.Fatal("redirect followed: the key went to another server")
	}
	if failure.ReasonOf(err) != "Status303" {
		t.Fatalf("err = %v", err)
	}
}

func TestTransportErrorsAreRetried(t *testing.T) {
	h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
		if h.hits.Load() == 1 {
			// Drop the connection without an answer.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		write40(w)
	})
	if _, err := h.client.AnalyzeStream(context.Background(), streamOf([]byte("img"))); err != nil {
		t.Fatal(err)
	}
	if h.hits.Load() != 2 || !slices.Equal(h.obs.statuses, []int{0, 200}) {
		t.Fatalf("%d hits, statuses %v", h.hits.Load(), h.obs.statuses)
	}

	// Nothing listening: every attempt fails, classified Network.
	srv := httptest.NewServer(http.NotFoundHandler())
	dead := srv.URL
	srv.Close()
	cred, _ := NewKeyCredential(secretKey)
	clock := newFakeTime()
	c, err := New(dead, cred, &Options{Now: clock.Now, Sleep: clock.Sleep, RateLimit: ratelimit.NewBucket(math.Inf(1), 1, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.AnalyzeURL(context.Background(), "https://example.com/a.jpg")
	if failure.ClassOf(err) != failure.Transient || failure.ReasonOf(err) != "Network" || len(clock.Slept()) != 3 {
		t.Fatalf("err = %v after %d waits", err, len(clock.Slept()))
	}
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := newHarness(t, nil, &Options{AttemptTimeout: 50 * time.Millisecond}, func(h *harness, w http.ResponseWriter, r *http.Request) {
		if h.hits.Load() == 1 {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		write40(w)
	})
	if _, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg"); err != nil {
		t.Fatal(err)
	}
	if h.hits.Load() != 2 {
		t.Fatalf("%d hits, want 2", h.hits.Load())
	}
}

func TestRateLimitTakesTheLargerWait(t *testing.T) {
	clock := newFakeTime()
	bucket := ratelimit.NewBucket(1, 1, &ratelimit.BucketOptions{Now: clock.Now})
	h := newHarness(t, nil, &Options{RateLimit: bucket, Now: clock.Now, Sleep: clock.Sleep}, func(h *harness, w http.ResponseWriter, r *http.Request) {
		if h.hits.Load() == 1 {
			writeAPIError(w, 500, "InternalServerError", "", "oops")
			return
		}
		write40(w)
	})
	h.clock = clock
	// First attempt takes the only token; the retry's backoff (400 ms) is shorter than the
	// bucket's 1 s, so the bucket's wait is the one served. The next call waits 1 s again.
	for range 2 {
		if _, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg"); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := clock.Slept(), []time.Duration{time.Second, time.Second}; !slices.Equal(got, want) {
		t.Fatalf("slept %v, want %v", got, want)
	}
	// A bucket wait that cannot fit in the deadline is not started.
	slow := ratelimit.NewBucket(0.01, 1, &ratelimit.BucketOptions{Now: clock.Now})
	slow.Reserve()
	h2 := newHarness(t, nil, &Options{RateLimit: slow, Now: clock.Now, Sleep: clock.Sleep, Timeout: time.Minute},
		func(h *harness, w http.ResponseWriter, r *http.Request) { write40(w) })
	_, err := h2.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg")
	if failure.ClassOf(err) != failure.Throttled || failure.ReasonOf(err) != "ClientRateLimit" || failure.RetryAfterOf(err) != 100*time.Second {
		t.Fatalf("err = %v, retry after %v", err, failure.RetryAfterOf(err))
	}
	if h2.hits.Load() != 0 {
		t.Fatal("call made despite the rate limit")
	}
}

// TestAdaptiveRateAsksAgain: an adaptive bucket gives tokens at most a second ahead; a call
// further back in line waits, reserves again, and is made once its token is near.
func TestAdaptiveRateAsksAgain(t *testing.T) {
	clock := newFakeTime()
	bucket := ratelimit.NewBucket(10, 1, &ratelimit.BucketOptions{Now: clock.Now, Adaptive: &ratelimit.Adaptive{Initial: 1}})
	for range 11 { // the one token, then a queue reaching 1 s ahead
		if r := bucket.Reserve(); r.Again {
			t.Fatal("reservation within the horizon answered Again")
		}
	}
	if r := bucket.Reserve(); !r.Again {
		t.Fatalf("reservation 1.1 s ahead: %+v, want Again", r)
	}
	h := newHarness(t, nil, &Options{RateLimit: bucket, Now: clock.Now, Sleep: clock.Sleep}, func(h *harness, w http.ResponseWriter, r *http.Request) { write40(w) })
	h.clock = clock
	if _, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg"); err != nil {
		t.Fatal(err)
	}
	slept := clock.Slept()
	var total time.Duration
	for _, d := range slept {
		if d > time.Second {
			t.Fatalf("slept %v at once (%v), want no wait over the 1 s horizon", d, slept)
		}
		total += d
	}
	if len(slept) < 2 || total < 1050*time.Millisecond || total > 1150*time.Millisecond {
		t.Fatalf("slept %v (total %v), want a wait to reserve again, then the token's, about 1.1 s in all", slept, total)
	}
	if h.hits.Load() != 1 {
		t.Fatalf("%d calls, want 1", h.hits.Load())
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	const limit = 2
	var cur, peak atomic.Int64
	gate := make(chan struct{})
	aimd := ratelimit.NewAIMD(&ratelimit.AIMDOptions{Initial: limit, Max: limit})
	h := newHarness(t, nil, &Options{Concurrency: aimd}, func(h *harness, w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-gate
		cur.Add(-1)
		write40(w)
	})
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if _, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg"); err != nil {
				t.Error(err)
			}
		})
	}
	// Wait until the limit is full and the rest are queued, then let them all through.
	for h.client.InFlight() < limit || cur.Load() < limit {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	if peak.Load() > limit {
		t.Fatalf("%d calls in flight at once, limit %d", peak.Load(), limit)
	}
	if h.hits.Load() != 6 {
		t.Fatalf("%d hits, want 6", h.hits.Load())
	}
}

func TestNewValidates(t *testing.T) {
	cred, _ := NewKeyCredential("k")
	tests := []struct {
		name     string
		endpoint string
		cred     Credential
		opts     *Options
	}{
		{"nil credential", "https://x.example", nil, nil},
		{"nil token source", "https://x.example", NewTokenCredential(nil), nil},
		{"relative endpoint", "x.example", cred, nil},
		{"ftp endpoint", "ftp://x.example", cred, nil},
		{"endpoint with query", "https://x.example/?a=b", cred, nil},
		{"unknown version", "https://x.example", cred, &Options{APIVersion: "v2.0"}},
		{"color on 4.0", "https://x.example", cred, &Options{Features: []Feature{FeatureColor}}},
		{"dense captions on 3.2", "https://x.example", cred, &Options{APIVersion: V32, Features: []Feature{FeatureDenseCaptions}}},
		{"unknown feature", "https://x.example", cred, &Options{Features: []Feature{"faces"}}},
		{"people on 3.2", "https://x.example", cred, &Options{APIVersion: V32, Features: []Feature{FeaturePeople}}},
		{"read on 3.2", "https://x.example", cred, &Options{APIVersion: V32, Features: []Feature{FeatureRead}}},
		{"smart crops on 3.2", "https://x.example", cred, &Options{APIVersion: V32, Features: []Feature{FeatureSmartCrops}}},
		{"crop ratios without smart crops", "https://x.example", cred, &Options{SmartCropsAspectRatios: []float64{1}}},
		{"crop ratio too wide", "https://x.example", cred, &Options{Features: []Feature{FeatureSmartCrops}, SmartCropsAspectRatios: []float64{1.81}}},
		{"crop ratio too narrow", "https://x.example", cred, &Options{Features: []Feature{FeatureSmartCrops}, SmartCropsAspectRatios: []float64{0.7}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := New(tt.endpoint, tt.cred, tt.opts); err == nil {
				c.Close()
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestAnalyzeURLBuilding(t *testing.T) {
	cred, _ := NewKeyCredential("k")
	tests := []struct {
		endpoint string
		opts     *Options
		want     string
	}{
		{"https://r.cognitiveservices.azure.com/", nil,
			"https://r.cognitiveservices.azure.com/computervision/imageanalysis:analyze?api-version=2024-02-01&features=tags,caption"},
		{"http://127.0.0.1:8080/proxy", &Options{APIVersion: V40Previous, Features: []Feature{FeatureObjects, FeatureDenseCaptions, FeatureObjects}, ModelVersion: "latest"},
			"http://127.0.0.1:8080/proxy/computervision/imageanalysis:analyze?api-version=2023-10-01&features=objects,denseCaptions&model-version=latest"},
		{"https://r.example", &Options{Features: []Feature{FeatureTags, FeatureRead, FeaturePeople, FeatureSmartCrops}, SmartCropsAspectRatios: []float64{1, 0.75, 1.8}},
			"https://r.example/computervision/imageanalysis:analyze?api-version=2024-02-01&features=tags,read,people,smartCrops&smartcrops-aspect-ratios=1,0.75,1.8"},
		{"https://r.example", &Options{APIVersion: V32, Features: []Feature{FeatureObjects, FeatureTags}, Language: "pt-BR"},
			"https://r.example/vision/v3.2/analyze?visualFeatures=Objects,Tags&language=pt-BR"},
	}
	for _, tt := range tests {
		c, err := New(tt.endpoint, cred, tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if c.url != tt.want {
			t.Errorf("url = %q, want %q", c.url, tt.want)
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if err := c.Close(); err != nil {
			t.Error("second Close:", err)
		}
	}
}

func TestBadSuccessBodyIsTransient(t *testing.T) {
	h := newHarness(t, nil, nil, func(h *harness, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(5))
		_, _ = io.WriteString(w, "oops!")
	})
	_, err := h.client.AnalyzeURL(context.Background(), "https://example.com/a.jpg")
	if failure.ClassOf(err) != failure.Transient || failure.ReasonOf(err) != "BadResponse" || h.hits.Load() != 1 {
		t.Fatalf("err = %v after %d hits", err, h.hits.Load())
	}
}

func TestParseFeatures(t *testing.T) {
	got, err := ParseFeatures(" tags, Caption,smartcrops,READ,people,denseCaptions,objects,tags")
	want := []Feature{FeatureTags, FeatureCaption, FeatureSmartCrops, FeatureRead, FeaturePeople, FeatureDenseCaptions, FeatureObjects}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ParseFeatures = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", " , ", "tags,faces"} {
		if _, err := ParseFeatures(bad); err == nil {
			t.Errorf("ParseFeatures(%q) succeeded", bad)
		}
	}
	if r, err := ParseAspectRatios("1, 0.75,1.8"); err != nil || !slices.Equal(r, []float64{1, 0.75, 1.8}) {
		t.Errorf("ParseAspectRatios = %v, %v", r, err)
	}
	if r, err := ParseAspectRatios(""); err != nil || r != nil {
		t.Errorf("ParseAspectRatios(empty) = %v, %v", r, err)
	}
	for _, bad := range []string{"wide", "0.5", "2", "1,NaN"} {
		if _, err := ParseAspectRatios(bad); err == nil {
			t.Errorf("ParseAspectRatios(%q) succeeded", bad)
		}
	}
}
