package obs

import (
	"errors"
	"io/fs"
	"math"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	const mi = 1 << 20
	v2 := map[string]string{"/sys/fs/cgroup/memory.max": "402653184\n"} // 384Mi
	v1 := map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "402653184\n"}
	for _, tc := range []struct {
		name        string
		env, files  map[string]string
		want        GC
		wantPercent int   // applied; 0: none
		wantLimit   int64 // applied; 0: none
	}{
		{name: "cgroup v2 limit, nothing set: the default percent and 90% of the limit",
			files: v2, want: GC{Percent: 400, PercentFrom: "default", MemoryLimit: 384 * mi * 9 / 10, MemoryLimitOf: "cgroup"},
			wantPercent: 400, wantLimit: 384 * mi * 9 / 10},
		{name: "cgroup v1 limit",
			files: v1, want: GC{Percent: 400, PercentFrom: "default", MemoryLimit: 384 * mi * 9 / 10, MemoryLimitOf: "cgroup"},
			wantPercent: 400, wantLimit: 384 * mi * 9 / 10},
		{name: "GOGC set: kept, the limit still from the cgroup",
			env: map[string]string{"GOGC": "150"}, files: v2,
			want:      GC{Percent: 150, PercentFrom: "GOGC", MemoryLimit: 384 * mi * 9 / 10, MemoryLimitOf: "cgroup"},
			wantLimit: 384 * mi * 9 / 10},
		{name: "no limit at all (v2 max): Go's defaults stay",
			files: map[string]string{"/sys/fs/cgroup/memory.max": "max\n"},
			want:  GC{Percent: 100, PercentFrom: "runtime", MemoryLimit: math.MaxInt64, MemoryLimitOf: "none"}},
		{name: "no limit at all (v1 unlimited): Go's defaults stay",
			files: map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"},
			want:  GC{Percent: 100, PercentFrom: "runtime", MemoryLimit: math.MaxInt64, MemoryLimitOf: "none"}},
		{name: "no cgroup files: Go's defaults stay",
			want: GC{Percent: 100, PercentFrom: "runtime", MemoryLimit: math.MaxInt64, MemoryLimitOf: "none"}},
		{name: "both set: nothing applied",
			env: map[string]string{"GOGC": "200", "GOMEMLIMIT": "100MiB"}, files: v2,
			want: GC{Percent: 200, PercentFrom: "GOGC", MemoryLimit: math.MaxInt64, MemoryLimitOf: "GOMEMLIMIT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applied := false
			var percent int
			var limit int64
			got := TuneGC(&GCOptions{
				getenv: func(k string) string { return tc.env[k] },
				readFile: func(name string) ([]byte, error) {
					if s, ok := tc.files[name]; ok {
						return []byte(s), nil
					}
					return nil, fs.ErrNotExist
				},
				apply: func(p int, l int64) { applied, percent, limit = true, p, l },
			})
			if tc.want.MemoryLimitOf == "GOMEMLIMIT" {
				// The runtime's own limit (this test process has none set).
				tc.want.MemoryLimit = got.MemoryLimit
			}
			if got != tc.want {
				t.Errorf("TuneGC = %+v, want %+v", got, tc.want)
			}
			if !applied || percent != tc.wantPercent || limit != tc.wantLimit {
				t.Errorf("applied percent %d limit %d (called %v), want %d and %d", percent, limit, applied, tc.wantPercent, tc.wantLimit)
			}
		})
	}
}

func TestCgroupLimitUnreadable(t *testing.T) {
	if _, ok := cgroupLimit(func(string) ([]byte, error) { return nil, errors.New("permission denied") }); ok {
		t.Error("an unreadable cgroup gave a limit")
	}
	if _, ok := cgroupLimit(func(string) ([]byte, error) { return []byte("garbage"), nil }); ok {
		t.Error("an unparsable cgroup file gave a limit")
	}
}

// TestTuneGCAppliesToTheRuntime runs TuneGC with the runtime's own setters, on a made-up
// cgroup limit, and reads the runtime's settings back.
func TestTuneGCAppliesToTheRuntime(t *testing.T) {
	oldPercent := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	})
	got := TuneGC(&GCOptions{
		getenv:   func(string) string { return "" },
		readFile: func(string) ([]byte, error) { return []byte("1000000000"), nil },
	})
	if p := debug.SetGCPercent(100); p != DefaultGCPercent || got.Percent != DefaultGCPercent {
		t.Errorf("the runtime's GOGC is %d (TuneGC says %d), want %d", p, got.Percent, DefaultGCPercent)
	}
	if l := debug.SetMemoryLimit(-1); l != 900_000_000 || got.MemoryLimit != l {
		t.Errorf("the runtime's memory limit is %d (TuneGC says %d), want 900000000", l, got.MemoryLimit)
	}
}
