package chaos

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"
)

// Fault kinds of a schedule.
const (
	KillAnalyzer     = "kill-analyzer"     // SIGKILL an analyzer's process group, restart it after Down
	KillIndexer      = "kill-indexer"      // SIGKILL an indexer's process group, restart it after Down
	VisionOutage     = "vision-outage"     // the Vision stand-in answers 503 for Down
	FirestoreRestart = "firestore-restart" // the Firestore emulator restarts with its data
	PubSubRestart    = "pubsub-restart"    // the Pub/Sub emulator is cut off for Down, keeping its data
)

// Timing is the fault timing of a run. Full is the suite's own; Scaled shortens it for a
// shorter run.
type Timing struct {
	// Window is how long faults are injected (and uploads spread), from the start.
	Window time.Duration
	// KillMin and KillMax bound the time between two kills of one process.
	KillMin, KillMax time.Duration
	// RestartMin and RestartMax bound how long a killed process stays down.
	RestartMin, RestartMax time.Duration
	// VisionOutage is the length of the Vision outage.
	VisionOutage time.Duration
	// EmulatorDown is how long each Google emulator is away when it restarts.
	EmulatorDown time.Duration
}

// FullTiming is the timing of the full run: kills every 20-60 s, a 30 s Vision outage.
func FullTiming(window time.Duration) Timing {
	return Timing{
		Window:  window,
		KillMin: 20 * time.Second, KillMax: 60 * time.Second,
		RestartMin: time.Second, RestartMax: 5 * time.Second,
		VisionOutage: 30 * time.Second,
		EmulatorDown: 5 * time.Second,
	}
}

// Scaled multiplies every duration of the full timing except the window by f (0 < f <= 1),
// for a shorter run, keeping at least a second for each.
func (t Timing) Scaled(f float64) Timing {
	s := func(d time.Duration) time.Duration {
		return max(time.Second, time.Duration(float64(d)*f).Round(100*time.Millisecond))
	}
	return Timing{
		Window:  t.Window,
		KillMin: s(t.KillMin), KillMax: s(t.KillMax),
		RestartMin: s(t.RestartMin), RestartMax: s(t.RestartMax),
		VisionOutage: s(t.VisionOutage),
		EmulatorDown: s(t.EmulatorDown),
	}
}

// Validate checks that the timing makes a schedule.
func (t Timing) Validate() error {
	switch {
	case t.Window <= 0:
		return fmt.Errorf("fault window %v: must be positive", t.Window)
	case t.KillMin <= 0 || t.KillMax < t.KillMin:
		return fmt.Errorf("kill interval %v-%v: want 0 < min <= max", t.KillMin, t.KillMax)
	case t.RestartMin <= 0 || t.RestartMax < t.RestartMin:
		return fmt.Errorf("restart delay %v-%v: want 0 < min <= max", t.RestartMin, t.RestartMax)
	case t.RestartMax >= t.KillMin:
		return fmt.Errorf("restart delay up to %v reaches the next kill at %v", t.RestartMax, t.KillMin)
	case t.VisionOutage <= 0 || t.EmulatorDown <= 0:
		return fmt.Errorf("outages must be positive")
	case t.VisionOutage >= t.Window:
		return fmt.Errorf("Vision outage %v does not fit the window %v", t.VisionOutage, t.Window)
	}
	return nil
}

// Event is one fault of the schedule.
type Event struct {
	At     time.Duration // from the start of the run
	Kind   string
	Target string        // the process, for kills
	Down   time.Duration // how long the fault lasts (a killed process stays down)
}

// End is when the fault is over.
func (e Event) End() time.Duration { return e.At + e.Down }

func (e Event) String() string {
	target := ""
	if e.Target != "" {
		target = " " + e.Target
	}
	return fmt.Sprintf("%8s  %s%s for %v", e.At.Round(100*time.Millisecond), e.Kind, target, e.Down.Round(100*time.Millisecond))
}

// Schedule is every fault of a run, by time.
type Schedule struct {
	Seed   int64
	Timing Timing
	Events []Event
}

// LastEnd is when the last fault is over.
func (s Schedule) LastEnd() time.Duration {
	var end time.Duration
	for _, e := range s.Events {
		end = max(end, e.End())
	}
	return end
}

// Count returns how many events of kind (and target, if not empty) the schedule has.
func (s Schedule) Count(kind, target string) int {
	n := 0
	for _, e := range s.Events {
		if e.Kind == kind && (target == "" || e.Target == target) {
			n++
		}
	}
	return n
}

// Plan draws the schedule for seed: each process in analyzers and indexers is killed at
// intervals drawn from [KillMin, KillMax] (the first kill too, counted from the start) and
// stays down for [RestartMin, RestartMax], at least once each even if the window is shorter
// than KillMin; one Vision outage starts in the first 20-60% of the window; the Firestore and
// Pub/Sub emulators each restart once in its 30-80%. The same seed and timing give the same
// schedule.
func Plan(seed int64, t Timing, analyzers, indexers []string) (Schedule, error) {
	if err := t.Validate(); err != nil {
		return Schedule{}, err
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x6368616f73))
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(r.Int64N(int64(hi-lo)))
	}
	frac := func(lo, hi float64) time.Duration {
		return between(time.Duration(lo*float64(t.Window)), time.Duration(hi*float64(t.Window)))
	}
	s := Schedule{Seed: seed, Timing: t}
	kills := func(kind string, names []string) {
		for _, name := range names {
			at := between(t.KillMin, t.KillMax)
			if at+t.RestartMax > t.Window {
				at = frac(0.2, 0.8)
			}
			for at+t.RestartMax <= t.Window || s.Count(kind, name) == 0 {
				down := between(t.RestartMin, t.RestartMax)
				s.Events = append(s.Events, Event{At: at, Kind: kind, Target: name, Down: down})
				at += down + between(t.KillMin, t.KillMax)
			}
		}
	}
	kills(KillAnalyzer, analyzers)
	kills(KillIndexer, indexers)
	s.Events = append(s.Events,
		Event{At: frac(0.2, 0.6), Kind: VisionOutage, Down: t.VisionOutage},
		Event{At: frac(0.3, 0.8), Kind: FirestoreRestart, Down: t.EmulatorDown},
		Event{At: frac(0.3, 0.8), Kind: PubSubRestart, Down: t.EmulatorDown},
	)
	sort.SliceStable(s.Events, func(i, j int) bool { return s.Events[i].At < s.Events[j].At })
	return s, nil
}
