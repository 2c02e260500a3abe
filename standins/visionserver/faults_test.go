package visionserver

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/visionstandin"
)

func TestRateLimitAnswers429WithEachRetryAfterVariant(t *testing.T) {
	tests := []struct {
		mode  RetryAfterMode
		check func(t *testing.T, h http.Header, now time.Time)
	}{
		{visionstandin.RetryAfterNone, func(t *testing.T, h http.Header, _ time.Time) {
			for _, k := range []string{"Retry-After", "retry-after-ms", "x-ms-retry-after-ms"} {
				if h.Get(k) != "" {
					t.Errorf("%s: %q, want none", k, h.Get(k))
				}
			}
		}},
		{visionstandin.RetryAfterSeconds, func(t *testing.T, h http.Header, _ time.Time) {
			if h.Get("Retry-After") != "1" { // the bucket refills one token in 500ms: round up
				t.Errorf("Retry-After %q, want 1", h.Get("Retry-After"))
			}
		}},
		{"", func(t *testing.T, h http.Header, _ time.Time) { // the default is seconds
			if h.Get("Retry-After") != "1" {
				t.Errorf("Retry-After %q, want 1", h.Get("Retry-After"))
			}
		}},
		{visionstandin.RetryAfterHTTPDate, func(t *testing.T, h http.Header, now time.Time) {
			at, err := http.ParseTime(h.Get("Retry-After"))
			if err != nil {
				t.Fatalf("Retry-After %q: %v", h.Get("Retry-After"), err)
			}
			if !at.After(now.Add(500 * time.Millisecond)) {
				t.Errorf("Retry-After %v not after now+500ms (%v)", at, now)
			}
		}},
		{visionstandin.RetryAfterMS, func(t *testing.T, h http.Header, _ time.Time) {
			if h.Get("retry-after-ms") != "500" || h.Get("Retry-After") != "" {
				t.Errorf("retry-after-ms %q Retry-After %q, want 500 and none", h.Get("retry-after-ms"), h.Get("Retry-After"))
			}
		}},
		{visionstandin.RetryAfterXMSMS, func(t *testing.T, h http.Header, _ time.Time) {
			if h.Get("x-ms-retry-after-ms") != "500" || h.Get("Retry-After") != "" {
				t.Errorf("x-ms-retry-after-ms %q Retry-After %q", h.Get("x-ms-retry-after-ms"), h.Get("Retry-After"))
			}
		}},
	}
	img := solidPNG(t, 60, 60, red)
	for _, tc := range tests {
		t.Run(string(tc.mode), func(t *testing.T) {
			clock := newFakeClock()
			h := newHarness(t, &Options{Now: clock.Now,
				Faults: Faults{RateLimit: RateLimit{PerSecond: 2, Burst: 2}, RetryAfter: tc.mode}})
			for i := 0; i < 2; i++ {
				decode40(t, h.analyze40("tags", img))
			}
			r := h.analyze40("tags", img)
			e := wantError(t, r, http.StatusTooManyRequests, "429", "")
			if !strings.Contains(e.Error.Message, "retry after 1 second") {
				t.Errorf("message %q", e.Error.Message)
			}
			tc.check(t, r.header, clock.Now())

			// v3.2 shares the bucket.
			wantError(t, h.analyze32("Tags", img), http.StatusTooManyRequests, "429", "")

			clock.Advance(500 * time.Millisecond) // one token back
			decode40(t, h.analyze40("tags", img))
			wantError(t, h.analyze40("tags", img), http.StatusTooManyRequests, "429", "")

			st := h.srv.Stats()
			if st.Throttled != 3 || st.ByStatus["429"] != 3 || st.ByStatus["200"] != 3 || st.Analyses != 3 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestRateLimitDoesNotSpendTokensOnRefusedKeys(t *testing.T) {
	clock := newFakeClock()
	h := newHarness(t, &Options{Now: clock.Now, Faults: Faults{RateLimit: RateLimit{PerSecond: 1}}})
	for i := 0; i < 3; i++ {
		r := h.do(http.MethodPost, path40("tags"), map[string]string{"Content-Type": "image/png", "Ocp-Apim-Subscription-Key": "bad"}, "x")
		wantError(t, r, 401, "401", "")
	}
	decode40(t, h.analyze40("tags", solidPNG(t, 60, 60, red)))
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := newBucket(RateLimit{PerSecond: 10, Burst: 3}, t0)
	for i := 0; i < 3; i++ {
		if ok, _ := b.take(t0); !ok {
			t.Fatalf("take %d refused within burst", i)
		}
	}
	ok, wait := b.take(t0)
	if ok || wait != 100*time.Millisecond {
		t.Errorf("take = %v, %v; want refused, 100ms", ok, wait)
	}
	if ok, _ := b.take(t0.Add(100 * time.Millisecond)); !ok {
		t.Error("refused after the wait it asked for")
	}
	// Idle time never stores more than the burst.
	later := t0.Add(time.Hour)
	for i := 0; i < 3; i++ {
		if ok, _ := b.take(later); !ok {
			t.Fatalf("take %d refused after idling", i)
		}
	}
	if ok, _ := b.take(later); ok {
		t.Error("burst exceeded after idling")
	}
	// A clock set back (the manual clock can be) and forward again refills nothing.
	back := newBucket(RateLimit{PerSecond: 10, Burst: 3}, t0)
	for i, at := range []time.Time{t0.Add(-time.Hour), t0, t0} {
		if ok, _ := back.take(at); !ok {
			t.Fatalf("take %d refused within burst", i)
		}
	}
	if ok, _ := back.take(t0); ok {
		t.Error("a clock set back and forward again refilled the bucket")
	}
	// No limit.
	free := newBucket(RateLimit{}, t0)
	for i := 0; i < 1000; i++ {
		if ok, _ := free.take(t0); !ok {
			t.Fatal("unlimited bucket refused")
		}
	}
}

func TestLatencyInjection(t *testing.T) {
	h := newHarness(t, &Options{Faults: Faults{Latency: Latency{Fixed: Duration(time.Hour)}}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.http.URL+path40("tags"), strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Ocp-Apim-Subscription-Key", visionstandin.DefaultKey)
	req.Header.Set("Content-Type", "image/png")
	resp, err := h.client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("call answered %d despite an hour of latency", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want a deadline", err)
	}
	h.http.Close() // waits for the handler, which stops when the caller goes away
	st := h.srv.Stats()
	if st.Delayed != 1 || st.ByStatus["499"] != 1 || st.Analyses != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestLatencyDistributionsAreSeeded(t *testing.T) {
	f := Faults{Latency: Latency{Distribution: visionstandin.DistUniform, Min: Duration(time.Millisecond), Max: Duration(3 * time.Millisecond)}, Seed: 7}
	a, b := New(&Options{Faults: f}), New(&Options{Faults: f})
	for i := 0; i < 20; i++ {
		da := a.faults.Latency.Sample(a.rng.Float64(), a.rng.NormFloat64())
		db := b.faults.Latency.Sample(b.rng.Float64(), b.rng.NormFloat64())
		if da != db {
			t.Fatalf("draw %d: %v and %v from the same seed", i, da, db)
		}
		if da < time.Millisecond || da > 3*time.Millisecond {
			t.Fatalf("draw %d: %v outside 1ms..3ms", i, da)
		}
	}
}

func TestTransientErrors(t *testing.T) {
	img := solidPNG(t, 60, 60, red)
	t.Run("rate 1 always fails", func(t *testing.T) {
		h := newHarness(t, &Options{Faults: Faults{Transient: Transient{Rate: 1}, Seed: 3}})
		seen := map[int]bool{}
		for i := 0; i < 40; i++ {
			r := h.analyze40("tags", img)
			if r.status != 500 && r.status != 503 {
				t.Fatalf("call %d: status %d", i, r.status)
			}
			seen[r.status] = true
			e := r.errorBody(t)
			if r.status == 500 && (e.Error.Code != "InternalServerError" || e.Error.InnerError == nil) {
				t.Errorf("500 body %s", r.body)
			}
			if r.status == 503 && e.Error.Code != "ServiceUnavailable" {
				t.Errorf("503 body %s", r.body)
			}
		}
		if !seen[500] || !seen[503] {
			t.Errorf("statuses seen %v, want both 500 and 503 over 40 calls", seen)
		}
		if st := h.srv.Stats(); st.Transient != 40 || st.Analyses != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("rate 0 never fails", func(t *testing.T) {
		h := newHarness(t, &Options{Faults: Faults{Transient: Transient{Rate: 0, Kinds: []string{visionstandin.KindTimeout}}}})
		for i := 0; i < 40; i++ {
			decode40(t, h.analyze40("tags", img))
		}
	})
	t.Run("chosen kinds", func(t *testing.T) {
		tests := []struct {
			kind   string
			status int
			inner  string
		}{
			{visionstandin.KindTimeout, 500, visionstandin.KindTimeout},
			{visionstandin.KindFailedToProcess, 500, visionstandin.KindFailedToProcess},
			{visionstandin.KindInternalServerError, 500, visionstandin.KindInternalServerError},
			{visionstandin.KindServiceUnavailable, 503, ""},
		}
		for _, tc := range tests {
			h := newHarness(t, &Options{Faults: Faults{Transient: Transient{Rate: 1, Kinds: []string{tc.kind}}}})
			r := h.analyze32("Tags", img)
			code := "InternalServerError"
			if tc.status == 503 {
				code = "ServiceUnavailable"
			}
			e := wantError(t, r, tc.status, code, tc.inner)
			if e.RequestID == "" {
				t.Errorf("%s: v3.2 error without requestId", tc.kind)
			}
		}
	})
}

func TestOutageWindows(t *testing.T) {
	img := solidPNG(t, 60, 60, red)
	clock := newFakeClock()
	o, err := visionstandin.ParseOutage("10s-20s")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, &Options{Now: clock.Now, Faults: Faults{Outages: []Outage{o}}})
	decode40(t, h.analyze40("tags", img))
	clock.Advance(10 * time.Second)
	wantError(t, h.analyze40("tags", img), 503, "ServiceUnavailable", "")
	if !h.srv.Stats().OutageActive {
		t.Error("OutageActive false inside the window")
	}
	// An outage hits before authentication: a bad key also gets 503.
	r := h.do(http.MethodPost, path40("tags"), map[string]string{"Content-Type": "image/png"}, img)
	wantError(t, r, 503, "ServiceUnavailable", "")
	clock.Advance(10 * time.Second)
	decode40(t, h.analyze40("tags", img))
	if st := h.srv.Stats(); st.OutageActive || st.ByStatus["503"] != 2 || st.Analyses != 2 {
		t.Errorf("stats %+v", st)
	}

	// "for a duration starting now", set at run time.
	o, err = visionstandin.ParseOutage("30s")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.SetFaults(Faults{Outages: []Outage{o}}); err != nil {
		t.Fatal(err)
	}
	wantError(t, h.analyze40("tags", img), 503, "ServiceUnavailable", "")
	clock.Advance(30 * time.Second)
	decode40(t, h.analyze40("tags", img))
}

func TestOutageDropsConnections(t *testing.T) {
	h := newHarness(t, &Options{Faults: Faults{Outages: []Outage{{Mode: visionstandin.OutageDrop}}}})
	req, err := http.NewRequest(http.MethodPost, h.http.URL+path40("tags"), strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Ocp-Apim-Subscription-Key", visionstandin.DefaultKey)
	req.Header.Set("Content-Type", "image/png")
	resp, err := h.client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got %d, want a dropped connection", resp.StatusCode)
	}
	st := h.srv.Stats()
	if st.Dropped < 1 || len(st.ByStatus) != 0 {
		t.Errorf("stats %+v", st)
	}
	// The admin endpoint is not subject to outages.
	if r := h.do(http.MethodGet, visionstandin.AdminStatsPath, nil, nil); r.status != 200 {
		t.Errorf("admin during outage: %d", r.status)
	}
}

func TestBadKeyAndQuotaModes(t *testing.T) {
	img := solidPNG(t, 60, 60, red)
	h := newHarness(t, &Options{Faults: Faults{BadKey: true}})
	wantError(t, h.analyze40("tags", img), 401, "401", "")
	wantError(t, h.analyze32("Tags", img), 401, "401", "")

	if err := h.srv.SetFaults(Faults{QuotaExceeded: true}); err != nil {
		t.Fatal(err)
	}
	wantError(t, h.analyze40("tags", img), 403, "403", "")
	r := h.do(http.MethodPost, path40("tags"), map[string]string{"Content-Type": "image/png"}, img)
	wantError(t, r, 401, "401", "") // a bad key is still a 401

	h.srv.Reset() // back to the initial faults: bad key
	wantError(t, h.analyze40("tags", img), 401, "401", "")
	if err := h.srv.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	decode40(t, h.analyze40("tags", img))
}

func TestSetFaultsRefusesInvalid(t *testing.T) {
	s := New(nil)
	bad := []Faults{
		{Transient: Transient{Rate: 1.5}},
		{Transient: Transient{Rate: 0.5, Kinds: []string{"Oops"}}},
		{RateLimit: RateLimit{PerSecond: -1}},
		{RateLimit: RateLimit{Burst: -2}},
		{RetryAfter: "sometimes"},
		{RetryAfter: "Seconds"},
		{Latency: Latency{Distribution: "poisson"}},
		{Latency: Latency{Distribution: visionstandin.DistUniform, Min: Duration(time.Second), Max: Duration(time.Millisecond)}},
		{Latency: Latency{Fixed: Duration(-time.Second)}},
		{Latency: Latency{Min: Duration(time.Second)}},
		{Outages: []Outage{{From: Duration(time.Minute), Until: Duration(time.Second)}}},
		{Outages: []Outage{{Mode: "500"}}},
	}
	for _, f := range bad {
		if err := s.SetFaults(f); err == nil {
			t.Errorf("SetFaults(%+v) accepted", f)
		}
	}
	if got := s.Faults(); got.Transient.Rate != 0 || got.RetryAfter != "" {
		t.Errorf("a refused SetFaults changed the faults: %+v", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("New accepted invalid faults")
		}
	}()
	New(&Options{Faults: bad[0]})
}

func TestRetryAfterHeaderRoundsUp(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		wait    time.Duration
		secs    string
		millis  string
		minDate time.Time
	}{
		{1500 * time.Millisecond, "2", "1500", now.Add(1500 * time.Millisecond)},
		{time.Microsecond, "1", "1", now},
		{3 * time.Second, "3", "3000", now.Add(3 * time.Second)},
	}
	for _, tc := range tests {
		h := http.Header{}
		setRetryAfter(h, visionstandin.RetryAfterSeconds, tc.wait, now)
		if h.Get("Retry-After") != tc.secs {
			t.Errorf("%v: Retry-After %q, want %s", tc.wait, h.Get("Retry-After"), tc.secs)
		}
		h = http.Header{}
		setRetryAfter(h, visionstandin.RetryAfterMS, tc.wait, now)
		if h.Get("retry-after-ms") != tc.millis {
			t.Errorf("%v: retry-after-ms %q, want %s", tc.wait, h.Get("retry-after-ms"), tc.millis)
		}
		h = http.Header{}
		setRetryAfter(h, visionstandin.RetryAfterHTTPDate, tc.wait, now)
		at, err := http.ParseTime(h.Get("Retry-After"))
		if err != nil || at.Before(tc.minDate) {
			t.Errorf("%v: Retry-After %q (%v) earlier than %v", tc.wait, h.Get("Retry-After"), err, tc.minDate)
		}
		if _, err := strconv.Atoi(h.Get("Retry-After")); err == nil {
			t.Errorf("http-date mode sent seconds %q", h.Get("Retry-After"))
		}
	}
}
