package replay

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/s3event"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func s3Body(t testing.TB, key string) []byte {
	t.Helper()
	b, err := s3event.MarshalEvent([]s3event.Record{s3event.NewRecord("ObjectCreated:Put", "images", key, now)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// msg builds a dead-lettered message; failedAgo < 0 leaves out the failure times.
func msg(t testing.TB, key, reason string, class failure.Class, replays int, failedAgo time.Duration) *Message {
	m := &Message{ID: key, Body: s3Body(t, key), Attributes: map[string]Attr{}}
	f := failure.Details{Reason: reason, Class: class, Attempts: 1, ReplayCount: replays}
	if failedAgo >= 0 {
		f.FirstFailure, f.LastFailure = now.Add(-failedAgo), now.Add(-failedAgo)
	}
	for k, v := range f.Attributes() {
		m.Attributes[k] = Attr{DataType: DataString, String: v}
	}
	return m
}

func TestDecide(t *testing.T) {
	perm := msg(t, "upload/cats/a.jpg", "InvalidImageFormat", failure.Permanent, 0, time.Hour)
	trans := msg(t, "upload/dogs/b.png", "VisionUnavailable", failure.Transient, 2, 10*time.Minute)
	looped := msg(t, "upload/cats/c.jpg", "VisionUnavailable", failure.Transient, 5, time.Minute)
	bare := &Message{ID: "bare", Body: s3Body(t, "upload/d.jpg"), SentAt: now.Add(-3 * time.Hour)} // redrive policy moved it: no imgpipe attributes
	foreign := &Message{ID: "foreign", Body: []byte("not json")}
	cases := []struct {
		name string
		m    *Message
		f    Filter
		max  int
		want Decision
	}{
		{"no filter", perm, Filter{}, 5, Move},
		{"reason match", perm, Filter{Reasons: []string{"X", "InvalidImageFormat"}}, 5, Move},
		{"reason miss", trans, Filter{Reasons: []string{"InvalidImageFormat"}}, 5, SkipFilter},
		{"class match", trans, Filter{Classes: []string{"transient"}}, 5, Move},
		{"class miss", perm, Filter{Classes: []string{"transient"}}, 5, SkipFilter},
		{"no class attribute never matches a class", bare, Filter{Classes: []string{"transient"}}, 5, SkipFilter},
		{"prefix match", perm, Filter{Prefix: "upload/cats/"}, 5, Move},
		{"prefix miss", trans, Filter{Prefix: "upload/cats/"}, 5, SkipFilter},
		{"prefix on keyless body", foreign, Filter{Prefix: "upload/"}, 5, SkipFilter},
		{"glob match", trans, Filter{Glob: "upload/*/*.png"}, 5, Move},
		{"glob star stops at slash", trans, Filter{Glob: "upload/*.png"}, 5, SkipFilter},
		{"older than: yes", perm, Filter{OlderThan: 30 * time.Minute}, 5, Move},
		{"older than: no", trans, Filter{OlderThan: 30 * time.Minute}, 5, SkipFilter},
		{"newer than: yes", trans, Filter{NewerThan: 30 * time.Minute}, 5, Move},
		{"newer than: no", perm, Filter{NewerThan: 30 * time.Minute}, 5, SkipFilter},
		{"age from SentAt without failure times", bare, Filter{OlderThan: 2 * time.Hour}, 5, Move},
		{"age unknown never matches", foreign, Filter{NewerThan: time.Hour}, 5, SkipFilter},
		{"window", perm, Filter{OlderThan: 30 * time.Minute, NewerThan: 2 * time.Hour}, 5, Move},
		{"too many replays", looped, Filter{}, 5, SkipReplays},
		{"under the replay limit", trans, Filter{}, 3, Move},
		{"at the replay limit", trans, Filter{}, 2, SkipReplays},
		{"no replay limit", looped, Filter{}, -1, Move},
		{"filter before replay limit", looped, Filter{Reasons: []string{"other"}}, 5, SkipFilter},
		{"all filters", perm, Filter{Reasons: []string{"InvalidImageFormat"}, Classes: []string{"permanent"}, Prefix: "upload/", Glob: "upload/cats/*", OlderThan: time.Minute}, 5, Move},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Decide(c.m, &c.f, c.max, now); got != c.want {
				t.Fatalf("Decide = %s, want %s", got, c.want)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	for _, c := range []struct {
		f  Filter
		ok bool
	}{
		{Filter{}, true},
		{Filter{Glob: "upload/[a-"}, false},
		{Filter{OlderThan: -time.Second}, false},
		{Filter{Classes: []string{"permanent", "throttled"}}, true},
		{Filter{Classes: []string{"fatal"}}, false},
	} {
		if err := c.f.Validate(); (err == nil) != c.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", c.f, err, c.ok)
		}
	}
}

func TestMarked(t *testing.T) {
	full := func(n int) *Message {
		m := msg(t, "upload/a.jpg", "VisionUnavailable", failure.Transient, 1, time.Minute)
		for i := 0; len(m.Attributes) < n; i++ {
			m.Attributes["custom."+strconv.Itoa(i)] = Attr{DataType: DataString, String: "v"}
		}
		return m
	}
	cases := []struct {
		name        string
		m           *Message
		limit       int
		wantDropped []string
		wantLen     int
	}{
		{"room for both", full(7), 10, nil, 8}, // 7 attributes, replay-count among them: +replayed-at
		{"replayed-at dropped first", full(10), 10, []string{AttrReplayedAt}, 10},
		{"no limit", full(12), 0, nil, 13},
		{"pubsub limit", full(12), 100, nil, 13},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(c.m.Attributes)
			out, dropped := Marked(c.m, now, c.limit)
			if strings.Join(dropped, ",") != strings.Join(c.wantDropped, ",") || len(out.Attributes) != c.wantLen {
				t.Fatalf("dropped %v, %d attributes; want %v, %d", dropped, len(out.Attributes), c.wantDropped, c.wantLen)
			}
			if out.Attributes[failure.AttrReplayCount].String != "2" {
				t.Fatalf("replay count %q, want 2", out.Attributes[failure.AttrReplayCount].String)
			}
			if len(c.m.Attributes) != before || c.m.Attributes[failure.AttrReplayCount].String != "1" {
				t.Fatal("Marked changed its input")
			}
			if len(dropped) == 0 && out.Attributes[AttrReplayedAt].String != now.Format(time.RFC3339Nano) {
				t.Fatalf("replayed-at %q", out.Attributes[AttrReplayedAt].String)
			}
		})
	}
	// A message that arrived with no replay count and 10 foreign attributes: the count wins.
	m := &Message{ID: "x", Attributes: map[string]Attr{}}
	for i := range 10 {
		m.Attributes["a"+strconv.Itoa(i)] = Attr{DataType: DataString, String: "v"}
	}
	m.Attributes[failure.AttrError] = Attr{DataType: DataString, String: "boom"}
	out, dropped := Marked(m, now, 10)
	if _, ok := out.Attributes[failure.AttrReplayCount]; !ok || strings.Join(dropped, ",") != AttrReplayedAt+","+failure.AttrError {
		t.Fatalf("dropped %v, attributes %v", dropped, out.Attributes)
	}
}

func TestKeyAndPrefix(t *testing.T) {
	for _, c := range []struct {
		body       []byte
		key, pref1 string
		pref2      string
	}{
		{s3Body(t, "upload/cats/2026/a b.jpg"), "upload/cats/2026/a b.jpg", "upload/", "upload/cats/"},
		{[]byte(`{"key":"upload/x.jpg","bucket":"images"}`), "upload/x.jpg", "upload/", "upload/"},
		{s3Body(t, "top.jpg"), "top.jpg", "", ""},
		{[]byte("garbage"), "", "", ""},
	} {
		if got := KeyOf(c.body); got != c.key {
			t.Errorf("KeyOf(%.40s) = %q, want %q", c.body, got, c.key)
		}
		if got := PrefixOf(c.key, 1); got != c.pref1 {
			t.Errorf("PrefixOf(%q, 1) = %q, want %q", c.key, got, c.pref1)
		}
		if got := PrefixOf(c.key, 2); got != c.pref2 {
			t.Errorf("PrefixOf(%q, 2) = %q, want %q", c.key, got, c.pref2)
		}
	}
}

func TestStats(t *testing.T) {
	b := &StatsBuilder{PrefixDepth: 2}
	a := msg(t, "upload/cats/a.jpg", "InvalidImageFormat", failure.Permanent, 0, time.Hour)
	a.ReceiveCount = 1
	c := msg(t, "upload/cats/c.jpg", "VisionUnavailable", failure.Transient, 1, time.Minute)
	c.ReceiveCount = 6
	d := msg(t, "upload/dogs/d.jpg", "VisionUnavailable", failure.Transient, 0, 2*time.Hour)
	d.ReceiveCount = 6
	bare := &Message{ID: "bare", Body: []byte("x"), ReceiveCount: 11}
	for _, m := range []*Message{a, c, d, bare} {
		b.Add(m)
	}
	s := b.Stats()
	if s.Messages != 4 || !s.Oldest.Equal(now.Add(-2*time.Hour)) || !s.Newest.Equal(now.Add(-time.Minute)) {
		t.Fatalf("totals %+v", s)
	}
	check := func(name string, got []Count, want string) {
		t.Helper()
		var p []string
		for _, c := range got {
			p = append(p, c.Value+"="+strconv.Itoa(c.Count))
		}
		if strings.Join(p, " ") != want {
			t.Errorf("%s: %s, want %s", name, strings.Join(p, " "), want)
		}
	}
	check("reason", s.ByReason, "VisionUnavailable=2 (none)=1 InvalidImageFormat=1")
	check("class", s.ByClass, "transient=2 (none)=1 permanent=1")
	check("prefix", s.ByPrefix, "upload/cats/=2 (no key)=1 upload/dogs/=1")
	check("receive", s.ByReceiveCount, "1=1 6=2 11=1")
	check("replay", s.ByReplayCount, "0=3 1=1")
}

func TestLineRoundTrip(t *testing.T) {
	in := []*Message{
		msg(t, "upload/ü x.jpg", "InvalidImageFormat", failure.Permanent, 2, time.Minute),
		{ID: "bin", Body: []byte{0xff, 0, 'a'}, OrderingKey: "k", SentAt: now, ReceiveCount: 3,
			Attributes: map[string]Attr{"b": {DataType: DataBinary, Binary: []byte{1, 2}}, "n": {DataType: "Number.int", String: "7"}, "e": {DataType: DataString, String: ""}}},
		{ID: "empty", Body: []byte{}},
	}
	var buf bytes.Buffer
	for _, m := range in {
		if err := WriteLine(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString("\n") // blank lines are skipped
	var out []*Message
	if err := ReadLines(&buf, func(m *Message) error { out = append(out, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("read %d records, wrote %d", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.ID != b.ID || !bytes.Equal(a.Body, b.Body) || a.OrderingKey != b.OrderingKey || a.ReceiveCount != b.ReceiveCount || !a.SentAt.Equal(b.SentAt) || len(a.Attributes) != len(b.Attributes) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, b, a)
		}
		for k, x := range a.Attributes {
			y := b.Attributes[k]
			if x.DataType != y.DataType || x.String != y.String || !bytes.Equal(x.Binary, y.Binary) {
				t.Fatalf("record %d attribute %s: got %+v want %+v", i, k, y, x)
			}
		}
	}
}

func TestReadLinesErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"message_id":"a","body":"x"}` + "\n{broken\n", "line 2"},
		{`{"message_id":"a"}`, "without body"},
		{`{"message_id":"a","body":"x","attributes":{"k":{"string_value":"v"}}}`, "without data_type"},
	} {
		err := ReadLines(strings.NewReader(c.in), func(*Message) error { return nil })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ReadLines(%q) = %v, want an error with %q", c.in, err, c.want)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"message_id":"a","body":"x","attributes":{"k":{"data_type":"String","string_value":"v"}}}`))
	f.Add([]byte(`{"message_id":"b","body_base64":"AAE=","sent_timestamp":"2026-11-22T12:00:00Z"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := ParseLine(line)
		if err != nil {
			return
		}
		// Whatever parses writes back and parses to the same message.
		var buf bytes.Buffer
		if err := WriteLine(&buf, m); err != nil {
			t.Fatal(err)
		}
		m2, err := ParseLine(bytes.TrimSpace(buf.Bytes()))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !bytes.Equal(m.Body, m2.Body) || len(m.Attributes) != len(m2.Attributes) || m.ID != m2.ID {
			t.Fatalf("round trip changed %+v into %+v", m, m2)
		}
	})
}
