// Package retry holds the pipeline's retry policy: when to try again, and how long to wait.
//
// Its policy is pure: it does no I/O and never sleeps. Callers own the loop, the clock and
// the sleeping; this package answers "how long before retry n" (exponential backoff with full
// jitter, or the server's own wait when it named one) and reads the server's wait from the
// response headers Azure services use. Sleep is the one wait the callers use for it.
package retry

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Defaults match the Azure SDK for Go's retry policy.
const (
	DefaultMaxRetries = 3
	DefaultBaseDelay  = 800 * time.Millisecond
	DefaultMaxDelay   = 60 * time.Second
)

// Policy is an exponential backoff with full jitter. The zero value means the defaults.
type Policy struct {
	// MaxRetries is how many times a failed call is tried again after the first attempt.
	// Zero means DefaultMaxRetries; a negative value means no retries.
	MaxRetries int
	// BaseDelay is the backoff ceiling before the first retry; it doubles for each retry.
	// Zero means DefaultBaseDelay.
	BaseDelay time.Duration
	// MaxDelay caps the backoff ceiling. Zero means DefaultMaxDelay.
	MaxDelay time.Duration
}

// Retries returns how many retries the policy allows after the first attempt.
func (p Policy) Retries() int {
	switch {
	case p.MaxRetries < 0:
		return 0
	case p.MaxRetries == 0:
		return DefaultMaxRetries
	}
	return p.MaxRetries
}

func (p Policy) base() time.Duration {
	if p.BaseDelay <= 0 {
		return DefaultBaseDelay
	}
	return p.BaseDelay
}

func (p Policy) ceilingCap() time.Duration {
	if p.MaxDelay <= 0 {
		return DefaultMaxDelay
	}
	return p.MaxDelay
}

// Ceiling returns the upper bound of the wait before retry n (n >= 1):
// min(MaxDelay, BaseDelay * 2^(n-1)). It never overflows.
func (p Policy) Ceiling(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	base, limit := p.base(), p.ceilingCap()
	if base >= limit {
		return limit
	}
	// Doubling base more than 62 times overflows; the cap is reached long before that.
	shift := n - 1
	if shift >= 62 || base > limit>>shift {
		return limit
	}
	return base << shift
}

// Backoff returns the full-jitter wait before retry n (n >= 1): a uniform draw from
// [0, Ceiling(n)). rnd returns a float in [0, 1); nil means math/rand/v2's Float64.
func (p Policy) Backoff(n int, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	f := rnd()
	if !(f >= 0) { // NaN or negative
		f = 0
	}
	if f >= 1 {
		f = math.Nextafter(1, 0)
	}
	return time.Duration(f * float64(p.Ceiling(n)))
}

// Delay returns the wait before retry n: the server's wait when it named a positive one,
// otherwise Backoff(n, rnd). The server's wait is not capped by MaxDelay; the caller caps it
// by its own deadline.
func (p Policy) Delay(n int, serverWait time.Duration, rnd func() float64) time.Duration {
	if serverWait > 0 {
		return serverWait
	}
	return p.Backoff(n, rnd)
}

// Header names that carry a server-requested wait, in order of precedence.
const (
	HeaderRetryAfterMs    = "Retry-After-Ms"
	HeaderXMsRetryAfterMs = "X-Ms-Retry-After-Ms"
	HeaderRetryAfter      = "Retry-After"
)

const (
	maxServerWait          = 365 * 24 * time.Hour
	maxServerWaitMillis    = int64(maxServerWait / time.Millisecond)
	maxServerWaitSeconds   = int64(maxServerWait / time.Second)
	retryAfterHeaderLength = 64
)

// ParseRetryAfter reads the wait a response asked for, from retry-after-ms, then
// x-ms-retry-after-ms (both milliseconds), then Retry-After (delay-seconds or an HTTP date,
// measured from now). A header that is absent or malformed is skipped in favour of the next.
// ok reports whether a valid header was found; d is never negative (a date in the past
// yields 0) and is clamped to one year.
func ParseRetryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	for _, name := range []string{HeaderRetryAfterMs, HeaderXMsRetryAfterMs} {
		if ms, ok := parseCount(h.Get(name), maxServerWaitMillis); ok {
			return time.Duration(ms) * time.Millisecond, true
		}
	}
	v := strings.TrimSpace(h.Get(HeaderRetryAfter))
	if v == "" || len(v) > retryAfterHeaderLength {
		return 0, false
	}
	if s, ok := parseCount(v, maxServerWaitSeconds); ok {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		switch {
		case d < 0:
			d = 0
		case d > maxServerWait:
			d = maxServerWait
		}
		return d, true
	}
	return 0, false
}

// parseCount parses a non-negative decimal integer, clamping it to limit.
func parseCount(v string, limit int64) (int64, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > retryAfterHeaderLength {
		return 0, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil { // only overflow is left
		return limit, true
	}
	return min(n, limit), true
}

// Interrupted returns an error for a retry loop stopped by its context: it wraps both the
// context's error and the last attempt's error, so errors.Is matches either and
// errors.As finds the last attempt's classification. A nil last returns ctxErr.
func Interrupted(ctxErr, last error) error {
	if last == nil {
		return ctxErr
	}
	if ctxErr == nil {
		return last
	}
	return &interruptedError{ctxErr: ctxErr, last: last}
}

type interruptedError struct {
	ctxErr, last error
}

func (e *interruptedError) Error() string {
	return e.ctxErr.Error() + " (last attempt: " + e.last.Error() + ")"
}

// Unwrap lists the last attempt's error first so that errors.As finds its classification
// before anything the context error might carry.
func (e *interruptedError) Unwrap() []error { return []error{e.last, e.ctxErr} }

// Sleep waits d, or until ctx ends: then it returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
