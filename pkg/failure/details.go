package failure

import (
	"strconv"
	"time"
)

// Attribute names. SQS allows 10 attributes per message; these take at most 9 (queue.Trim
// says which give way when a message would carry more).
const (
	AttrReason       = "imgpipe.reason"        // failure reason code, e.g. InvalidImageFormat
	AttrClass        = "imgpipe.class"         // permanent, transient or throttled
	AttrError        = "imgpipe.error"         // the error text, cut to MaxErrorLen
	AttrAttempts     = "imgpipe.attempts"      // how many times the message was received
	AttrFirstFailure = "imgpipe.first-failure" // RFC 3339, when the message first failed
	AttrLastFailure  = "imgpipe.last-failure"  // RFC 3339, when it last failed
	AttrSourceQueue  = "imgpipe.source-queue"  // URL or name of the queue it came from
	AttrReplayCount  = "imgpipe.replay-count"  // set by dlq-replay: times replayed
	AttrReplayedAt   = "imgpipe.replayed-at"   // set by dlq-replay: RFC 3339, when last replayed
)

// MaxErrorLen bounds the error text kept on a message.
const MaxErrorLen = 1024

// Details is what a dead-lettered message says about why it is there: a classified failure as
// it travels with the message, as SQS message attributes or Pub/Sub attributes, so that the
// analyzer and the indexer write it and dlq-replay reads it in one shape.
type Details struct {
	Reason       string
	Class        Class
	Error        string
	Attempts     int
	FirstFailure time.Time
	LastFailure  time.Time
	SourceQueue  string
	ReplayCount  int
}

// DetailsOf describes err as it failed now on a message received attempts times from source.
// first is when the message first failed (zero: now).
func DetailsOf(err error, attempts int, source string, first, now time.Time) Details {
	if first.IsZero() {
		first = now
	}
	text := err.Error()
	if len(text) > MaxErrorLen {
		text = text[:MaxErrorLen]
	}
	return Details{
		Reason: ReasonOf(err), Class: ClassOf(err), Error: text,
		Attempts: attempts, FirstFailure: first.UTC(), LastFailure: now.UTC(), SourceQueue: source,
	}
}

// Attributes returns f as string attributes.
func (f Details) Attributes() map[string]string {
	a := map[string]string{
		AttrReason:       f.Reason,
		AttrClass:        f.Class.String(),
		AttrError:        f.Error,
		AttrAttempts:     strconv.Itoa(f.Attempts),
		AttrFirstFailure: f.FirstFailure.Format(time.RFC3339Nano),
		AttrLastFailure:  f.LastFailure.Format(time.RFC3339Nano),
		AttrSourceQueue:  f.SourceQueue,
	}
	if f.ReplayCount > 0 {
		a[AttrReplayCount] = strconv.Itoa(f.ReplayCount)
	}
	for k, v := range a {
		if v == "" {
			delete(a, k) // SQS rejects empty attribute values
		}
	}
	return a
}

// Parse reads a Details back from attributes. Missing or unreadable fields stay zero: a
// message dead-lettered by SQS's redrive policy (not by the analyzer) carries none of them.
func ParseDetails(attrs map[string]string) Details {
	f := Details{Reason: attrs[AttrReason], Error: attrs[AttrError], SourceQueue: attrs[AttrSourceQueue]}
	if c, err := ParseClass(attrs[AttrClass]); err == nil {
		f.Class = c
	}
	f.Attempts, _ = strconv.Atoi(attrs[AttrAttempts])
	f.ReplayCount, _ = strconv.Atoi(attrs[AttrReplayCount])
	f.FirstFailure, _ = time.Parse(time.RFC3339Nano, attrs[AttrFirstFailure])
	f.LastFailure, _ = time.Parse(time.RFC3339Nano, attrs[AttrLastFailure])
	return f
}
