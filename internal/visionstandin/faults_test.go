package visionstandin

import (
	"testing"
	"time"
)

func TestLatencySample(t *testing.T) {
	ms := func(n float64) Duration { return Duration(n * float64(time.Millisecond)) }
	tests := []struct {
		name string
		l    Latency
		u, n float64
		want time.Duration
	}{
		{"none", Latency{}, 0.5, 1, 0},
		{"fixed", Latency{Fixed: ms(100)}, 0.9, 3, 100 * time.Millisecond},
		{"uniform low", Latency{Distribution: DistUniform, Min: ms(50), Max: ms(150)}, 0, 0, 50 * time.Millisecond},
		{"uniform mid", Latency{Distribution: DistUniform, Min: ms(50), Max: ms(150)}, 0.5, 0, 100 * time.Millisecond},
		{"fixed plus uniform", Latency{Fixed: ms(10), Distribution: DistUniform, Max: ms(100)}, 0.25, 0, 35 * time.Millisecond},
		{"normal", Latency{Distribution: DistNormal, Mean: ms(100), StdDev: ms(20)}, 0, 1.5, 130 * time.Millisecond},
		{"normal clamped", Latency{Distribution: DistNormal, Mean: ms(100), StdDev: ms(20)}, 0, -9, 0},
	}
	for _, tc := range tests {
		if got := tc.l.Sample(tc.u, tc.n); got != tc.want {
			t.Errorf("%s: sample = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseLatency(t *testing.T) {
	ms := func(n int) Duration { return Duration(time.Duration(n) * time.Millisecond) }
	good := []struct {
		in   string
		want Latency
	}{
		{"", Latency{}},
		{"0", Latency{}},
		{"100ms", Latency{Fixed: ms(100)}},
		{"fixed:2s", Latency{Fixed: ms(2000)}},
		{"uniform:50ms-200ms", Latency{Distribution: DistUniform, Min: ms(50), Max: ms(200)}},
		{"normal:100ms,20ms", Latency{Distribution: DistNormal, Mean: ms(100), StdDev: ms(20)}},
		{"20ms+uniform:0-80ms", Latency{Fixed: ms(20), Distribution: DistUniform, Max: ms(80)}},
		{" Normal:1s,0s ", Latency{Distribution: DistNormal, Mean: ms(1000)}},
	}
	for _, tc := range good {
		got, err := ParseLatency(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseLatency(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"fast", "-5ms", "uniform:200ms-50ms", "uniform:50ms", "normal:100ms",
		"poisson:1s", "10ms+20ms", "uniform:1s-2s+normal:1s,1s", "uniform:a-b"} {
		if got, err := ParseLatency(in); err == nil {
			t.Errorf("ParseLatency(%q) = %+v, want an error", in, got)
		}
	}
}

func TestParseRateLimit(t *testing.T) {
	good := []struct {
		in   string
		want RateLimit
	}{
		{"", RateLimit{}},
		{"10", RateLimit{PerSecond: 10}},
		{"10/s", RateLimit{PerSecond: 10}},
		{"20/m", RateLimit{PerSecond: 20.0 / 60}},
		{"10/s,burst=20", RateLimit{PerSecond: 10, Burst: 20}},
		{"0.5:3", RateLimit{PerSecond: 0.5, Burst: 3}},
	}
	for _, tc := range good {
		got, err := ParseRateLimit(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRateLimit(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"fast", "-1", "10/h", "10,burst=x", "NaN", "Inf", "1,burst=-1"} {
		if got, err := ParseRateLimit(in); err == nil {
			t.Errorf("ParseRateLimit(%q) = %+v, want an error", in, got)
		}
	}
}

func TestParseOutageAndRetryAfter(t *testing.T) {
	s := func(n int) Duration { return Duration(time.Duration(n) * time.Second) }
	good := []struct {
		in   string
		want Outage
	}{
		{"30s", Outage{Until: s(30)}},
		{"10s-40s", Outage{From: s(10), Until: s(40)}},
		{"10s-", Outage{From: s(10)}},
		{"drop:5s", Outage{Until: s(5), Mode: OutageDrop}},
		{"503:0-1m", Outage{Until: s(60), Mode: OutageUnavailable}},
	}
	for _, tc := range good {
		got, err := ParseOutage(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseOutage(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "0", "soon", "40s-10s", "10s-10s", "500:5s", "-5s"} {
		if got, err := ParseOutage(in); err == nil {
			t.Errorf("ParseOutage(%q) = %+v, want an error", in, got)
		}
	}
	for in, want := range map[string]RetryAfterMode{"": RetryAfterSeconds, "NONE": RetryAfterNone,
		"http-date": RetryAfterHTTPDate, "retry-after-ms": RetryAfterMS, "x-ms-retry-after-ms": RetryAfterXMSMS} {
		if got, err := ParseRetryAfterMode(in); err != nil || got != want {
			t.Errorf("ParseRetryAfterMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseRetryAfterMode("date"); err == nil {
		t.Error("ParseRetryAfterMode(date) accepted")
	}
}

func FuzzParseLatency(f *testing.F) {
	for _, s := range []string{"", "100ms", "uniform:50ms-200ms", "normal:100ms,20ms", "20ms+uniform:0s-80ms", "fixed:1s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLatency(s)
		if err != nil {
			return
		}
		if err := l.validate(); err != nil {
			t.Fatalf("ParseLatency(%q) = %+v, which is invalid: %v", s, l, err)
		}
		again, err := ParseLatency(l.String())
		if err != nil || again != l {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, l.String(), again, err)
		}
	})
}

func FuzzParseOutage(f *testing.F) {
	for _, s := range []string{"30s", "10s-40s", "drop:5s", "503:0-1m", "10s-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOutage(s)
		if err != nil {
			return
		}
		if err := o.validate(); err != nil {
			t.Fatalf("ParseOutage(%q) = %+v, which is invalid: %v", s, o, err)
		}
		again, err := ParseOutage(o.String())
		if o.Mode == "" {
			o.Mode = OutageUnavailable
		}
		if err != nil || again != o {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, o.String(), again, err)
		}
	})
}

func FuzzParseRateLimit(f *testing.F) {
	for _, s := range []string{"10", "10/s", "20/m,burst=3", "0.5:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRateLimit(s)
		if err != nil {
			return
		}
		if err := r.validate(); err != nil {
			t.Fatalf("ParseRateLimit(%q) = %+v, which is invalid: %v", s, r, err)
		}
		if r.PerSecond > 0 && r.BurstSize() < 1 {
			t.Fatalf("a bucket of %v tokens would refuse the first call: %+v", r.BurstSize(), r)
		}
	})
}
