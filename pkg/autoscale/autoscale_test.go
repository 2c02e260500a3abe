package autoscale

import (
	"testing"
	"time"
)

func TestWanted(t *testing.T) {
	o := Options{Min: 2, Max: 64, TargetPerWorker: 10}
	rated := o
	rated.RatePerSecond = 20
	tests := []struct {
		name    string
		o       Options
		backlog int
		latency time.Duration
		want    int
	}{
		{"empty queue: min", o, 0, 0, 2},
		{"negative backlog is empty", o, -5, 0, 2},
		{"exact multiple", o, 100, 0, 10},
		{"rounds up", o, 101, 0, 11},
		{"capped at max", o, 10_000, 0, 64},
		{"rate cap: 20/s x 500ms = 10", rated, 10_000, 500 * time.Millisecond, 10},
		{"rate cap rounds up", rated, 10_000, 510 * time.Millisecond, 11},
		{"rate cap above the backlog's need", rated, 30, 2 * time.Second, 3},
		{"rate cap below min: min wins", rated, 10_000, 10 * time.Millisecond, 2},
		{"unknown latency: no rate cap", rated, 300, 0, 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, why := Wanted(tc.o, tc.backlog, tc.latency); got != tc.want {
				t.Fatalf("Wanted(%d, %v) = %d (%s), want %d", tc.backlog, tc.latency, got, why, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		at      time.Duration // since t0
		current int
		backlog int
		want    int // Workers
		changed bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"scale up from min", []step{{0, 2, 200, 20, true}}},
		{"small change inside the band is ignored", []step{{0, 20, 215, 20, false}}},
		{"change past the band is made", []step{{0, 20, 250, 25, true}}},
		{"band edge: floor(20*0.2)=4 is still inside", []step{{0, 20, 240, 20, false}}},
		{"reaching min ignores the band", []step{{0, 3, 0, 2, true}}},
		{"reaching max ignores the band", []step{{0, 63, 10_000, 64, true}}},
		{"from one worker any change counts", []step{{0, 2, 30, 3, true}}},
		{"cooldown holds the next change", []step{
			{0, 2, 200, 20, true},
			{10 * time.Second, 20, 0, 20, false},
			{29 * time.Second, 20, 0, 20, false},
			{30 * time.Second, 20, 0, 2, true},
		}},
		{"no flapping on a steady backlog", []step{
			{0, 2, 200, 20, true},
			{40 * time.Second, 20, 190, 20, false},
			{80 * time.Second, 20, 215, 20, false},
		}},
		{"current outside bounds is corrected at once", []step{{0, 100, 200, 64, true}, {time.Second, 1, 200, 2, true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Options{Min: 2, Max: 64, TargetPerWorker: 10, Cooldown: 30 * time.Second, Hysteresis: 0.2})
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range tc.steps {
				d := s.Decide(Input{Now: t0.Add(st.at), Current: st.current, Backlog: st.backlog})
				if d.Workers != st.want || d.Changed != st.changed {
					t.Fatalf("step %d: got %d changed=%v (%s), want %d changed=%v", i, d.Workers, d.Changed, d.Reason, st.want, st.changed)
				}
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, o := range []Options{{Min: 0, Max: 4}, {Min: 5, Max: 4}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
