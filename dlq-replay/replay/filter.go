package replay

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
)

// Filter selects the messages a replay moves. The zero Filter selects everything.
type Filter struct {
	Reasons   []string      // failure reasons (imgpipe.reason); empty: any
	Classes   []string      // failure classes: permanent, transient, throttled; empty: any
	Prefix    string        // object key prefix; empty: any
	Glob      string        // object key glob (path.Match syntax, * stops at /); empty: any
	OlderThan time.Duration // failed more than this long ago; 0: any
	NewerThan time.Duration // failed less than this long ago; 0: any
}

// Validate reports a filter that can never work (a malformed glob, a negative age).
func (f *Filter) Validate() error {
	if f.Glob != "" {
		if _, err := path.Match(f.Glob, ""); err != nil {
			return fmt.Errorf("glob %q: %w", f.Glob, err)
		}
	}
	if f.OlderThan < 0 || f.NewerThan < 0 {
		return fmt.Errorf("ages must not be negative")
	}
	for _, c := range f.Classes {
		switch c {
		case "permanent", "transient", "throttled":
		default:
			return fmt.Errorf("class %q: want permanent, transient or throttled", c)
		}
	}
	return nil
}

// Match reports whether m passes the filter at now.
func (f *Filter) Match(m *Message, now time.Time) bool {
	fl := m.Failure()
	if len(f.Reasons) > 0 && !slices.Contains(f.Reasons, fl.Reason) {
		return false
	}
	if len(f.Classes) > 0 {
		// A message without imgpipe.class has no recorded class: it matches no class filter.
		if _, ok := m.StringAttributes()[failure.AttrClass]; !ok || !slices.Contains(f.Classes, fl.Class.String()) {
			return false
		}
	}
	if f.Prefix != "" || f.Glob != "" {
		key := Key(m)
		if key == "" || !strings.HasPrefix(key, f.Prefix) {
			return false
		}
		if f.Glob != "" {
			if ok, _ := path.Match(f.Glob, key); !ok {
				return false
			}
		}
	}
	if f.OlderThan > 0 || f.NewerThan > 0 {
		at := m.FailedAt()
		if at.IsZero() {
			return false
		}
		age := now.Sub(at)
		if f.OlderThan > 0 && age <= f.OlderThan {
			return false
		}
		if f.NewerThan > 0 && age >= f.NewerThan {
			return false
		}
	}
	return true
}

// Decision is what a replay does with one message.
type Decision int

const (
	// Move sends the message back to its source and deletes it from the DLQ.
	Move Decision = iota
	// SkipFilter leaves the message: the filter does not select it.
	SkipFilter
	// SkipReplays leaves the message: it was already replayed MaxReplays times.
	SkipReplays
	// SkipMax leaves the message: the replay already selected its maximum count.
	SkipMax
	// SkipCameBack leaves the message: a replay stamped it after the run started (this run
	// moved it and the pipeline sent it back, or another run did).
	SkipCameBack
	// SkipArrived leaves the message: it was sent to the DLQ after the run started.
	SkipArrived
)

// String returns the decision as the summaries and --json print it.
func (d Decision) String() string {
	switch d {
	case Move:
		return "move"
	case SkipFilter:
		return "skip-filter"
	case SkipReplays:
		return "too-many-replays"
	case SkipMax:
		return "skip-max"
	case SkipCameBack:
		return "came-back"
	case SkipArrived:
		return "arrived"
	}
	return "decision(" + strconv.Itoa(int(d)) + ")"
}

// Decide says what to do with m: the filter first, then the replay limit (a message already
// replayed maxReplays times stays; maxReplays <= 0 means no limit).
func Decide(m *Message, f *Filter, maxReplays int, now time.Time) Decision {
	if !f.Match(m, now) {
		return SkipFilter
	}
	if maxReplays > 0 && m.Failure().ReplayCount >= maxReplays {
		return SkipReplays
	}
	return Move
}

// Marked returns a copy of m to send back to its source: the attributes kept, the replay
// count incremented and the replay time set. When the result would exceed limit attributes
// (limit <= 0: none), queue.Trim's rule leaves some out (the trace's baggage and tracestate,
// then the replay time, then imgpipe.error, then imgpipe.first-failure); the names left out
// are returned. The replay count is always kept.
func Marked(m *Message, now time.Time, limit int) (*Message, []string) {
	out := *m
	out.Attributes = make(map[string]Attr, len(m.Attributes)+2)
	for k, v := range m.Attributes {
		out.Attributes[k] = v
	}
	n := m.Failure().ReplayCount + 1
	out.Attributes[failure.AttrReplayCount] = Attr{DataType: DataString, String: strconv.Itoa(n)}
	out.Attributes[AttrReplayedAt] = Attr{DataType: DataString, String: now.UTC().Format(time.RFC3339Nano)}
	dropped := queue.Trim(out.Attributes, limit)
	return &out, dropped
}
