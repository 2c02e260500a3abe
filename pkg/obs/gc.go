package obs

import (
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// GC is what TuneGC applied: the collector's percent and memory limit in effect after it,
// and where each came from.
type GC struct {
	Percent       int    // the GOGC percent in effect
	PercentFrom   string // "GOGC" (the environment's), "default" (TuneGC's) or "runtime" (Go's 100)
	MemoryLimit   int64  // bytes; math.MaxInt64 when none
	MemoryLimitOf string // "GOMEMLIMIT", "cgroup" or "none"
}

// GCOptions configures TuneGC. A nil *GCOptions means the defaults.
type GCOptions struct {
	// Percent is the GOGC applied when GOGC is not set and a memory limit holds the heap;
	// default DefaultGCPercent.
	Percent int
	// LimitShare is the share of the container's memory limit (cgroup) made the runtime's
	// memory limit when GOMEMLIMIT is not set; default DefaultLimitShare. The rest is left for
	// what the runtime does not count (the binary's own pages).
	LimitShare float64

	getenv   func(string) string
	readFile func(string) ([]byte, error)
	apply    func(percent int, limit int64)
}

// DefaultGCPercent is GCOptions.Percent's default: the collector runs a quarter as often as
// with Go's 100, at about 1.5 times the peak memory of the analyzer's small images.
const DefaultGCPercent = 400

// DefaultLimitShare is GCOptions.LimitShare's default.
const DefaultLimitShare = 0.9

// The container's memory limit, cgroup v2 then v1 (as the container sees its own cgroup).
var cgroupLimitFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// TuneGC sets the garbage collector for a process whose memory its container bounds: unless
// GOMEMLIMIT is set (the runtime applied it already), the memory limit becomes LimitShare of
// the container's cgroup limit; then, unless GOGC is set, the percent becomes Percent, but
// only when a memory limit is in effect, so that the heap stays bounded (with neither, Go's
// defaults stay). Call it first thing in main.
func TuneGC(opts *GCOptions) GC {
	o := GCOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Percent <= 0 {
		o.Percent = DefaultGCPercent
	}
	if !(o.LimitShare > 0 && o.LimitShare <= 1) {
		o.LimitShare = DefaultLimitShare
	}
	if o.getenv == nil {
		o.getenv = os.Getenv
	}
	if o.readFile == nil {
		o.readFile = os.ReadFile
	}
	if o.apply == nil {
		o.apply = func(percent int, limit int64) {
			if percent > 0 {
				debug.SetGCPercent(percent)
			}
			if limit > 0 {
				debug.SetMemoryLimit(limit)
			}
		}
	}
	out := GC{Percent: 100, PercentFrom: "runtime", MemoryLimit: math.MaxInt64, MemoryLimitOf: "none"}
	setLimit := int64(0)
	if o.getenv("GOMEMLIMIT") != "" {
		out.MemoryLimit, out.MemoryLimitOf = debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	} else if c, ok := cgroupLimit(o.readFile); ok {
		setLimit = int64(float64(c) * o.LimitShare)
		out.MemoryLimit, out.MemoryLimitOf = setLimit, "cgroup"
	}
	setPercent := 0
	if v := o.getenv("GOGC"); v != "" {
		out.PercentFrom = "GOGC"
		out.Percent, _ = strconv.Atoi(v) // "off" reads as 0 here; the runtime applied it
	} else if out.MemoryLimitOf != "none" {
		setPercent = o.Percent
		out.Percent, out.PercentFrom = o.Percent, "default"
	}
	o.apply(setPercent, setLimit)
	return out
}

// cgroupLimit is the container's memory limit in bytes, if it has one.
func cgroupLimit(readFile func(string) ([]byte, error)) (int64, bool) {
	for _, f := range cgroupLimitFiles {
		b, err := readFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(s, 10, 64)
		// "max" (v2) or a huge number (v1's "unlimited", the page-rounded MaxInt64) is none.
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
