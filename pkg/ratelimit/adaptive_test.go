package ratelimit

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// limited takes a token so that the bucket is empty and the call had to wait: the rate is
// then what holds calls back, and successes may grow it.
func limited(b *Bucket) {
	for b.Reserve().Delay == 0 {
	}
}

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-9*max(1, math.Abs(want)) }

func TestAdaptiveStartsLowAndSlowStarts(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(16, 16, &BucketOptions{Now: clock.Now, Adaptive: &Adaptive{}})
	if got := b.Rate(); !near(got, 1) {
		t.Fatalf("initial rate = %v, want 16/16 = 1", got)
	}
	if got := b.Burst(); got != 1 {
		t.Fatalf("initial burst = %d, want 16 x 1/16 = 1", got)
	}
	limited(b)
	clock.Advance(time.Second)
	b.Adapt(Succeeded)
	if got := b.Rate(); !near(got, 1.15) {
		t.Fatalf("after one limited second of success: rate = %v, want 1.15 (slow start)", got)
	}
	// Several successes spread over a second grow it as much as one.
	limited(b)
	for range 4 {
		clock.Advance(250 * time.Millisecond)
		b.Adapt(Succeeded)
	}
	if got := b.Rate(); !near(got, 1.15*1.15) {
		t.Fatalf("after another second in four steps: rate = %v, want %v", got, 1.15*1.15)
	}
}

func TestAdaptiveGrowsOnlyWhileLimited(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(16, 16, &BucketOptions{Now: clock.Now, Adaptive: &Adaptive{}})
	// Never waited for a token: an idle replica builds up no rate.
	for range 10 {
		clock.Advance(time.Second)
		b.Adapt(Succeeded)
	}
	if got := b.Rate(); !near(got, 1) {
		t.Fatalf("rate after idle successes = %v, want 1 (unchanged)", got)
	}
	limited(b)
	clock.Advance(4 * time.Second) // at 1 call/s, "recently" is three calls: 3 s
	b.Adapt(Succeeded)
	if got := b.Rate(); !near(got, 1) {
		t.Fatalf("rate after a success long after the last wait = %v, want 1", got)
	}
}

func TestAdaptiveCutsOncePerHoldAndRecovers(t *testing.T) {
	const probe = 20.0 / 600
	clock := newFakeClock()
	b := NewBucket(20, 20, &BucketOptions{Now: clock.Now, Adaptive: &Adaptive{Initial: 0.5}})
	b.Adapt(Throttled) // ends the slow start: x 0.7; 10 is the last good maximum
	if got := b.Rate(); !near(got, 7) {
		t.Fatalf("after the first throttle: rate = %v, want 10 x 0.7 = 7", got)
	}
	// Hold: two calls at the new rate (2/7 s), at least 200 ms.
	clock.Advance(250 * time.Millisecond)
	b.Adapt(Throttled)
	if got := b.Rate(); !near(got, 7) {
		t.Fatalf("a throttle within the hold cut again: rate = %v, want 7", got)
	}
	clock.Advance(50 * time.Millisecond) // 300 ms > 2/7 s
	b.Adapt(Throttled)
	// 7 is below the last good maximum 10: remember 7 x (1+0.8)/2 = 6.3 (fast
	// convergence), and cut x 0.8 to 5.6.
	if got := b.Rate(); !near(got, 5.6) {
		t.Fatalf("after a throttle past the hold: rate = %v, want 7 x 0.8 = 5.6", got)
	}
	// Fast recovery towards 95% of 6.3 = 5.985 with a 1 s time constant.
	limited(b)
	clock.Advance(time.Second)
	b.Adapt(Succeeded)
	want := 5.985 - (5.985-5.6)*math.Exp(-1)
	if got := b.Rate(); !near(got, want) {
		t.Fatalf("after 1 s of recovery: rate = %v, want %v", got, want)
	}
	// Near the target the probe (20/600 per second) is faster: the rate passes it, then
	// grows by the probe.
	for range 10 {
		limited(b)
		clock.Advance(time.Second)
		b.Adapt(Succeeded)
	}
	got := b.Rate()
	if got <= 5.985 || got > 5.985+probe*10 {
		t.Fatalf("after 11 s: rate = %v, want past 5.985 by less than 10 probes", got)
	}
	limited(b)
	clock.Advance(time.Second)
	b.Adapt(Succeeded)
	if d := b.Rate() - got; !near(d, probe) {
		t.Fatalf("above the target the rate grew by %v in a second, want the probe %v", d, probe)
	}
	// Another cut below the last good maximum: 6 < 6.3 remembers 6 x 0.9 = 5.4 and cuts to
	// 4.8; the recovery then aims at 95% of 5.4.
	b.mu.Lock()
	b.rate = 6
	b.mu.Unlock()
	b.Adapt(Throttled)
	if got := b.Rate(); !near(got, 4.8) {
		t.Fatalf("cut from 6: rate = %v, want 4.8", got)
	}
	limited(b)
	clock.Advance(time.Second)
	b.Adapt(Succeeded)
	if want := 5.13 - (5.13-4.8)*math.Exp(-1); !near(b.Rate(), want) {
		t.Fatalf("recovery after the fast-convergence cut: rate = %v, want %v (towards 0.95 x 5.4)", b.Rate(), want)
	}
	if got := b.Burst(); got != 5 {
		t.Fatalf("burst at rate %.2f of 20 = %d, want 20 x %.2f/20 = 5", b.Rate(), got, b.Rate())
	}
}

// TestAdaptiveSchedulesAtMostASecondAhead: tokens further ahead than a second (or two
// calls' time at low rates) are not given; the caller is told to come back, and a rate cut
// reaches every caller within that horizon.
func TestAdaptiveSchedulesAtMostASecondAhead(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(10, 10, &BucketOptions{Now: clock.Now, Adaptive: &Adaptive{Initial: 1}})
	var last Reservation
	given := 0
	for range 40 {
		r := b.Reserve()
		if r.Again {
			last = r
			break
		}
		if r.Delay > time.Second {
			t.Fatalf("token given %v ahead, want at most 1s", r.Delay)
		}
		given++
	}
	if given != 20 { // the burst of 10, then 10 more within a second at 10/s
		t.Fatalf("%d tokens given before Again, want 20", given)
	}
	if !last.Again || last.Delay < minAgain || last.Delay > time.Second {
		t.Fatalf("reservation past the horizon: %+v, want Again with a delay in [50ms, 1s]", last)
	}
	last.Cancel() // no token was taken: nothing to give back
	if r := b.Reserve(); !r.Again {
		t.Fatalf("after cancelling an Again reservation a token was free: %+v", r)
	}
	// A fixed bucket keeps promising tokens as far ahead as it takes.
	f := NewBucket(10, 10, &BucketOptions{Now: clock.Now})
	for range 40 {
		if r := f.Reserve(); r.Again {
			t.Fatalf("a fixed bucket answered Again: %+v", r)
		}
	}
	// At 0.25/s one call's time is 4 s: the horizon stretches to two calls, 8 s.
	slow := NewBucket(0.25, 1, &BucketOptions{Now: clock.Now, Adaptive: &Adaptive{Initial: 1}})
	slow.Reserve()
	if r := slow.Reserve(); r.Again || r.Delay != 4*time.Second {
		t.Fatalf("second token at 0.25/s: %+v, want one 4s ahead", r)
	}
}

// TestAdaptiveOverloadLowersTheMaximum: throttles of calls reserved before a cut belong to
// that overload: they cut again and lower the remembered maximum to the rate they cut from;
// once those calls are reported, a new cut below the maximum is fast convergence.
func TestAdaptiveOverloadLowersTheMaximum(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(20, 20, &BucketOptions{Now: clock.Now, Adaptive: &Adaptive{Initial: 0.5}})
	for range 5 { // five calls under way at rate 10
		b.Reserve()
	}
	b.Adapt(Throttled) // ends the slow start: 10 -> 7, maximum 10; four calls still out
	clock.Advance(500 * time.Millisecond)
	b.Adapt(Throttled) // the same overload: 7 -> 5.6, maximum lowered to 7
	if got := b.Rate(); !near(got, 5.6) {
		t.Fatalf("second cut of the overload: rate %v, want 5.6", got)
	}
	limited(b)
	clock.Advance(time.Second)
	b.Adapt(Succeeded) // recovery aims at 0.95 x 7 = 6.65
	if want := 6.65 - (6.65-5.6)*math.Exp(-1); !near(b.Rate(), want) {
		t.Fatalf("recovery: rate %v, want %v (towards 0.95 x 7)", b.Rate(), want)
	}
	b.Adapt(Succeeded)
	b.Adapt(Succeeded) // the overload's calls are all reported
	clock.Advance(time.Second)
	r := b.Rate()
	b.Adapt(Throttled) // a new overload below the maximum 7: remember r x 0.9
	b.mu.Lock()
	maxGood := b.adapt.maxGood
	b.mu.Unlock()
	if !near(maxGood, r*0.9) || !near(b.Rate(), r*0.8) {
		t.Fatalf("new overload from %v: maximum %v, rate %v; want %v and %v", r, maxGood, b.Rate(), r*0.9, r*0.8)
	}
}

func TestAdaptiveStaysWithinBounds(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(10, 10, &BucketOptions{Now: clock.Now, Adaptive: &Adaptive{Initial: 1}})
	limited(b)
	clock.Advance(time.Second)
	b.Adapt(Succeeded)
	if got := b.Rate(); got != 10 {
		t.Fatalf("rate grew past the ceiling: %v", got)
	}
	for range 100 {
		clock.Advance(time.Minute) // past every hold
		b.Adapt(Throttled)
	}
	if got := b.Rate(); !near(got, 0.1) {
		t.Fatalf("rate after 100 throttles = %v, want the floor 10/100 = 0.1", got)
	}
	if got := b.Burst(); got != 1 {
		t.Fatalf("burst at the floor = %d, want 1", got)
	}
	b.Adapt(Failed)
	if got := b.Rate(); !near(got, 0.1) {
		t.Fatalf("a failed call changed the rate to %v", got)
	}
}

func TestFixedBucketIgnoresAdapt(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(5, 3, &BucketOptions{Now: clock.Now})
	b.Adapt(Throttled)
	limited(b)
	clock.Advance(time.Second)
	b.Adapt(Succeeded)
	if b.Rate() != 5 || b.Burst() != 3 {
		t.Fatalf("fixed bucket changed: rate %v burst %d", b.Rate(), b.Burst())
	}
	inf := NewBucket(math.Inf(1), 1, &BucketOptions{Adaptive: &Adaptive{}})
	inf.Adapt(Throttled)
	if !math.IsInf(inf.Rate(), 1) {
		t.Fatalf("unlimited bucket adapted to %v", inf.Rate())
	}
}

func TestAIMDFeedsItsRateBucket(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(20, 20, &BucketOptions{Now: clock.Now, Adaptive: &Adaptive{Initial: 0.5}})
	l := NewAIMD(&AIMDOptions{Initial: 4, Rate: b})
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Release(Throttled)
	if got := b.Rate(); !near(got, 7) {
		t.Fatalf("bucket rate after a throttled release = %v, want 7", got)
	}
	if got := l.Limit(); got != 2 {
		t.Fatalf("limit after a throttled release = %d, want 2", got)
	}
}

// quotaSim simulates replicas sharing one quota, in simulated time (no sleeping, the same
// result every run for a seed): each replica has workers that always have a message, and an
// adaptive bucket whose ceiling is the whole quota (each replica is configured as if it were
// alone). The far side is a fixed Bucket of the quota's rate and a second's burst: a call
// that finds a token is answered after the latency, one that does not gets a 429 after 2 ms
// and is tried again a second later (the stand-in's Retry-After, rounded up to seconds).
type quotaSim struct {
	replicas, workers int
	quota             float64
	ceiling           float64 // each replica's ceiling (its --vision-rate); 0: the quota
	latency           time.Duration
	start             []time.Duration // when each replica starts; default all at 0
	seed              uint64
}

type quotaResult struct {
	calls, throttled           int
	callsEarly, throttledEarly int   // before the window
	windowed                   []int // successes per replica within the measured window
	useOfQuota                 float64
	rates                      []float64 // each replica's rate at the end
}

func (s quotaSim) run(window0, end time.Duration) quotaResult {
	clock := newFakeClock()
	t0 := clock.Now()
	rng := rand.New(rand.NewPCG(s.seed, 1))
	var q simQueue
	seq := 0
	at := func(d time.Duration, fn func()) {
		seq++
		heap.Push(&q, simEvent{at: clock.Now().Add(d), seq: seq, fn: fn})
	}
	server := NewBucket(s.quota, int(s.quota), &BucketOptions{Now: clock.Now})
	var r quotaResult
	r.windowed = make([]int, s.replicas)
	buckets := make([]*Bucket, s.replicas)
	for i := range s.replicas {
		ceiling := s.quota
		if s.ceiling > 0 {
			ceiling = s.ceiling
		}
		b := NewBucket(ceiling, int(ceiling), &BucketOptions{Now: clock.Now, Adaptive: &Adaptive{}})
		buckets[i] = b
		var call func()
		call = func() {
			rsv := b.Reserve()
			if rsv.Again {
				at(rsv.Delay, call)
				return
			}
			at(rsv.Delay, func() {
				r.calls++
				if clock.Now().Sub(t0) < window0 {
					r.callsEarly++
				}
				if srv := server.Reserve(); srv.Delay > 0 {
					srv.Cancel()
					r.throttled++
					if clock.Now().Sub(t0) < window0 {
						r.throttledEarly++
					}
					at(2*time.Millisecond, func() { b.Adapt(Throttled) })
					at(time.Second, call)
					return
				}
				jitter := time.Duration(rng.Float64() * float64(5*time.Millisecond))
				at(s.latency+jitter, func() {
					b.Adapt(Succeeded)
					if el := clock.Now().Sub(t0); el >= window0 && el < end {
						r.windowed[i]++
					}
					at(time.Millisecond, call) // the worker's next message
				})
			})
		}
		var begin time.Duration
		if i < len(s.start) {
			begin = s.start[i]
		}
		for range s.workers {
			at(begin+time.Duration(rng.Float64()*float64(300*time.Millisecond)), call)
		}
	}
	for q.Len() > 0 {
		e := heap.Pop(&q).(simEvent)
		if e.at.Sub(t0) >= end {
			break
		}
		clock.Advance(e.at.Sub(clock.Now()))
		e.fn()
	}
	total := 0
	for _, n := range r.windowed {
		total += n
	}
	r.useOfQuota = float64(total) / (s.quota * (end - window0).Seconds())
	for _, b := range buckets {
		r.rates = append(r.rates, b.Rate())
	}
	return r
}

type simEvent struct {
	at  time.Time
	seq int
	fn  func()
}

type simQueue []simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// jain is Jain's fairness index of the shares: 1 when all are equal, 1/n when one has all.
func jain(shares []int) float64 {
	var sum, sq float64
	for _, v := range shares {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(shares)) * sq)
}

// quotaCases are the replica scenarios of the fair-share test and benchmark: K replicas of 8
// workers, 100 ms calls, one 20 calls/s quota, every replica configured with the whole quota,
// starting together (all at once, as in the scale-out benchmark) or one every 5 s after the
// first has run alone for 30 s (as KEDA adds them). Measured from 20 s (from 80 s when they
// join) to the end, 120 s (180 s).
func quotaCase(k int, join bool, seed uint64) (quotaSim, time.Duration, time.Duration) {
	s := quotaSim{replicas: k, workers: 8, quota: 20, latency: 100 * time.Millisecond, seed: seed}
	if !join {
		return s, 20 * time.Second, 120 * time.Second
	}
	s.start = []time.Duration{0}
	for i := 1; i < k; i++ {
		s.start = append(s.start, 30*time.Second+time.Duration(i)*5*time.Second)
	}
	return s, 80 * time.Second, 180 * time.Second
}

// TestAdaptiveReplicasShareAQuota is the fair-share property in simulated time, for K = 1, 2,
// 4 replicas (quotaCase), five seeds each so that no lucky run passes. In the measured window
// (past the slow starts) the replicas together must use at least 95% of the quota, fewer
// than 2% of the calls may be answered 429, and the replicas must share it fairly (Jain's
// index at least 0.85). Over the whole run, the slow starts' overshoot included, fewer than
// 4% may be.
func TestAdaptiveReplicasShareAQuota(t *testing.T) {
	for _, k := range []int{1, 2, 4} {
		for _, join := range []bool{false, true} {
			for seed := uint64(1); seed <= 5; seed++ {
				t.Run(fmt.Sprintf("K=%d/join=%v/seed=%d", k, join, seed), func(t *testing.T) {
					sim, w0, end := quotaCase(k, join, seed)
					r := sim.run(w0, end)
					share := float64(r.throttled) / float64(r.calls)
					window := float64(r.throttled-r.throttledEarly) / float64(r.calls-r.callsEarly)
					t.Logf("use of quota %.1f%%, 429 %d of %d calls (%.2f%%; %d of %d in the window, %.2f%%), shares %v (Jain %.3f), rates %.2f",
						r.useOfQuota*100, r.throttled, r.calls, share*100, r.throttled-r.throttledEarly, r.calls-r.callsEarly, window*100,
						r.windowed, jain(r.windowed), r.rates)
					if r.useOfQuota < 0.95 {
						t.Errorf("replicas used %.1f%% of the quota, want at least 95%%", r.useOfQuota*100)
					}
					if window >= 0.02 {
						t.Errorf("%.2f%% of the window's calls answered 429, want under 2%%", window*100)
					}
					if share >= 0.04 {
						t.Errorf("%.2f%% of the run's calls answered 429, want under 4%%", share*100)
					}
					if j := jain(r.windowed); j < 0.85 {
						t.Errorf("shares %v: Jain's index %.3f, want at least 0.85", r.windowed, j)
					}
				})
			}
		}
	}
}

// BenchmarkAdaptiveQuotaShare reports the fair-share figures of quotaCase for K = 1 to 8, in
// simulated time (b.N runs, seeds 1..N), with every replica's ceiling the quota (ceiling=1)
// and a quarter above it (ceiling=1.25, a replica configured for more than the quota gives):
//
//	go test ./pkg/ratelimit -run '^$' -bench AdaptiveQuotaShare -benchtime 5x
func BenchmarkAdaptiveQuotaShare(b *testing.B) {
	for _, over := range []float64{1, 1.25} {
		for _, k := range []int{1, 2, 4, 8} {
			for _, join := range []bool{false, true} {
				b.Run(fmt.Sprintf("ceiling=%g/K=%d/join=%v", over, k, join), func(b *testing.B) {
					var use, share, window float64
					minJain := 1.0
					for i := range b.N {
						sim, w0, end := quotaCase(k, join, uint64(i+1))
						sim.ceiling = over * sim.quota
						r := sim.run(w0, end)
						use += r.useOfQuota
						share += float64(r.throttled) / float64(r.calls)
						window += float64(r.throttled-r.throttledEarly) / float64(r.calls-r.callsEarly)
						minJain = min(minJain, jain(r.windowed))
					}
					b.ReportMetric(use/float64(b.N)*100, "%-of-quota")
					b.ReportMetric(share/float64(b.N)*100, "%-429")
					b.ReportMetric(window/float64(b.N)*100, "%-429-window")
					b.ReportMetric(minJain, "min-jain")
				})
			}
		}
	}
}

// TestAdaptiveWaitReservesAgain: Wait on an adaptive bucket whose line reaches past its
// horizon waits, reserves again and gets its token; with a deadline too near it fails at
// once instead.
func TestAdaptiveWaitReservesAgain(t *testing.T) {
	b := NewBucket(200, 1, &BucketOptions{Adaptive: &Adaptive{Initial: 1}})
	given := 0
	for !b.Reserve().Again { // fill the line to the horizon: about 200 places
		if given++; given > 1000 {
			t.Fatal("no reservation past the horizon after 1000")
		}
	}
	outstanding := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.adapt.outstanding
	}
	before := outstanding()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Wait(ctx); err != nil {
		t.Fatalf("Wait behind a full line: %v", err)
	}
	if got := outstanding(); got != before+1 {
		t.Fatalf("Wait returned having taken %d tokens, want 1", got-before)
	}
	for !b.Reserve().Again {
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := b.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a deadline nearer than the next place in line = %v, want DeadlineExceeded", err)
	}
}
