package analyzer

import "time"

// Bounds of the calls the analyzer and cmd/analyzer make after SIGTERM. ShutdownBound adds
// them up along the longest path; each names where the code sets it.
const (
	// releaseCallTimeout bounds one call that settles a message, a visibility change that
	// gives messages back among them: setVisibility, releaseUnstarted and the delete of a
	// dead-lettered message (settle.go) each run under their own.
	releaseCallTimeout = 10 * time.Second
	// deadLetterSendTimeout bounds the send to the DLQ (deadLetter, settle.go). It is detached
	// from the drain deadline, so a send begun just before it runs on.
	deadLetterSendTimeout = 15 * time.Second
	// PublishFlushTimeout bounds the Pub/Sub client's publish of a bundle. cmd/analyzer closes
	// the publisher after Run returns and Close waits for bundles in flight, each of which runs
	// under the client's own publish timeout (pubsub.DefaultPublishSettings.Timeout), counted
	// from no later than the drain deadline.
	PublishFlushTimeout = 60 * time.Second
	// MetricsShutdownTimeout bounds the shutdown of the /metrics, /healthz and /readyz server
	// in cmd/analyzer, after Run returns.
	MetricsShutdownTimeout = 5 * time.Second
)

// ShutdownBound is the longest the analyzer binary can take from SIGTERM to exit with the
// options o (nil: the defaults) on a queue whose receives wait up to wait (the long poll;
// zero or negative: none): a Kubernetes terminationGracePeriodSeconds must be longer.
//
// It is the larger of two figures. The first is the sum the deployment docs start from:
// the last long poll (wait) + the drain timeout + the delete flush (deleteGrace). The
// second follows the code, where those overlap, because the drain deadline is counted from
// SIGTERM, not from the end of the last poll (W = wait, D = DrainTimeout, G = deleteGrace,
// R = releaseCallTimeout, S = deadLetterSendTimeout, M = MetricsShutdownTimeout,
// P = PublishFlushTimeout):
//
//   - the last receive runs to min(W, D) and what it brought is released: min(W, D) + R;
//   - work is cut off at D and released: D + R; a dead-letter send begun just before D runs
//     S, then deletes its message or, if the send failed, releases it: D + S + R;
//   - the deleter flushes until D + G;
//   - Run returns after all three, then the metrics server stops within M;
//   - the publisher's Close waits for a bundle sent no later than D: D + P.
//
// So the code's bound is max(max(min(W, D) + R, D + S + R, D + G) + M, D + P). With the
// defaults (W 20 s, D 25 s): max(max(30, 50, 40) + 5, 85) = 85 s, against 20 + 25 + 15 = 60 s
// for the sum: 85 s. The last term is a publish stuck until its own timeout: with Pub/Sub
// answering, the process exits within 55 s.
func ShutdownBound(o *Options, wait time.Duration) time.Duration {
	in := Options{}
	if o != nil {
		in = *o
	}
	// The mode is checked by withDefaults; it plays no part in the bound, so it cannot make
	// it fail.
	in.Mode = ""
	d, err := in.withDefaults()
	if err != nil {
		panic("analyzer: ShutdownBound: " + err.Error())
	}
	w, drain := max(wait, 0), d.DrainTimeout
	formula := w + drain + deleteGrace
	run := max(min(w, drain)+releaseCallTimeout, drain+deadLetterSendTimeout+releaseCallTimeout, drain+deleteGrace)
	code := max(run+MetricsShutdownTimeout, drain+PublishFlushTimeout)
	return max(formula, code)
}
