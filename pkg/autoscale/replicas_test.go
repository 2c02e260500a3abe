package autoscale

import (
	"testing"
	"time"
)

func TestNeeded(t *testing.T) {
	for _, tc := range []struct {
		backlog, target float64
		want            int
	}{
		{0, 5, 0}, {-3, 5, 0}, {1, 5, 1}, {5, 5, 1}, {5.5, 5, 2}, {100, 25, 4}, {101, 25, 5},
	} {
		if got := Needed(tc.backlog, tc.target); got != tc.want {
			t.Errorf("Needed(%v, %v) = %d, want %d", tc.backlog, tc.target, got, tc.want)
		}
	}
}

func TestNewReplicasDefaultsAndRejects(t *testing.T) {
	s, err := NewReplicas(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := ReplicaOptions{Target: 5, MaxReplicas: 100, Cooldown: 300 * time.Second, ScaleDownWindow: 300 * time.Second, Tolerance: 0.1}
	if s.o != want {
		t.Fatalf("defaults %+v, want KEDA's and the HPA's %+v", s.o, want)
	}
	for _, o := range []ReplicaOptions{
		{Target: -1}, {Activation: -1}, {MinReplicas: -1}, {MinReplicas: 5, MaxReplicas: 4}, {Tolerance: 1},
	} {
		if _, err := NewReplicas(&o); err == nil {
			t.Errorf("NewReplicas(%+v) accepted", o)
		}
	}
}

// TestReplicasDecide drives the scaler through sequences of (time, replicas running, metric)
// and checks the count it asks for: target 25 per replica, 0..4 replicas, activation 0,
// cooldown 10 s, scale-down window 10 s, tolerance 0.1.
func TestReplicasDecide(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		at      time.Duration
		current int
		metric  float64
		want    int
	}
	opts := ReplicaOptions{Target: 25, MaxReplicas: 4, Cooldown: 10 * time.Second, ScaleDownWindow: 10 * time.Second}
	tests := []struct {
		name  string
		opts  ReplicaOptions
		steps []step
	}{
		{"inactive at zero stays at zero", opts, []step{{0, 0, 0, 0}, {time.Second, 0, 0, 0}}},
		{"activation starts one replica, then the HPA scales up at once", opts, []step{
			{0, 0, 600, 1}, {time.Second, 1, 600, 4},
		}},
		{"activation threshold: at it inactive, above it active", ReplicaOptions{Target: 25, MaxReplicas: 4, Activation: 10}, []step{
			{0, 0, 10, 0}, {time.Second, 0, 11, 1},
		}},
		{"min replicas start when activated", ReplicaOptions{Target: 25, MaxReplicas: 4, MinReplicas: 2}, []step{{0, 0, 1, 2}}},
		{"ceil(metric / target)", opts, []step{{0, 1, 51, 3}}},
		{"within the tolerance nothing changes", opts, []step{
			{0, 2, 54, 2}, // usage 1.08
			{1, 2, 46, 2}, // usage 0.92 (at 1 ns)
			{2, 2, 56, 3}, // usage 1.12: ceil(56/25) = 3
		}},
		{"capped at max", opts, []step{{0, 2, 10_000, 4}}},
		{"scale-down waits for the window and takes its highest recommendation", opts, []step{
			{0, 4, 400, 4},
			{2 * time.Second, 4, 60, 4},  // recommends 3; 4 is still in the window
			{5 * time.Second, 4, 30, 4},  // recommends 2
			{11 * time.Second, 4, 30, 3}, // the 4 (t=0) left the window; 3 (t=2s) is the highest
			{13 * time.Second, 3, 30, 2}, // 3 left too
			{16 * time.Second, 2, 10, 2}, // recommends 1; 2s at 5s, 11s, 13s still within
			{24 * time.Second, 2, 10, 1}, // 13 s + 10 s passed
		}},
		{"with no history the HPA scales down at once (its window holds only this recommendation)", opts, []step{
			{0, 3, 1, 1},
		}},
		{"the HPA never goes below one replica while the metric is active", opts, []step{
			{0, 3, 75, 3}, {5 * time.Second, 3, 1, 3}, {11 * time.Second, 3, 1, 1},
		}},
		{"inactive: cooldown, then zero", opts, []step{
			{0, 2, 50, 2},
			{time.Second, 2, 0, 2},        // inactive; HPA recommends 0 -> 1, window holds 2
			{10 * time.Second, 2, 0, 1},   // the 2 (t=0) left the window; last active at 0, and 10 s is not past the cooldown
			{10*time.Second + 1, 1, 0, 0}, // past it
			{11 * time.Second, 0, 0, 0},
		}},
		{"activity during the cooldown resets it", opts, []step{
			{0, 1, 5, 1}, {5 * time.Second, 1, 0, 1}, {9 * time.Second, 1, 3, 1}, {15 * time.Second, 1, 0, 1}, {19 * time.Second, 1, 0, 1}, {19*time.Second + 1, 1, 0, 0},
		}},
		{"min replicas above zero: never to zero", ReplicaOptions{Target: 25, MaxReplicas: 4, MinReplicas: 1, Cooldown: time.Second, ScaleDownWindow: -1}, []step{
			{0, 2, 0, 1}, {time.Hour, 1, 0, 1},
		}},
		{"a scale-up window takes the lowest recommendation", ReplicaOptions{Target: 25, MaxReplicas: 10, ScaleUpWindow: 5 * time.Second, ScaleDownWindow: -1}, []step{
			{0, 1, 25, 1}, {time.Second, 1, 250, 1}, {6 * time.Second, 1, 250, 10},
		}},
		{"no flapping on a noisy steady backlog", opts, []step{
			{0, 2, 50, 2}, {time.Second, 2, 47, 2}, {2 * time.Second, 2, 53, 2}, {3 * time.Second, 2, 24, 2}, {4 * time.Second, 2, 54, 2},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewReplicas(&tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range tc.steps {
				d := s.Decide(t0.Add(st.at), st.current, st.metric)
				if d.Replicas != st.want {
					t.Fatalf("step %d (at %v, %d running, metric %v): %d replicas (%s), want %d", i, st.at, st.current, st.metric, d.Replicas, d.Reason, st.want)
				}
			}
		})
	}
}
