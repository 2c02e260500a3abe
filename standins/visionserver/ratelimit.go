package visionserver

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"imgpipe/internal/visionstandin"
)

// bucket is the call rate limit: a golang.org/x/time/rate token bucket driven by the
// Server's clock, so that a manual clock drives it too and tests need not sleep. It is
// not safe for concurrent use; the Server's mutex guards it.
type bucket struct {
	lim  *rate.Limiter // nil disables the limit
	last time.Time     // the latest time taken at: a clock set back refills nothing
}

func newBucket(r RateLimit, now time.Time) bucket {
	if r.PerSecond <= 0 {
		return bucket{}
	}
	// A new Limiter holds a full bucket.
	return bucket{lim: rate.NewLimiter(rate.Limit(r.PerSecond), int(r.BurstSize())), last: now}
}

// take takes one token. When none is left it returns false and how long until one is,
// rounded up to the nanosecond so that coming back after it always succeeds.
func (b *bucket) take(now time.Time) (bool, time.Duration) {
	if b.lim == nil {
		return true, 0
	}
	if now.Before(b.last) {
		now = b.last
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.lim.TokensAt(now)
	return false, time.Duration(math.Ceil(missing / float64(b.lim.Limit()) * float64(time.Second)))
}

// setRetryAfter writes the header mode asks for. Whole-second forms round up, with a
// minimum of one second, so a caller that honours them never comes back too early.
func setRetryAfter(h http.Header, mode RetryAfterMode, wait time.Duration, now time.Time) {
	secs := int64(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	ms := int64(math.Ceil(float64(wait) / float64(time.Millisecond)))
	if ms < 1 {
		ms = 1
	}
	switch mode {
	case visionstandin.RetryAfterNone:
	case visionstandin.RetryAfterHTTPDate:
		// An HTTP date has whole seconds: add one so truncation never shortens the wait.
		h.Set("Retry-After", now.Add(time.Duration(secs+1)*time.Second).UTC().Format(http.TimeFormat))
	case visionstandin.RetryAfterMS:
		h.Set("retry-after-ms", strconv.FormatInt(ms, 10))
	case visionstandin.RetryAfterXMSMS:
		h.Set("x-ms-retry-after-ms", strconv.FormatInt(ms, 10))
	default: // visionstandin.RetryAfterSeconds and ""
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
}
