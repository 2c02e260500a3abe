package vision

// These tests run the client against the project's Azure AI Vision stand-in (a child process,
// see devstack.StartVision) on 127.0.0.1, the stand-in on a manual clock that follows the
// client's fake one (every fake sleep sets it through the admin endpoint), so that
// throttling needs no real waiting.

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"imgpipe/internal/visionstandin"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/ratelimit"

	"imgpipe/internal/devstack"
)

// testPNG returns an 80x60 PNG, above the service's 50x50 minimum.
func testPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 80, 60))
	for y := range 60 {
		for x := range 80 {
			img.Set(x, y, color.RGBA{R: uint8(x * 4), G: 120, B: uint8(y * 5), A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type standin struct {
	srv    *visionstandin.Client
	url    string
	clock  *fakeTime
	client *Client
}

func newStandin(t *testing.T, sopts *devstack.VisionOptions, copts *Options, cred Credential) *standin {
	t.Helper()
	s := &standin{clock: newFakeTime()}
	if sopts == nil {
		sopts = &devstack.VisionOptions{}
	}
	sopts.ManualClock, sopts.LogDir = s.clock.Now(), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a first build may be slow
	defer cancel()
	run, err := devstack.StartVision(ctx, sopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run.Close)
	s.url = run.URL
	s.srv = visionstandin.NewClient(run.URL, nil)
	if copts == nil {
		copts = &Options{}
	}
	copts.Now = s.clock.Now
	copts.Sleep = func(ctx context.Context, d time.Duration) error {
		if err := s.clock.Sleep(ctx, d); err != nil {
			return err
		}
		return s.srv.PutClock(ctx, s.clock.Now())
	}
	copts.Rand = func() float64 { return 0.5 }
	if copts.RateLimit == nil {
		copts.RateLimit = ratelimit.NewBucket(1000, 1000, &ratelimit.BucketOptions{Now: s.clock.Now})
	}
	if cred == nil {
		var err error
		if cred, err = NewKeyCredential(visionstandin.DefaultKey); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(s.url, cred, copts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s.client = c
	return s
}

func streamBytes(b []byte) func() (io.ReadCloser, int64, error) {
	return func() (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	}
}

func TestStandinAnalyzesPNG(t *testing.T) {
	img := testPNG(t)
	for _, version := range []string{V40, V40Previous, V32} {
		t.Run(version, func(t *testing.T) {
			s := newStandin(t, nil, &Options{APIVersion: version}, nil)
			res, err := s.client.AnalyzeStream(context.Background(), streamBytes(img))
			if err != nil {
				t.Fatal(err)
			}
			if res.Width != 80 || res.Height != 60 || res.APIVersion != version || res.RequestID == "" || res.ModelVersion == "" {
				t.Fatalf("result = %+v", res)
			}
			if len(res.Tags) == 0 || res.Caption == "" {
				t.Fatalf("no tags or caption: %+v", res)
			}
			if n := s.srv.Stats().AnalysedCount(img); n != 1 {
				t.Fatalf("stand-in analysed the image %d times, want 1", n)
			}
		})
	}
}

func TestStandinNonImageIsPermanent(t *testing.T) {
	s := newStandin(t, nil, nil, nil)
	_, err := s.client.AnalyzeStream(context.Background(), streamBytes([]byte("this is a text file, not an image")))
	if failure.ClassOf(err) != failure.Permanent || failure.ReasonOf(err) != "InvalidImageFormat" {
		t.Fatalf("err = %v", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "InvalidRequest" {
		t.Fatalf("APIError = %+v", apiErr)
	}
	if calls := s.srv.Stats().Calls; calls != 1 {
		t.Fatalf("stand-in saw %d calls, want exactly 1", calls)
	}
}

func TestStandinThrottleRetryAfter(t *testing.T) {
	img := testPNG(t)
	tests := []struct {
		mode visionstandin.RetryAfterMode
		want []time.Duration // the client's waits before the throttled call succeeds
	}{
		{visionstandin.RetryAfterSeconds, []time.Duration{time.Second}},
		{visionstandin.RetryAfterMS, []time.Duration{time.Second}},
		{visionstandin.RetryAfterXMSMS, []time.Duration{time.Second}},
		// The stand-in adds a second so that whole-second dates never shorten the wait.
		{visionstandin.RetryAfterHTTPDate, []time.Duration{2 * time.Second}},
		// No header: backoff (half the ceiling with the fixed draw) until the bucket refills.
		{visionstandin.RetryAfterNone, []time.Duration{400 * time.Millisecond, 800 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			faults := visionstandin.Faults{RateLimit: visionstandin.RateLimit{PerSecond: 1, Burst: 1}, RetryAfter: tt.mode}
			s := newStandin(t, &devstack.VisionOptions{Faults: faults}, nil, nil)
			ctx := context.Background()
			if _, err := s.client.AnalyzeStream(ctx, streamBytes(img)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.client.AnalyzeStream(ctx, streamBytes(img)); err != nil {
				t.Fatal(err)
			}
			if got := s.clock.Slept(); !slices.Equal(got, tt.want) {
				t.Fatalf("slept %v, want %v", got, tt.want)
			}
			st := s.srv.Stats()
			if st.Throttled != int64(len(tt.want)) || st.Analyses != 2 {
				t.Fatalf("stand-in: %d throttled, %d analyses; want %d and 2", st.Throttled, st.Analyses, len(tt.want))
			}
		})
	}
}

func TestStandinThrottleBeyondDeadline(t *testing.T) {
	faults := visionstandin.Faults{RateLimit: visionstandin.RateLimit{PerSecond: 1.0 / 60, Burst: 1}}
	s := newStandin(t, &devstack.VisionOptions{Faults: faults}, &Options{Timeout: 10 * time.Second}, nil)
	img := testPNG(t)
	if _, err := s.client.AnalyzeStream(context.Background(), streamBytes(img)); err != nil {
		t.Fatal(err)
	}
	_, err := s.client.AnalyzeStream(context.Background(), streamBytes(img))
	if failure.ClassOf(err) != failure.Throttled || failure.RetryAfterOf(err) != time.Minute {
		t.Fatalf("err = %v, retry after %v; want throttled, 1m", err, failure.RetryAfterOf(err))
	}
	if calls := s.srv.Stats().Calls; calls != 2 {
		t.Fatalf("stand-in saw %d calls, want 2", calls)
	}
}

func TestStandinServerErrorThenSuccess(t *testing.T) {
	img := testPNG(t)
	// The image is given by URL, which the stand-in fetches like Azure would.
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(img)
	}))
	defer files.Close()
	for _, kind := range []string{visionstandin.KindInternalServerError, visionstandin.KindFailedToProcess, visionstandin.KindServiceUnavailable} {
		t.Run(kind, func(t *testing.T) {
			faults := visionstandin.Faults{Transient: visionstandin.Transient{Rate: 1, Kinds: []string{kind}}}
			s := newStandin(t, &devstack.VisionOptions{Faults: faults}, nil, nil)
			// The fault clears during the client's backoff.
			s.clock.onSleep = func() {
				if err := s.srv.SetFaults(visionstandin.Faults{}); err != nil {
					t.Error(err)
				}
			}
			res, err := s.client.AnalyzeURL(context.Background(), files.URL+"/upload/a.png")
			if err != nil {
				t.Fatal(err)
			}
			if res.Width != 80 || res.Height != 60 {
				t.Fatalf("result = %+v", res)
			}
			st := s.srv.Stats()
			if st.Transient != 1 || st.Analyses != 1 || st.Calls != 2 {
				t.Fatalf("stand-in: %d transient, %d analyses, %d calls; want 1, 1, 2", st.Transient, st.Analyses, st.Calls)
			}
			if len(s.clock.Slept()) != 1 {
				t.Fatalf("slept %v, want one backoff", s.clock.Slept())
			}
		})
	}
}

func TestStandinAuth(t *testing.T) {
	img := testPNG(t)
	t.Run("bad key is transient and not retried", func(t *testing.T) {
		cred, _ := NewKeyCredential("wrong-key-123")
		s := newStandin(t, nil, nil, cred)
		_, err := s.client.AnalyzeStream(context.Background(), streamBytes(img))
		if failure.ClassOf(err) != failure.Transient || failure.ReasonOf(err) != "Unauthorized" {
			t.Fatalf("err = %v", err)
		}
		if calls := s.srv.Stats().Calls; calls != 1 {
			t.Fatalf("%d calls, want 1", calls)
		}
	})
	t.Run("bearer token", func(t *testing.T) {
		src := &fakeTokens{tokens: []string{"entra-token"}}
		s := newStandin(t, &devstack.VisionOptions{Tokens: []string{"entra-token"}}, nil, NewTokenCredential(src))
		if _, err := s.client.AnalyzeStream(context.Background(), streamBytes(img)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("quota exceeded is throttled", func(t *testing.T) {
		s := newStandin(t, &devstack.VisionOptions{Faults: visionstandin.Faults{QuotaExceeded: true}}, nil, nil)
		_, err := s.client.AnalyzeStream(context.Background(), streamBytes(img))
		if failure.ClassOf(err) != failure.Throttled || failure.ReasonOf(err) != "QuotaExceeded" {
			t.Fatalf("err = %v", err)
		}
	})
}
