package autoscale

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// ReplicaOptions are the settings of a KEDA ScaledObject with one queue trigger, and the HPA
// behaviour it passes to the HorizontalPodAutoscaler it creates. A nil *ReplicaOptions, and
// every zero field, takes KEDA's and the HPA's defaults.
type ReplicaOptions struct {
	// Target is the trigger's target per replica (aws-sqs-queue: queueLength, messages per
	// replica; the HPA's AverageValue target); default 5.
	Target float64
	// Activation is the trigger's activation threshold (activationQueueLength): a metric at or
	// below it is inactive; default 0.
	Activation float64
	// MinReplicas is minReplicaCount (default 0: scale to zero when inactive); MaxReplicas is
	// maxReplicaCount (default 100).
	MinReplicas, MaxReplicas int
	// Cooldown is cooldownPeriod: how long the trigger must have been inactive before the
	// replicas go to zero (with MinReplicas 0); default 300 s.
	Cooldown time.Duration
	// ScaleDownWindow is behavior.scaleDown.stabilizationWindowSeconds: default 300 s,
	// negative for none. ScaleUpWindow is behavior.scaleUp.stabilizationWindowSeconds:
	// default (and any value <= 0) none.
	ScaleDownWindow, ScaleUpWindow time.Duration
	// Tolerance is the HPA's tolerance on the usage ratio (metric / (target x replicas)): no
	// change while it is within 1 +- Tolerance; default 0.1.
	Tolerance float64
}

// Replicas decides a Deployment's replica count from a queue metric the way KEDA and the HPA
// do between them (KEDA: pkg/scaling/executor, activation and scaling to and from zero; the
// HPA: pkg/controller/podautoscaler, replica_calculator.go and horizontal.go):
//
//   - The metric (aws-sqs-queue: visible + in-flight messages) is active above Activation.
//   - From zero replicas, an active metric starts max(MinReplicas, 1); an inactive one keeps
//     zero.
//   - With replicas running, an inactive metric scales to zero (MinReplicas 0 only) once it
//     has been inactive for longer than Cooldown (at once if it never was active).
//   - Otherwise the HPA: usage = metric / (Target x replicas); within the tolerance the count
//     stays, else it becomes ceil(metric / Target) (Needed). Each such recommendation is
//     recorded; the count then moves no higher than the lowest recommendation of the
//     scale-up window and no lower than the highest of the scale-down window (so a
//     scale-down follows the backlog only once it has stayed low for the window), within
//     [max(MinReplicas, 1), MaxReplicas].
//
// Left out: the HPA's scaling policies (rate limits per period: by default they allow
// doubling or +4 pods per 15 s up and anything down, which bound nothing here), pod readiness,
// and metrics that fail. A Replicas is not safe for concurrent use.
type Replicas struct {
	o          ReplicaOptions
	recs       []recommendation
	lastActive time.Time
}

type recommendation struct {
	at       time.Time
	replicas int
}

// ReplicaDecision is the outcome of Decide.
type ReplicaDecision struct {
	Replicas    int    // the count to run
	Recommended int    // the HPA's recommendation before stabilisation (or KEDA's 0/1 step)
	Active      bool   // the metric is above the activation threshold
	Reason      string // why, for the log
}

// NewReplicas checks opts and returns a Replicas.
func NewReplicas(opts *ReplicaOptions) (*Replicas, error) {
	var o ReplicaOptions
	if opts != nil {
		o = *opts
	}
	if o.Target == 0 {
		o.Target = 5
	}
	if o.MaxReplicas == 0 {
		o.MaxReplicas = 100
	}
	if o.Cooldown == 0 {
		o.Cooldown = 300 * time.Second
	}
	if o.ScaleDownWindow == 0 {
		o.ScaleDownWindow = 300 * time.Second
	}
	if o.Tolerance == 0 {
		o.Tolerance = 0.1
	}
	switch {
	case !(o.Target > 0) || math.IsInf(o.Target, 1):
		return nil, fmt.Errorf("autoscale: target per replica %v must be a positive number", o.Target)
	case o.Activation < 0:
		return nil, fmt.Errorf("autoscale: activation %v must not be negative", o.Activation)
	case o.MinReplicas < 0 || o.MaxReplicas < max(o.MinReplicas, 1):
		return nil, fmt.Errorf("autoscale: want 0 <= min replicas <= max replicas and max >= 1, got min %d max %d", o.MinReplicas, o.MaxReplicas)
	case o.Tolerance < 0 || o.Tolerance >= 1:
		return nil, errors.New("autoscale: tolerance must be in [0, 1)")
	}
	return &Replicas{o: o}, nil
}

// Decide returns the replica count to run now, given the count running and the metric.
func (s *Replicas) Decide(now time.Time, current int, metric float64) ReplicaDecision {
	o := s.o
	d := ReplicaDecision{Replicas: current, Active: metric > o.Activation}
	if d.Active {
		s.lastActive = now
	}
	if current <= 0 {
		if d.Active {
			d.Replicas, d.Recommended = max(o.MinReplicas, 1), max(o.MinReplicas, 1)
			d.Reason = fmt.Sprintf("activated: metric %g above %g", metric, o.Activation)
			return d
		}
		d.Replicas, d.Reason = 0, "inactive"
		return d
	}
	if !d.Active && o.MinReplicas == 0 {
		if s.lastActive.IsZero() || now.Sub(s.lastActive) > o.Cooldown {
			s.recs = s.recs[:0]
			d.Replicas, d.Reason = 0, fmt.Sprintf("inactive for the cooldown %v: to zero", o.Cooldown)
			return d
		}
	}
	// The HPA, on an AverageValue target.
	desired := current
	usage := metric / (o.Target * float64(current))
	if math.Abs(1-usage) > o.Tolerance {
		desired = Needed(metric, o.Target)
	}
	d.Recommended = desired
	up, down := desired, desired
	kept := s.recs[:0]
	for _, r := range s.recs {
		inUp := o.ScaleUpWindow > 0 && now.Sub(r.at) < o.ScaleUpWindow
		inDown := now.Sub(r.at) < o.ScaleDownWindow
		if inUp {
			up = min(up, r.replicas)
		}
		if inDown {
			down = max(down, r.replicas)
		}
		if inUp || inDown {
			kept = append(kept, r)
		}
	}
	s.recs = append(kept, recommendation{at: now, replicas: desired})
	n := min(max(current, up), down)
	n = min(max(n, max(o.MinReplicas, 1)), o.MaxReplicas)
	d.Replicas = n
	switch {
	case n == current:
		d.Reason = fmt.Sprintf("metric %g for %d replicas (usage %.2f): stay", metric, current, usage)
	case n != desired:
		d.Reason = fmt.Sprintf("metric %g / target %g recommends %d; stabilised and clamped to %d", metric, o.Target, desired, n)
	default:
		d.Reason = fmt.Sprintf("metric %g / target %g = %d", metric, o.Target, n)
	}
	return d
}
