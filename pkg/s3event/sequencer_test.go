package s3event

import (
	"testing"
	"time"

	"imgpipe/pkg/failure"
)

func TestCompareSequencer(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"0065F3C1DD8A2B4F1C", "0065F3C1DD8A2B4F1C", 0},
		{"0065F3C1DD8A2B4F1C", "0065F3C1DE00000000", -1},
		{"0065F3C1DE00000000", "0065F3C1DD8A2B4F1C", 1},
		// Different lengths: the shorter is padded with zeros on the right.
		{"0065F3C1DD", "0065F3C1DD00000000", 0},
		{"0065F3C1DD", "0065F3C1DD00000001", -1},
		{"0065F3C1DE", "0065F3C1DD8A2B4F1C", 1},
		{"1", "10", 0},
		// Not numeric: "F" pads to "F0", which is above "10".
		{"F", "10", 1},
		{"0A", "A", -1},
		// Case does not matter.
		{"0065f3c1dd", "0065F3C1DD", 0},
		{"ab", "AC", -1},
	}
	for _, tt := range tests {
		got, err := CompareSequencer(tt.a, tt.b)
		if err != nil || got != tt.want {
			t.Errorf("CompareSequencer(%q, %q) = %d, %v; want %d", tt.a, tt.b, got, err, tt.want)
		}
		back, err := CompareSequencer(tt.b, tt.a)
		if err != nil || back != -tt.want {
			t.Errorf("CompareSequencer(%q, %q) = %d, %v; want %d", tt.b, tt.a, back, err, -tt.want)
		}
	}
	for _, bad := range [][2]string{{"", "00"}, {"00", ""}, {"0x1F", "1F"}, {"1F", "1G"}, {" 1F", "1F"}, {"1F-", "1F"}} {
		_, err := CompareSequencer(bad[0], bad[1])
		if !failure.IsPermanent(err) || failure.ReasonOf(err) != ReasonBadSequencer {
			t.Errorf("CompareSequencer(%q, %q) err = %v, want permanent %s", bad[0], bad[1], err, ReasonBadSequencer)
		}
	}
}

func TestFormatSequencer(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "000000000000000000"},
		{0xF, "00000000000000000F"},
		{0x65F3C1DD8A2B4F1C, "0065F3C1DD8A2B4F1C"},
		{^uint64(0), "00FFFFFFFFFFFFFFFF"},
	}
	for _, tt := range tests {
		if got := FormatSequencer(tt.n); got != tt.want {
			t.Errorf("FormatSequencer(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	// Fixed width keeps the documented comparison numeric.
	pairs := [][2]uint64{{0xF, 0x10}, {1, 2}, {0xFF, 0x100}, {0, ^uint64(0)}, {1 << 40, 1<<40 + 1}}
	for _, p := range pairs {
		c, err := CompareSequencer(FormatSequencer(p[0]), FormatSequencer(p[1]))
		if err != nil || c != -1 {
			t.Errorf("FormatSequencer(%#x) vs FormatSequencer(%#x) = %d, %v; want -1", p[0], p[1], c, err)
		}
	}
}

func TestComparePosition(t *testing.T) {
	t0 := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Millisecond)
	tests := []struct {
		name string
		a, b Position
		want int
	}{
		{"sequencer decides over time", Position{"0065F3C1DE", t0}, Position{"0065F3C1DD", t1}, 1},
		{"sequencer decides, older", Position{"0065F3C1DD", t1}, Position{"0065F3C1DE", t0}, -1},
		{"same sequencer is the same event", Position{"0065F3C1DD", t1}, Position{"0065F3C1DD", t0}, 0},
		{"a lacks a sequencer: time", Position{"", t1}, Position{"0065F3C1DE", t0}, 1},
		{"b lacks a sequencer: time", Position{"0065F3C1DE", t0}, Position{"", t1}, -1},
		{"neither has one: time", Position{"", t1}, Position{"", t0}, 1},
		{"equal times without sequencer", Position{"", t0}, Position{"", t0}, 0},
		{"time in other zone", Position{"", t1.In(time.FixedZone("x", 3600))}, Position{"", t0}, 1},
		{"zero positions", Position{}, Position{}, 0},
	}
	for _, tt := range tests {
		got, err := ComparePosition(tt.a, tt.b)
		if err != nil || got != tt.want {
			t.Errorf("%s: ComparePosition = %d, %v; want %d", tt.name, got, err, tt.want)
		}
		newer, err := IsNewer(tt.a, tt.b)
		if err != nil || newer != (tt.want > 0) {
			t.Errorf("%s: IsNewer = %v, %v", tt.name, newer, err)
		}
	}
	if _, err := IsNewer(Position{Sequencer: "zz"}, Position{Sequencer: "00"}); failure.ReasonOf(err) != ReasonBadSequencer {
		t.Errorf("IsNewer with a bad stored sequencer: err = %v", err)
	}
}

func TestRecordPositionOrdersMultiRecordFixture(t *testing.T) {
	m, err := Parse(readFixture(t, "multi_record.json"))
	if err != nil {
		t.Fatal(err)
	}
	first, second := m.Records[0], m.Records[1]
	newer, err := IsNewer(second.Position(), first.Position())
	if err != nil || !newer {
		t.Fatalf("overwrite not newer than the first put: %v, %v", newer, err)
	}
	newer, err = IsNewer(first.Position(), second.Position())
	if err != nil || newer {
		t.Fatalf("first put newer than the overwrite: %v, %v", newer, err)
	}
}
