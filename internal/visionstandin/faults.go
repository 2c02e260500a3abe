package visionstandin

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Faults is the failure behaviour of the stand-in. The zero value injects nothing.
// It is JSON-tagged so that GET/PUT /admin/faults and command-line flags share it.
//
// Faults apply only to the analysis endpoints, never to /admin/.
type Faults struct {
	// Latency is added to every analysis call that passes the rate limiter.
	Latency Latency `json:"latency"`
	// Transient makes a fraction of calls fail with 500 or 503.
	Transient Transient `json:"transient"`
	// RateLimit is a token bucket; calls beyond it get 429.
	RateLimit RateLimit `json:"rateLimit"`
	// RetryAfter chooses the header a 429 carries. Empty means RetryAfterSeconds.
	RetryAfter RetryAfterMode `json:"retryAfter,omitempty"`
	// Outages are windows, as offsets from the moment these faults were set, during which
	// the service answers 503 or drops connections.
	Outages []Outage `json:"outages,omitempty"`
	// BadKey makes every call fail with 401, whatever key or token it carries.
	BadKey bool `json:"badKey,omitempty"`
	// QuotaExceeded makes every authenticated call fail with 403 (call volume quota used up).
	QuotaExceeded bool `json:"quotaExceeded,omitempty"`
	// EchoURL makes the error answers to calls that give the image by URL quote that URL in
	// their messages, as services do in the wild: a client must keep a presigned URL's
	// signature out of its logs and errors.
	EchoURL bool `json:"echoURL,omitempty"`
	// Seed seeds the random source used for latency and transient errors, so a run is
	// repeatable for a given order of calls.
	Seed int64 `json:"seed,omitempty"`
}

// Duration is a time.Duration that reads and writes JSON as a Go duration string ("150ms").
// It also reads a JSON number as nanoseconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration %s: want a string like \"150ms\" or nanoseconds", b)
	}
	*d = Duration(n)
	return nil
}

// Latency distributions.
const (
	DistNone    = ""        // only the fixed part
	DistUniform = "uniform" // uniform between Min and Max
	DistNormal  = "normal"  // normal with Mean and StdDev, clamped at zero
)

// Latency is a fixed delay plus an optional random part drawn from a distribution.
type Latency struct {
	Fixed        Duration `json:"fixed,omitempty"`
	Distribution string   `json:"distribution,omitempty"`
	Min          Duration `json:"min,omitempty"`
	Max          Duration `json:"max,omitempty"`
	Mean         Duration `json:"mean,omitempty"`
	StdDev       Duration `json:"stddev,omitempty"`
}

// IsZero reports whether l adds no delay.
func (l Latency) IsZero() bool { return l == Latency{} }

// Sample draws one delay; u is uniform in [0,1) and n is standard normal.
func (l Latency) Sample(u, n float64) time.Duration {
	d := l.Fixed.D()
	switch l.Distribution {
	case DistUniform:
		d += l.Min.D() + time.Duration(u*float64(l.Max.D()-l.Min.D()))
	case DistNormal:
		extra := float64(l.Mean.D()) + n*float64(l.StdDev.D())
		if extra > 0 {
			d += time.Duration(extra)
		}
	}
	return d
}

func (l Latency) validate() error {
	if l.Fixed < 0 || l.Min < 0 || l.Max < 0 || l.Mean < 0 || l.StdDev < 0 {
		return errors.New("latency: durations must not be negative")
	}
	switch l.Distribution {
	case DistNone:
		if l.Min != 0 || l.Max != 0 || l.Mean != 0 || l.StdDev != 0 {
			return errors.New("latency: min/max/mean/stddev need a distribution")
		}
	case DistUniform:
		if l.Min > l.Max {
			return fmt.Errorf("latency: uniform min %v above max %v", l.Min.D(), l.Max.D())
		}
		if l.Mean != 0 || l.StdDev != 0 {
			return errors.New("latency: uniform takes min and max, not mean and stddev")
		}
	case DistNormal:
		if l.Min != 0 || l.Max != 0 {
			return errors.New("latency: normal takes mean and stddev, not min and max")
		}
	default:
		return fmt.Errorf("latency: unknown distribution %q (want uniform or normal)", l.Distribution)
	}
	return nil
}

// String formats l in the syntax ParseLatency reads.
func (l Latency) String() string {
	var parts []string
	if l.Fixed != 0 || l.Distribution == DistNone {
		parts = append(parts, l.Fixed.D().String())
	}
	switch l.Distribution {
	case DistUniform:
		parts = append(parts, fmt.Sprintf("uniform:%v-%v", l.Min.D(), l.Max.D()))
	case DistNormal:
		parts = append(parts, fmt.Sprintf("normal:%v,%v", l.Mean.D(), l.StdDev.D()))
	}
	return strings.Join(parts, "+")
}

// ParseLatency reads a latency flag. Forms, combinable with "+":
//
//	"150ms"                 fixed delay
//	"uniform:50ms-200ms"    uniform between min and max
//	"normal:100ms,20ms"     normal with mean and standard deviation (clamped at zero)
//	"20ms+uniform:0s-80ms"  fixed plus random
//
// The empty string and "0" mean no latency.
func ParseLatency(s string) (Latency, error) {
	var l Latency
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || s == "none" {
		return l, nil
	}
	fixedSeen := false
	for _, part := range strings.Split(s, "+") {
		part = strings.TrimSpace(part)
		kind, rest, hasKind := strings.Cut(part, ":")
		if !hasKind {
			if fixedSeen {
				return Latency{}, fmt.Errorf("latency %q: two fixed parts", s)
			}
			d, err := parseNonNegDuration(part)
			if err != nil {
				return Latency{}, fmt.Errorf("latency %q: %w", s, err)
			}
			l.Fixed, fixedSeen = Duration(d), true
			continue
		}
		if l.Distribution != DistNone {
			return Latency{}, fmt.Errorf("latency %q: two distributions", s)
		}
		switch strings.ToLower(kind) {
		case DistUniform:
			lo, hi, ok := strings.Cut(rest, "-")
			if !ok {
				return Latency{}, fmt.Errorf("latency %q: uniform wants MIN-MAX", s)
			}
			a, err := parseNonNegDuration(lo)
			if err != nil {
				return Latency{}, fmt.Errorf("latency %q: %w", s, err)
			}
			b, err := parseNonNegDuration(hi)
			if err != nil {
				return Latency{}, fmt.Errorf("latency %q: %w", s, err)
			}
			l.Distribution, l.Min, l.Max = DistUniform, Duration(a), Duration(b)
		case DistNormal:
			m, sd, ok := strings.Cut(rest, ",")
			if !ok {
				return Latency{}, fmt.Errorf("latency %q: normal wants MEAN,STDDEV", s)
			}
			a, err := parseNonNegDuration(m)
			if err != nil {
				return Latency{}, fmt.Errorf("latency %q: %w", s, err)
			}
			b, err := parseNonNegDuration(sd)
			if err != nil {
				return Latency{}, fmt.Errorf("latency %q: %w", s, err)
			}
			l.Distribution, l.Mean, l.StdDev = DistNormal, Duration(a), Duration(b)
		case "fixed":
			if fixedSeen {
				return Latency{}, fmt.Errorf("latency %q: two fixed parts", s)
			}
			d, err := parseNonNegDuration(rest)
			if err != nil {
				return Latency{}, fmt.Errorf("latency %q: %w", s, err)
			}
			l.Fixed, fixedSeen = Duration(d), true
		default:
			return Latency{}, fmt.Errorf("latency %q: unknown distribution %q", s, kind)
		}
	}
	if err := l.validate(); err != nil {
		return Latency{}, err
	}
	return l, nil
}

func parseNonNegDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %v", d)
	}
	return d, nil
}

// Transient error kinds. The first three answer 500, the last 503.
const (
	KindInternalServerError = "InternalServerError"
	KindFailedToProcess     = "FailedToProcess"
	KindTimeout             = "Timeout"
	KindServiceUnavailable  = "ServiceUnavailable"
)

var allTransientKinds = []string{KindInternalServerError, KindFailedToProcess, KindTimeout, KindServiceUnavailable}

// TransientKinds returns every kind a Transient fault may answer with, the choice when Kinds is
// empty.
func TransientKinds() []string { return append([]string(nil), allTransientKinds...) }

// Transient makes a fraction Rate (0..1) of calls fail with one of Kinds, chosen at random.
// An empty Kinds means all four kinds.
type Transient struct {
	Rate  float64  `json:"rate,omitempty"`
	Kinds []string `json:"kinds,omitempty"`
}

func (t Transient) validate() error {
	if math.IsNaN(t.Rate) || t.Rate < 0 || t.Rate > 1 {
		return fmt.Errorf("transient: rate %v outside 0..1", t.Rate)
	}
	for _, k := range t.Kinds {
		if !validKind(k) {
			return fmt.Errorf("transient: unknown kind %q (want one of %s)", k, strings.Join(allTransientKinds, ", "))
		}
	}
	return nil
}

func validKind(k string) bool {
	for _, v := range allTransientKinds {
		if k == v {
			return true
		}
	}
	return false
}

// RateLimit is a token bucket: PerSecond tokens are added each second up to Burst; each
// call takes one. PerSecond zero disables the limit. Burst zero means max(1, ceil(PerSecond)).
type RateLimit struct {
	PerSecond float64 `json:"perSecond,omitempty"`
	Burst     int     `json:"burst,omitempty"`
}

func (r RateLimit) validate() error {
	if math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) || r.PerSecond < 0 {
		return fmt.Errorf("rate limit: perSecond %v must be a non-negative number", r.PerSecond)
	}
	if r.Burst < 0 {
		return fmt.Errorf("rate limit: burst %d must not be negative", r.Burst)
	}
	return nil
}

// BurstSize is the token bucket's capacity: Burst, or the calls of one second when unset.
func (r RateLimit) BurstSize() float64 {
	if r.Burst > 0 {
		return float64(r.Burst)
	}
	return math.Max(1, math.Ceil(r.PerSecond))
}

// ParseRateLimit reads "10" or "10/s" (calls per second), "20/m" (per minute), each
// optionally followed by ",burst=N" or ":N". The empty string and "0" disable the limit.
func ParseRateLimit(s string) (RateLimit, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || s == "none" {
		return RateLimit{}, nil
	}
	rateStr, burstStr, hasBurst := strings.Cut(s, ",")
	if !hasBurst {
		rateStr, burstStr, hasBurst = strings.Cut(s, ":")
	}
	per := 1.0
	num := strings.TrimSpace(rateStr)
	if n, unit, ok := strings.Cut(num, "/"); ok {
		num = strings.TrimSpace(n)
		switch strings.TrimSpace(unit) {
		case "s", "sec", "second":
		case "m", "min", "minute":
			per = 60
		default:
			return RateLimit{}, fmt.Errorf("rate limit %q: unit %q (want s or m)", s, unit)
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return RateLimit{}, fmt.Errorf("rate limit %q: %w", s, err)
	}
	r := RateLimit{PerSecond: v / per}
	if hasBurst {
		b := strings.TrimPrefix(strings.TrimSpace(burstStr), "burst=")
		n, err := strconv.Atoi(b)
		if err != nil {
			return RateLimit{}, fmt.Errorf("rate limit %q: burst: %w", s, err)
		}
		r.Burst = n
	}
	if err := r.validate(); err != nil {
		return RateLimit{}, err
	}
	return r, nil
}

// RetryAfterMode chooses which header tells a throttled caller how long to wait.
type RetryAfterMode string

// Retry-after header variants.
const (
	RetryAfterNone     RetryAfterMode = "none"                // no header at all
	RetryAfterSeconds  RetryAfterMode = "seconds"             // Retry-After: 2
	RetryAfterHTTPDate RetryAfterMode = "http-date"           // Retry-After: Mon, 02 Jan 2006 15:04:05 GMT
	RetryAfterMS       RetryAfterMode = "retry-after-ms"      // retry-after-ms: 1500
	RetryAfterXMSMS    RetryAfterMode = "x-ms-retry-after-ms" // x-ms-retry-after-ms: 1500
)

// ParseRetryAfterMode reads one of the RetryAfter* names (case-insensitive); "" means seconds.
func ParseRetryAfterMode(s string) (RetryAfterMode, error) {
	m := RetryAfterMode(strings.ToLower(strings.TrimSpace(s)))
	switch m {
	case "":
		return RetryAfterSeconds, nil
	case RetryAfterNone, RetryAfterSeconds, RetryAfterHTTPDate, RetryAfterMS, RetryAfterXMSMS:
		return m, nil
	}
	return "", fmt.Errorf("retry-after mode %q (want none, seconds, http-date, retry-after-ms or x-ms-retry-after-ms)", s)
}

// Outage modes.
const (
	OutageUnavailable = "503"  // answer 503 ServiceUnavailable
	OutageDrop        = "drop" // close the connection without an answer
)

// Outage is a window [From, Until) measured from the moment the faults were set (New,
// SetFaults, PUT /admin/faults or Reset). Until zero means "until the faults change".
type Outage struct {
	From  Duration `json:"from,omitempty"`
	Until Duration `json:"until,omitempty"`
	// Mode is OutageUnavailable (the default) or OutageDrop.
	Mode string `json:"mode,omitempty"`
}

func (o Outage) validate() error {
	if o.From < 0 || o.Until < 0 {
		return errors.New("outage: offsets must not be negative")
	}
	if o.Until != 0 && o.Until <= o.From {
		return fmt.Errorf("outage: until %v not after from %v", o.Until.D(), o.From.D())
	}
	switch o.Mode {
	case "", OutageUnavailable, OutageDrop:
	default:
		return fmt.Errorf("outage: mode %q (want 503 or drop)", o.Mode)
	}
	return nil
}

// Covers reports whether the outage window holds elapsed, the time since the faults were set.
func (o Outage) Covers(elapsed time.Duration) bool {
	return elapsed >= o.From.D() && (o.Until == 0 || elapsed < o.Until.D())
}

// String formats o in the syntax ParseOutage reads.
func (o Outage) String() string {
	mode := o.Mode
	if mode == "" {
		mode = OutageUnavailable
	}
	if o.Until == 0 {
		return fmt.Sprintf("%s:%v-", mode, o.From.D())
	}
	return fmt.Sprintf("%s:%v-%v", mode, o.From.D(), o.Until.D())
}

// ParseOutage reads an outage flag: an optional mode ("503:" or "drop:") then either a
// duration starting now ("30s") or a window of offsets ("10s-40s"; "10s-" is open-ended).
func ParseOutage(s string) (Outage, error) {
	var o Outage
	rest := strings.TrimSpace(s)
	if mode, r, ok := strings.Cut(rest, ":"); ok {
		switch strings.ToLower(strings.TrimSpace(mode)) {
		case OutageUnavailable:
			o.Mode = OutageUnavailable
		case OutageDrop:
			o.Mode = OutageDrop
		default:
			return Outage{}, fmt.Errorf("outage %q: mode %q (want 503 or drop)", s, mode)
		}
		rest = r
	}
	from, until, isWindow := strings.Cut(rest, "-")
	if !isWindow {
		d, err := parseNonNegDuration(rest)
		if err != nil {
			return Outage{}, fmt.Errorf("outage %q: %w", s, err)
		}
		if d == 0 {
			return Outage{}, fmt.Errorf("outage %q: zero length", s)
		}
		o.Until = Duration(d)
	} else {
		a, err := parseNonNegDuration(from)
		if err != nil {
			return Outage{}, fmt.Errorf("outage %q: %w", s, err)
		}
		o.From = Duration(a)
		if strings.TrimSpace(until) != "" {
			b, err := parseNonNegDuration(until)
			if err != nil {
				return Outage{}, fmt.Errorf("outage %q: %w", s, err)
			}
			if b == 0 {
				return Outage{}, fmt.Errorf("outage %q: until must be after from", s)
			}
			o.Until = Duration(b)
		}
	}
	if err := o.validate(); err != nil {
		return Outage{}, fmt.Errorf("outage %q: %w", s, err)
	}
	return o, nil
}

// Validate reports the first inconsistency in f.
func (f Faults) Validate() error {
	if err := f.Latency.validate(); err != nil {
		return err
	}
	if err := f.Transient.validate(); err != nil {
		return err
	}
	if err := f.RateLimit.validate(); err != nil {
		return err
	}
	if f.RetryAfter != "" {
		if _, err := ParseRetryAfterMode(string(f.RetryAfter)); err != nil || RetryAfterMode(strings.ToLower(string(f.RetryAfter))) != f.RetryAfter {
			return fmt.Errorf("retryAfter %q (want none, seconds, http-date, retry-after-ms or x-ms-retry-after-ms)", f.RetryAfter)
		}
	}
	for _, o := range f.Outages {
		if err := o.validate(); err != nil {
			return err
		}
	}
	return nil
}

// Clone returns a deep copy so callers cannot alias the server's slices.
func (f Faults) Clone() Faults {
	f.Transient.Kinds = append([]string(nil), f.Transient.Kinds...)
	f.Outages = append([]Outage(nil), f.Outages...)
	if len(f.Transient.Kinds) == 0 {
		f.Transient.Kinds = nil
	}
	if len(f.Outages) == 0 {
		f.Outages = nil
	}
	return f
}
