package console

import (
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clientLimits keeps one token bucket per client (a proxy's user, else the peer's address).
// The map is bounded: when it is full, buckets idle for longest are dropped (a dropped client
// starts again with a full bucket, which costs at most one burst).
type clientLimits struct {
	rate  rate.Limit
	burst int
	max   int
	now   func() time.Time

	mu sync.Mutex
	m  map[string]*clientLimit
}

type clientLimit struct {
	lim  *rate.Limiter
	seen time.Time
}

func newClientLimits(perSecond float64, burst, max int, now func() time.Time) *clientLimits {
	return &clientLimits{rate: rate.Limit(perSecond), burst: burst, max: max, now: now, m: map[string]*clientLimit{}}
}

// allow takes one token from client's bucket. When none is left it returns false and how long
// until one is.
func (c *clientLimits) allow(client string) (bool, time.Duration) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.m[client]
	if !ok {
		if len(c.m) >= c.max {
			c.evict()
		}
		cl = &clientLimit{lim: rate.NewLimiter(c.rate, c.burst)}
		c.m[client] = cl
	}
	cl.seen = now
	r := cl.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evict drops the quarter of the buckets idle for longest. The caller holds mu.
func (c *clientLimits) evict() {
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return c.m[a].seen.Compare(c.m[b].seen) })
	for _, k := range keys[:len(keys)/4+1] {
		delete(c.m, k)
	}
}

func (c *clientLimits) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
