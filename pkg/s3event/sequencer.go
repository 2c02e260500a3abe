package s3event

import (
	"fmt"
	"time"

	"imgpipe/pkg/failure"
)

// CompareSequencer orders two S3 sequencers of events on the same object key. It returns -1
// when a is older than b, +1 when a is newer, and 0 when they are the same event (S3 gives a
// duplicate delivery of one event the same sequencer).
//
// The rule is AWS's (S3 user guide, "Event message structure", and the knowledge-center
// article on duplicate SQS messages), in our words: the sequencer is a hexadecimal string and
// the event with the greater value happened later; sequencers may differ in length, and to
// compare two of them one appends zeros to the end of the shorter until both are the same
// length, then compares them character by character. Sequencers of different keys cannot be
// compared meaningfully.
//
// Note what the documented right-padding implies: trailing zeros are insignificant ("1" and
// "10" are equal), and this is NOT a numeric comparison ("F" is newer than "10"). Upper- and
// lower-case digits are compared by value, so "0a" equals "0A". An empty or non-hex
// sequencer is a permanent error with ReasonBadSequencer.
func CompareSequencer(a, b string) (int, error) {
	if err := checkHex(a); err != nil {
		return 0, err
	}
	if err := checkHex(b); err != nil {
		return 0, err
	}
	n := max(len(a), len(b))
	for i := range n {
		da, db := digitAt(a, i), digitAt(b, i)
		switch {
		case da < db:
			return -1, nil
		case da > db:
			return 1, nil
		}
	}
	return 0, nil
}

// digitAt returns the value of hex digit i of s, or 0 past its end (the right-padding).
func digitAt(s string, i int) byte {
	if i >= len(s) {
		return 0
	}
	v, _ := hexVal(s[i])
	return v
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func checkHex(s string) error {
	if s == "" {
		return failure.Permanentf(ReasonBadSequencer, "empty sequencer")
	}
	for i := 0; i < len(s); i++ {
		if _, ok := hexVal(s[i]); !ok {
			return failure.Permanentf(ReasonBadSequencer, "sequencer %q: not hexadecimal", s)
		}
	}
	return nil
}

// FormatSequencer returns n as a sequencer of fixed width (18 upper-case hex digits, the
// shape S3 uses, for example "0055AED6DCD90281E5"). Under the documented right-padding rule
// only sequencers of equal width compare like numbers, so a producer (the S3 stand-in) must
// keep the width fixed: FormatSequencer(a) is newer than FormatSequencer(b) exactly when a > b.
func FormatSequencer(n uint64) string {
	return fmt.Sprintf("%018X", n)
}

// Position is what orders one event against another on the same object key: its sequencer
// and, as a fallback, its event time. The indexer stores it with each document.
type Position struct {
	// Sequencer is the event's S3 sequencer; empty when the event had none.
	Sequencer string
	// EventTime is the event's eventTime.
	EventTime time.Time
}

// ComparePosition orders two events on the same object key: -1 when a is older than b, +1
// when a is newer, 0 when neither is newer (the same event, or indistinguishable).
//
// When both have a sequencer, the sequencers decide (CompareSequencer) and the times are not
// looked at: S3 orders events by sequencer, and eventTime has only millisecond precision.
// Only when either sequencer is missing (S3 documents sequencers for PUTs and DELETEs only;
// other events, and documents written before sequencers were stored, may lack one) does the
// event time decide; equal times give 0. A caller that wants "apply only if strictly newer"
// therefore skips an event whose time ties with the stored one.
func ComparePosition(a, b Position) (int, error) {
	if a.Sequencer != "" && b.Sequencer != "" {
		return CompareSequencer(a.Sequencer, b.Sequencer)
	}
	return a.EventTime.Compare(b.EventTime), nil
}

// IsNewer reports whether event a happened after event b on the same object key, as
// ComparePosition decides. An error (a stored sequencer that is not hex) is permanent.
func IsNewer(a, b Position) (bool, error) {
	c, err := ComparePosition(a, b)
	return c > 0, err
}
