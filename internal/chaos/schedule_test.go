package chaos

import (
	"reflect"
	"testing"
	"time"
)

func TestPlanIsSeededAndComplete(t *testing.T) {
	analyzers, indexers := []string{"analyzer-1", "analyzer-2"}, []string{"indexer-1", "indexer-2"}
	for _, tc := range []struct {
		name   string
		timing Timing
	}{
		{"full", FullTiming(6 * time.Minute)},
		{"scaled", FullTiming(80 * time.Second).Scaled(0.25)},
		{"window shorter than a kill interval", Timing{Window: 15 * time.Second, KillMin: 20 * time.Second, KillMax: 60 * time.Second,
			RestartMin: time.Second, RestartMax: 5 * time.Second, VisionOutage: 5 * time.Second, EmulatorDown: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Plan(42, tc.timing, analyzers, indexers)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := Plan(42, tc.timing, analyzers, indexers)
			if !reflect.DeepEqual(a, b) {
				t.Fatal("the same seed gave two schedules")
			}
			c, _ := Plan(43, tc.timing, analyzers, indexers)
			if reflect.DeepEqual(a.Events, c.Events) {
				t.Error("seeds 42 and 43 gave the same schedule")
			}
			for _, name := range analyzers {
				if a.Count(KillAnalyzer, name) == 0 {
					t.Errorf("%s never killed", name)
				}
			}
			for _, name := range indexers {
				if a.Count(KillIndexer, name) == 0 {
					t.Errorf("%s never killed", name)
				}
			}
			for _, kind := range []string{VisionOutage, FirestoreRestart, PubSubRestart} {
				if a.Count(kind, "") != 1 {
					t.Errorf("%s: %d events, want 1", kind, a.Count(kind, ""))
				}
			}
			last := map[string]Event{}
			for i, e := range a.Events {
				if i > 0 && e.At < a.Events[i-1].At {
					t.Fatalf("events out of order at %d: %v after %v", i, e, a.Events[i-1])
				}
				if e.Target == "" {
					continue
				}
				if prev, ok := last[e.Target]; ok {
					gap := e.At - prev.End()
					if gap < tc.timing.KillMin || gap > tc.timing.KillMax {
						t.Errorf("%s: %v after it came back, want %v-%v", e.Target, gap, tc.timing.KillMin, tc.timing.KillMax)
					}
				}
				if e.Down < tc.timing.RestartMin || e.Down > tc.timing.RestartMax {
					t.Errorf("%v: down %v outside %v-%v", e, e.Down, tc.timing.RestartMin, tc.timing.RestartMax)
				}
				last[e.Target] = e
			}
		})
	}
}

func TestFullTimingKillsEvery20To60s(t *testing.T) {
	s, err := Plan(7, FullTiming(10*time.Minute), []string{"a"}, []string{"i"})
	if err != nil {
		t.Fatal(err)
	}
	// Ten minutes at 20-60 s between kills: between 9 and 28 kills of each.
	if n := s.Count(KillAnalyzer, "a"); n < 8 || n > 29 {
		t.Errorf("%d kills of the analyzer in 10 minutes", n)
	}
	for _, e := range s.Events {
		if e.Kind == VisionOutage && e.Down != 30*time.Second {
			t.Errorf("Vision outage of %v, want 30s", e.Down)
		}
	}
}

func TestTimingValidate(t *testing.T) {
	bad := FullTiming(time.Minute)
	bad.RestartMax = bad.KillMin
	if err := bad.Validate(); err == nil {
		t.Error("a restart delay as long as the kill interval passed")
	}
	if err := FullTiming(20 * time.Second).Validate(); err == nil {
		t.Error("a 30 s outage in a 20 s window passed")
	}
	if err := (Timing{}).Validate(); err == nil {
		t.Error("the zero timing passed")
	}
}
