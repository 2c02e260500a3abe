// Package autoscale decides how many consumers of a queue should run from the queue's backlog,
// at two levels that share one formula, Needed (backlog / target per consumer, rounded up):
//
//   - Scaler sizes the worker pool inside one analyzer: enough workers for a target backlog
//     per worker, between a minimum and a maximum, never more than the downstream rate limit
//     can keep busy, with a hysteresis band and a cooldown so that the pool does not flap.
//   - Replicas sizes the replicas of a Deployment as KEDA and the HorizontalPodAutoscaler do
//     for a queue trigger (aws-sqs-queue): activation, the HPA's tolerance, its stabilisation
//     windows, min/max replicas and KEDA's cooldown to zero.
//
// It is pure logic; the caller supplies the clock and the figures.
package autoscale

import (
	"fmt"
	"math"
	"time"
)

// Options configure a Scaler. Min and Max are required (1 <= Min <= Max).
type Options struct {
	Min, Max int
	// TargetPerWorker is the backlog (messages waiting or in work) each worker should have;
	// default 10.
	TargetPerWorker float64
	// Cooldown is the least time between two changes; default 30s.
	Cooldown time.Duration
	// Hysteresis is the relative band around the current size in which the pool is not
	// resized: a change needs the wanted size to differ from the current one by more than
	// floor(this fraction of it) workers, unless the wanted size is Min or Max; default 0.2.
	Hysteresis float64
	// RatePerSecond is the downstream call rate limit (0: no limit). The pool is never sized
	// above RatePerSecond × latency workers, which is all that rate can keep busy.
	RatePerSecond float64
}

// Input is what the decision is made from.
type Input struct {
	Now     time.Time
	Current int // workers now
	Backlog int // messages visible plus in flight
	// Latency is the recent average time one worker spends per message; zero when unknown
	// (the rate cap is then not applied).
	Latency time.Duration
}

// Decision is the outcome of Decide.
type Decision struct {
	Workers int    // the size to run; equal to Input.Current when nothing changes
	Wanted  int    // the size the figures ask for before hysteresis and cooldown
	Changed bool   // Workers differs from Input.Current
	Reason  string // why, for the log
}

// Scaler remembers the last change for the cooldown. It is not safe for concurrent use.
type Scaler struct {
	opts       Options
	lastChange time.Time
}

// New checks opts and returns a Scaler.
func New(opts Options) (*Scaler, error) {
	if opts.Min < 1 || opts.Max < opts.Min {
		return nil, fmt.Errorf("autoscale: want 1 <= min <= max, got min %d max %d", opts.Min, opts.Max)
	}
	if opts.TargetPerWorker <= 0 {
		opts.TargetPerWorker = 10
	}
	if opts.Cooldown <= 0 {
		opts.Cooldown = 30 * time.Second
	}
	if opts.Hysteresis <= 0 {
		opts.Hysteresis = 0.2
	}
	return &Scaler{opts: opts}, nil
}

// Wanted is the pool size the figures ask for: ceil(backlog / target), capped by what the
// rate limit can serve, clamped to [min, max].
func Wanted(o Options, backlog int, latency time.Duration) (int, string) {
	n := Needed(float64(backlog), o.TargetPerWorker)
	why := fmt.Sprintf("backlog %d / target %g", backlog, o.TargetPerWorker)
	if o.RatePerSecond > 0 && latency > 0 {
		if c := int(math.Ceil(o.RatePerSecond * latency.Seconds())); n > c {
			n = c
			why = fmt.Sprintf("rate cap %g/s x %v", o.RatePerSecond, latency.Round(time.Millisecond))
		}
	}
	switch {
	case n < o.Min:
		return o.Min, why + ", raised to min"
	case n > o.Max:
		return o.Max, why + ", cut to max"
	}
	return n, why
}

// Decide returns the pool size to run now. A change is made only when the wanted size is
// outside the hysteresis band around the current size (or the current size is outside
// [min, max]) and the cooldown since the last change has passed.
func (s *Scaler) Decide(in Input) Decision {
	wanted, why := Wanted(s.opts, in.Backlog, in.Latency)
	d := Decision{Workers: in.Current, Wanted: wanted}
	if in.Current < s.opts.Min || in.Current > s.opts.Max {
		d.Workers, d.Changed, d.Reason = min(max(in.Current, s.opts.Min), s.opts.Max), true, "outside [min, max]"
		s.lastChange = in.Now
		return d
	}
	diff := wanted - in.Current
	band := int(math.Floor(float64(in.Current) * s.opts.Hysteresis))
	switch {
	case diff == 0:
		d.Reason = "at the wanted size"
		return d
	case abs(diff) <= band && wanted != s.opts.Min && wanted != s.opts.Max:
		d.Reason = fmt.Sprintf("within the hysteresis band (%s wants %d)", why, wanted)
		return d
	case !s.lastChange.IsZero() && in.Now.Sub(s.lastChange) < s.opts.Cooldown:
		d.Reason = fmt.Sprintf("cooling down (%s wants %d)", why, wanted)
		return d
	}
	d.Workers, d.Changed, d.Reason = wanted, true, why
	s.lastChange = in.Now
	return d
}

// Needed is how many consumers a backlog needs at target messages each: ceil(backlog /
// target), and 0 for an empty (or negative) backlog. target must be positive.
func Needed(backlog, target float64) int {
	return int(math.Ceil(max(backlog, 0) / target))
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
