package ratelimit

import (
	"math"
	"time"
)

// Adaptive tunes how an adaptive Bucket's rate follows the far side's throttling. Zero fields
// take their defaults. The rates are fractions of the bucket's ceiling (the rate given to
// NewBucket), so one setting fits a free tier of 0.33 calls/s and a paid one of 20.
//
// Why a rate and not only a concurrency limit: several replicas sharing one quota (calls per
// second) without talking to each other must each settle on their share of it. With 100 ms
// calls and a 20 calls/s quota, four replicas need half a call in flight each, which no
// concurrency limit can express; a rate can.
//
// How it adapts (TCP's congestion control applied to calls per second, with CUBIC's memory of
// the last good maximum and TCP's congestion-window validation):
//   - Slow start: the rate begins at Initial x ceiling and grows by SlowStartGrowth per
//     second until the first throttled call. Replicas that start together thus reach their
//     shares together, and a new replica joins without a burst.
//   - A throttled call cuts the rate: x SlowStartBackoff when it ends the slow start, x
//     Backoff after, and the rate at the cut is remembered as the last good maximum. Calls
//     reserved before a cut were made at the old rate, so until they have all been reported
//     (10 s at most) further throttles belong to the same overload: each cuts again (after
//     a hold of two calls' time at the new rate, at least 200 ms) and lowers the maximum to
//     the rate it cuts from, so that an overload ends quickly and is not repeated. A new
//     overload's cut below the previous maximum remembers less than the rate (CUBIC's fast
//     convergence: a replica that keeps losing ground gives share up to newcomers sooner).
//   - A successful call grows the rate: quickly (time constant 1 s) back towards 95% of the
//     last good maximum, and never slower than, then by, Probe x ceiling per second: the
//     replicas probe for spare quota together at K x Probe, slowly, so the next 429 comes
//     late. It grows only while the rate is what holds calls back (a call waited for a token
//     within the last second, or the time of three calls at low rates): an idle replica does
//     not build up a rate it would then spend at once.
//   - Tokens are given at most a second (or two calls' time) ahead; a caller further back
//     gets a Reservation marked Again and reserves again later. A token promised seconds
//     ahead keeps the rate of the moment it was given: with many workers waiting, a cut
//     would reach the far side only seconds later, and a rise would come too late.
//   - The rate stays between Min x ceiling and the ceiling, and the burst shrinks with it
//     (burst x rate/ceiling, at least one call), so that replicas at their shares do not each
//     keep a whole quota's burst.
//
// Fair share: every replica grows by the same calls/s per second while the quota's 429s fall
// on each in proportion to its calls, so a replica above its share is cut more often and by
// more; the rates converge (Chiu and Jain's argument for AIMD). TestAdaptiveReplicasShareAQuota
// checks it in simulated time; BenchmarkAdaptiveQuotaShare reports the figures up to 8
// replicas. Replicas that start together overshoot once, at the end of their slow starts
// (the far side's burst hides the overload for a few seconds): that costs 10 to 30 429s,
// then few come.
type Adaptive struct {
	// Initial is the starting rate; default 1/16.
	Initial float64
	// Min is the lowest rate; default 1/100.
	Min float64
	// SlowStartGrowth is the factor per second by which the rate grows until the first
	// throttled call, above 1; default 1.15.
	SlowStartGrowth float64
	// SlowStartBackoff multiplies the rate at the throttled call that ends the slow start,
	// in (0, 1); default 0.7.
	SlowStartBackoff float64
	// Backoff multiplies the rate on a later throttled call, in (0, 1); default 0.8.
	Backoff float64
	// Probe is the additive increase per second above the last good maximum; default 1/600.
	Probe float64
}

// Constants of the adaptation that need no tuning.
const (
	recoveryTarget = 0.95                  // fast recovery aims at this share of the last good maximum
	recoveryTau    = time.Second           // time constant of the fast recovery
	scheduleAhead  = time.Second           // an adaptive bucket gives tokens this far ahead (or two calls' time)
	minAgain       = 50 * time.Millisecond // shortest wait before reserving again
	holdCalls      = 2                     // throttles are ignored for this many calls' time after a cut
	holdMin        = 200 * time.Millisecond
	episodeMax     = 10 * time.Second // the longest one overload counts
)

// adaptState is an adaptive bucket's state; Bucket.mu guards it.
type adaptState struct {
	o                       Adaptive // resolved: absolute rates
	initial, min, probe     float64
	slowStart               bool
	maxGood                 float64   // the last good maximum (0 before any cut)
	lastIncrease, holdUntil time.Time // when the rate last grew; until when throttles are ignored
	limitedAt               time.Time // when a call last waited for a token
	outstanding             int       // calls reserved and not yet reported or cancelled
	episode                 int       // outcomes still to come from calls reserved before the overload's first cut
	episodeUntil            time.Time // when episode lapses anyway
}

func newAdaptState(o Adaptive, ceiling float64, now time.Time) *adaptState {
	frac := func(v, def float64) float64 {
		if v > 0 && v <= 1 {
			return v
		}
		return def
	}
	factor := func(v, def float64) float64 {
		if v > 0 && v < 1 {
			return v
		}
		return def
	}
	o.Initial = frac(o.Initial, 1.0/16)
	o.Min = min(frac(o.Min, 1.0/100), o.Initial)
	o.Probe = frac(o.Probe, 1.0/600)
	if !(o.SlowStartGrowth > 1) {
		o.SlowStartGrowth = 1.15
	}
	o.SlowStartBackoff = factor(o.SlowStartBackoff, 0.7)
	o.Backoff = factor(o.Backoff, 0.8)
	return &adaptState{
		o: o, initial: o.Initial * ceiling, min: o.Min * ceiling, probe: o.Probe * ceiling,
		slowStart: true, lastIncrease: now,
	}
}

// Adapt reports the outcome of a call made with a token of this bucket (Reserve or Wait): an
// adaptive bucket (BucketOptions.Adaptive) adapts its rate to it; a fixed one ignores it.
// Failed outcomes change no rate. Report each call once, or Cancel its reservation.
func (b *Bucket) Adapt(o Outcome) {
	if b.adapt == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.refill() // tokens earned so far count at the old rate
	a := b.adapt
	if a.outstanding > 0 {
		a.outstanding--
	}
	inEpisode := a.episode > 0 && now.Before(a.episodeUntil)
	if a.episode > 0 {
		a.episode--
	}
	switch o {
	case Succeeded:
		// At low rates successes are seconds apart: the windows stretch to a few calls.
		span := max(time.Second, time.Duration(3*float64(time.Second)/b.rate))
		dt := min(now.Sub(a.lastIncrease), span)
		a.lastIncrease = now
		if dt <= 0 || now.Sub(a.limitedAt) > span {
			return
		}
		r := b.rate
		switch target := recoveryTarget * a.maxGood; {
		case a.slowStart:
			r *= math.Pow(a.o.SlowStartGrowth, dt.Seconds())
		case r < target:
			// Never slower than the probe, so that the rate passes the target.
			r += max((target-r)*-math.Expm1(-dt.Seconds()/recoveryTau.Seconds()), a.probe*dt.Seconds())
		default:
			r += a.probe * dt.Seconds()
		}
		b.setRate(r)
	case Throttled:
		if now.Before(a.holdUntil) {
			a.slowStart = false
			return
		}
		r := b.rate
		factor := a.o.Backoff
		if a.slowStart {
			factor = a.o.SlowStartBackoff
		}
		switch {
		case inEpisode:
			// Still the overload of the last cut: whatever the rate was then was too much.
			a.maxGood = min(a.maxGood, r)
		case r < a.maxGood:
			a.maxGood = r * (1 + factor) / 2
		default:
			a.maxGood = r
		}
		if !inEpisode {
			// The calls reserved and not yet reported were made before this cut, at the
			// old rate: their outcomes belong to this overload (a bound in time, should
			// some never be reported).
			a.episode, a.episodeUntil = a.outstanding, now.Add(episodeMax)
		}
		a.slowStart = false
		b.setRate(r * factor)
		a.lastIncrease = now
		a.holdUntil = now.Add(max(holdMin, time.Duration(holdCalls*float64(time.Second)/b.rate)))
	}
}

// setRate changes the rate within [min, ceiling] and trims the tokens to the new capacity.
// b.mu must be held and b.refill called just before.
func (b *Bucket) setRate(r float64) {
	b.rate = min(max(r, b.adapt.min), b.ceiling)
	b.tokens = min(b.tokens, b.capacity())
}

// horizon is how far ahead tokens are given at rate r: a second, or two calls' time.
func (a *adaptState) horizon(r float64) time.Duration {
	return max(scheduleAhead, time.Duration(2*float64(time.Second)/r))
}
