package breaker

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBreaker runs scripts of steps: "ok" and "fail" record outcomes, "allow" and "deny"
// call Allow and expect true or false, "+5s" advances the clock; after each step the
// breaker must be in the state named after the colon ("ok:closed").
func TestBreaker(t *testing.T) {
	opts := Options{ConsecutiveFailures: 3, FailureRatio: 0.5, Window: 10 * time.Second, MinCalls: 6, Cooldown: 5 * time.Second}
	tests := []struct {
		name   string
		opts   Options
		script string
	}{
		{"stays closed on successes", opts, "ok:closed ok:closed allow:closed"},
		{"opens on consecutive failures", opts, "fail:closed fail:closed fail:open deny:open"},
		{"a success resets the run", opts, "fail:closed fail:closed ok:closed fail:closed fail:closed fail:open"},
		{"half-open after cooldown", opts, "fail fail fail:open +4s deny:open +1s allow:half-open"},
		{"one probe at a time", opts, "fail fail fail +5s allow:half-open deny:half-open"},
		{"a lost probe is replaced after a cooldown", opts, "fail fail fail +5s allow:half-open +5s allow:half-open"},
		{"probe success closes", opts, "fail fail fail +5s allow:half-open ok:closed allow:closed"},
		{"probe failure re-opens for a new cooldown", opts, "fail fail fail +5s allow:half-open fail:open +4s deny:open +1s allow:half-open"},
		{"closing clears the ratio window", opts, "ok fail ok fail fail fail:open +5s allow ok:closed fail:closed ok:closed fail:closed ok:closed fail:closed"},
		{"ratio trips before the run does", opts, "ok:closed fail:closed ok:closed fail:closed ok:closed fail:open"},
		{"ratio needs MinCalls", opts, "fail:closed ok:closed fail:closed ok:closed fail:closed"},
		{"ratio forgets calls outside the window", opts, "ok ok ok ok ok:closed +11s fail:closed ok:closed fail:closed ok:closed fail:closed ok:closed"},
		{"ratio counts calls inside the window", opts, "ok ok ok ok ok +3s fail ok fail ok fail ok fail:closed"},
		{"ratio rule disabled", Options{ConsecutiveFailures: 3, FailureRatio: -1, MinCalls: 2, Cooldown: time.Second}, "fail ok fail ok fail ok:closed"},
		{"defaults: five in a row", Options{}, "fail fail fail fail:closed fail:open"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1_000_000, 0)
			var changes []string
			o := tc.opts
			o.Now = func() time.Time { return now }
			o.OnStateChange = func(from, to State) { changes = append(changes, fmt.Sprintf("%v>%v", from, to)) }
			b := New(&o)
			for i, step := range strings.Fields(tc.script) {
				op, want, _ := strings.Cut(step, ":")
				switch {
				case op == "ok":
					b.Success()
				case op == "fail":
					b.Failure()
				case op == "allow" || op == "deny":
					if got := b.Allow(); got != (op == "allow") {
						t.Fatalf("step %d (%s): Allow() = %v (transitions %v)", i, step, got, changes)
					}
				case strings.HasPrefix(op, "+"):
					d, err := time.ParseDuration(op[1:])
					if err != nil {
						t.Fatal(err)
					}
					now = now.Add(d)
				default:
					t.Fatalf("bad step %q", step)
				}
				if want != "" {
					if got := b.State().String(); got != want {
						t.Fatalf("step %d (%s): state %s (transitions %v)", i, step, got, changes)
					}
				}
			}
		})
	}
}

func TestRemaining(t *testing.T) {
	now := time.Unix(0, 0)
	b := New(&Options{ConsecutiveFailures: 1, Cooldown: 10 * time.Second, Now: func() time.Time { return now }})
	if r := b.Remaining(); r != 0 {
		t.Fatalf("closed: Remaining %v", r)
	}
	b.Failure()
	now = now.Add(4 * time.Second)
	if r := b.Remaining(); r != 6*time.Second {
		t.Fatalf("open: Remaining %v, want 6s", r)
	}
	now = now.Add(6 * time.Second)
	if r, s := b.Remaining(), b.State(); r != 0 || s != HalfOpen {
		t.Fatalf("after cooldown: Remaining %v state %v", r, s)
	}
}
