package retry

import (
	"context"
	"errors"
	"math"
	"net/http"
	"testing"
	"time"

	"imgpipe/pkg/failure"
)

func fixed(f float64) func() float64 { return func() float64 { return f } }

func TestRetries(t *testing.T) {
	tests := []struct {
		p    Policy
		want int
	}{
		{Policy{}, 3},
		{Policy{MaxRetries: 5}, 5},
		{Policy{MaxRetries: -1}, 0},
	}
	for _, tt := range tests {
		if got := tt.p.Retries(); got != tt.want {
			t.Errorf("%+v.Retries() = %d, want %d", tt.p, got, tt.want)
		}
	}
}

func TestCeiling(t *testing.T) {
	def := Policy{}
	custom := Policy{BaseDelay: time.Second, MaxDelay: 10 * time.Second}
	tests := []struct {
		name string
		p    Policy
		n    int
		want time.Duration
	}{
		{"default first retry", def, 1, 800 * time.Millisecond},
		{"default second", def, 2, 1600 * time.Millisecond},
		{"default third", def, 3, 3200 * time.Millisecond},
		{"default seventh", def, 7, 51200 * time.Millisecond},
		{"default eighth capped", def, 8, 60 * time.Second},
		{"huge n capped, no overflow", def, 1000, 60 * time.Second},
		{"n below one treated as one", def, 0, 800 * time.Millisecond},
		{"custom", custom, 4, 8 * time.Second},
		{"custom capped", custom, 5, 10 * time.Second},
		{"base above cap", Policy{BaseDelay: time.Minute, MaxDelay: time.Second}, 1, time.Second},
		{"max duration base", Policy{BaseDelay: math.MaxInt64, MaxDelay: math.MaxInt64}, 3, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Ceiling(tt.n); got != tt.want {
				t.Errorf("Ceiling(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
}

func TestBackoffFullJitter(t *testing.T) {
	p := Policy{}
	tests := []struct {
		name string
		n    int
		rnd  float64
		want time.Duration
	}{
		{"zero draw waits zero", 1, 0, 0},
		{"half draw", 1, 0.5, 400 * time.Millisecond},
		{"half draw third retry", 3, 0.5, 1600 * time.Millisecond},
		{"quarter draw capped", 20, 0.25, 15 * time.Second},
		{"negative draw clamps to zero", 2, -3, 0},
		{"NaN draw clamps to zero", 2, math.NaN(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Backoff(tt.n, fixed(tt.rnd)); got != tt.want {
				t.Errorf("Backoff(%d, %v) = %v, want %v", tt.n, tt.rnd, got, tt.want)
			}
		})
	}
	// A draw at or above 1 stays strictly below the ceiling.
	for _, f := range []float64{math.Nextafter(1, 0), 1, 7} {
		if got, ceil := p.Backoff(2, fixed(f)), p.Ceiling(2); got >= ceil || got < ceil-time.Microsecond {
			t.Errorf("Backoff(2, %v) = %v, want just below %v", f, got, ceil)
		}
	}
}

func TestBackoffRangeWithRealSource(t *testing.T) {
	p := Policy{}
	for n := 1; n <= 10; n++ {
		for range 200 {
			if d := p.Backoff(n, nil); d < 0 || d >= p.Ceiling(n) {
				t.Fatalf("Backoff(%d) = %v outside [0, %v)", n, d, p.Ceiling(n))
			}
		}
	}
}

func TestDelayPrefersServerWait(t *testing.T) {
	p := Policy{}
	tests := []struct {
		name   string
		n      int
		server time.Duration
		want   time.Duration
	}{
		{"server wait wins", 1, 5 * time.Second, 5 * time.Second},
		{"server wait beyond cap is kept", 1, 5 * time.Minute, 5 * time.Minute},
		{"zero server wait falls back to backoff", 2, 0, 800 * time.Millisecond},
		{"negative server wait falls back", 1, -time.Second, 400 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Delay(tt.n, tt.server, fixed(0.5)); got != tt.want {
				t.Errorf("Delay = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	h := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
		ok     bool
	}{
		{"none", h(), 0, false},
		{"retry-after-ms", h("retry-after-ms", "1500"), 1500 * time.Millisecond, true},
		{"x-ms-retry-after-ms", h("x-ms-retry-after-ms", "250"), 250 * time.Millisecond, true},
		{"retry-after seconds", h("Retry-After", "7"), 7 * time.Second, true},
		{"retry-after zero", h("Retry-After", "0"), 0, true},
		{"retry-after spaces", h("Retry-After", " 3 "), 3 * time.Second, true},
		{"retry-after http date", h("Retry-After", "Sat, 01 Mar 2025 12:00:30 GMT"), 30 * time.Second, true},
		{"retry-after rfc850 date", h("Retry-After", "Saturday, 01-Mar-25 12:01:00 GMT"), time.Minute, true},
		{"retry-after asctime date", h("Retry-After", "Sat Mar  1 12:00:05 2025"), 5 * time.Second, true},
		{"retry-after date in past", h("Retry-After", "Sat, 01 Mar 2025 11:00:00 GMT"), 0, true},
		{"ms beats x-ms and seconds", h("retry-after-ms", "10", "x-ms-retry-after-ms", "20", "Retry-After", "30"), 10 * time.Millisecond, true},
		{"x-ms beats seconds", h("x-ms-retry-after-ms", "20", "Retry-After", "30"), 20 * time.Millisecond, true},
		{"bad ms falls through", h("retry-after-ms", "soon", "Retry-After", "2"), 2 * time.Second, true},
		{"negative ms falls through", h("retry-after-ms", "-5", "x-ms-retry-after-ms", "9"), 9 * time.Millisecond, true},
		{"fractional seconds rejected", h("Retry-After", "1.5"), 0, false},
		{"garbage", h("Retry-After", "tomorrow"), 0, false},
		{"huge clamps to a year", h("Retry-After", "99999999999999999999999"), 365 * 24 * time.Hour, true},
		{"huge ms clamps to a year", h("retry-after-ms", "9223372036854775807"), 365 * 24 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.header, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseRetryAfter = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "12", "-1", "1.5", "Sat, 01 Mar 2025 12:00:30 GMT", "99999999999999999999"} {
		f.Add(s, s)
	}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ms, ra string) {
		h := http.Header{}
		h.Set("retry-after-ms", ms)
		h.Set("Retry-After", ra)
		d, ok := ParseRetryAfter(h, now)
		if d < 0 || d > 365*24*time.Hour {
			t.Fatalf("ParseRetryAfter(%q, %q) = %v out of range", ms, ra, d)
		}
		if !ok && d != 0 {
			t.Fatalf("not ok but d = %v", d)
		}
	})
}

func TestInterrupted(t *testing.T) {
	last := failure.New(failure.Transient, "ServiceUnavailable", errors.New("503"))
	err := Interrupted(context.Canceled, last)
	if !errors.Is(err, context.Canceled) {
		t.Error("context error lost")
	}
	if !errors.Is(err, last) {
		t.Error("last attempt's error lost")
	}
	if got := failure.ReasonOf(err); got != "ServiceUnavailable" {
		t.Errorf("ReasonOf = %q, want the last attempt's reason", got)
	}
	if got, want := err.Error(), "context canceled (last attempt: ServiceUnavailable (transient): 503)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if Interrupted(context.DeadlineExceeded, nil) != context.DeadlineExceeded {
		t.Error("nil last must return the context error")
	}
	if Interrupted(nil, last) != last {
		t.Error("nil context error must return last")
	}
}

// Sleep waits its duration, and a context that ends cuts it short with the context's error.
func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep 1ms: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- Sleep(ctx, time.Hour) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep on a cancelled context: %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Sleep on a cancelled context waited its whole hour")
	}
}
