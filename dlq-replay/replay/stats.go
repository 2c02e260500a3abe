package replay

import (
	"sort"
	"strconv"
	"time"
)

// Count is one row of a breakdown: a value and how many messages have it.
type Count struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// Stats describes the messages of a DLQ.
type Stats struct {
	Messages       int       `json:"messages"`
	Oldest         time.Time `json:"oldest,omitzero"` // earliest FailedAt
	Newest         time.Time `json:"newest,omitzero"` // latest FailedAt
	ByReason       []Count   `json:"by_reason"`
	ByClass        []Count   `json:"by_class"`
	ByPrefix       []Count   `json:"by_prefix"`
	ByReceiveCount []Count   `json:"by_receive_count"`
	ByReplayCount  []Count   `json:"by_replay_count"`
}

// StatsBuilder accumulates Stats message by message.
type StatsBuilder struct {
	// PrefixDepth is how many folders of the key make its prefix (see PrefixOf); 0 means 1.
	PrefixDepth int

	s                                   Stats
	reason, class, prefix, recv, replay map[string]int
}

// Add counts m.
func (b *StatsBuilder) Add(m *Message) {
	if b.reason == nil {
		b.reason, b.class, b.prefix = map[string]int{}, map[string]int{}, map[string]int{}
		b.recv, b.replay = map[string]int{}, map[string]int{}
	}
	b.s.Messages++
	if at := m.FailedAt(); !at.IsZero() {
		if b.s.Oldest.IsZero() || at.Before(b.s.Oldest) {
			b.s.Oldest = at
		}
		if at.After(b.s.Newest) {
			b.s.Newest = at
		}
	}
	f := m.Failure()
	attrs := m.StringAttributes()
	reason := f.Reason
	if reason == "" {
		reason = "(none)"
	}
	b.reason[reason]++
	class := "(none)"
	if _, ok := attrs["imgpipe.class"]; ok {
		class = f.Class.String()
	}
	b.class[class]++
	depth := b.PrefixDepth
	if depth <= 0 {
		depth = 1
	}
	key := Key(m)
	prefix := PrefixOf(key, depth)
	switch {
	case key == "":
		prefix = "(no key)"
	case prefix == "":
		prefix = "(top level)"
	}
	b.prefix[prefix]++
	b.recv[strconv.Itoa(m.ReceiveCount)]++
	b.replay[strconv.Itoa(f.ReplayCount)]++
}

// Stats returns what was added so far; breakdowns are sorted by count, largest first, then by
// value (numerically for counts).
func (b *StatsBuilder) Stats() Stats {
	s := b.s
	s.ByReason = sorted(b.reason, false)
	s.ByClass = sorted(b.class, false)
	s.ByPrefix = sorted(b.prefix, false)
	s.ByReceiveCount = sorted(b.recv, true)
	s.ByReplayCount = sorted(b.replay, true)
	return s
}

func sorted(m map[string]int, numeric bool) []Count {
	out := make([]Count, 0, len(m))
	for v, n := range m {
		out = append(out, Count{v, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if numeric {
			a, _ := strconv.Atoi(out[i].Value)
			b, _ := strconv.Atoi(out[j].Value)
			return a < b
		}
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Value < out[j].Value
	})
	return out
}
