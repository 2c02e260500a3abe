package visionserver

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"imgpipe/internal/visionstandin"
)

// bucket is a token bucket driven by an explicit clock, so tests need not sleep.
// It is not safe for concurrent use; the Server's mutex guards it.
type bucket struct {
	rate   float64 // tokens per second; zero disables
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(r RateLimit, now time.Time) bucket {
	if r.PerSecond <= 0 {
		return bucket{}
	}
	b := r.BurstSize()
	return bucket{rate: r.PerSecond, burst: b, tokens: b, last: now}
}

// take takes one token. When none is left it returns false and how long until one is.
func (b *bucket) take(now time.Time) (bool, time.Duration) {
	if b.rate <= 0 {
		return true, 0
	}
	if now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / b.rate * float64(time.Second)))
	return false, wait
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
