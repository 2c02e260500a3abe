package s3event

import (
	"reflect"
	"strings"
	"testing"

	"imgpipe/pkg/failure"
)

// TestParseTopLevelKeyCase pins what Parse accepts when the body's top-level keys are spelled
// in another case, or repeated: the event is found by its exact key "Records" only, and, once
// found, the records are the last of the keys that match "Records" in any case (as
// encoding/json fills a field). Every body also parses exactly as the general path does
// (parseGeneral, which Parse used alone before the one-decode path).
func TestParseTopLevelKeyCase(t *testing.T) {
	rec := func(key string) string {
		return `[{"eventVersion":"2.1","eventSource":"aws:s3","eventTime":"2025-01-01T00:00:00.000Z","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"` + key + `","size":1}}}]`
	}
	for _, tc := range []struct {
		name   string
		body   string
		keys   []string // the records' keys when accepted
		reason string   // the error's reason when rejected
	}{
		{"exact", `{"Records":` + rec("a") + `}`, []string{"a"}, ""},
		{"lower case only", `{"records":` + rec("a") + `}`, nil, ReasonMalformedEvent},
		{"upper case only", `{"RECORDS":` + rec("a") + `}`, nil, ReasonMalformedEvent},
		{"exact then lower case", `{"Records":` + rec("a") + `,"records":` + rec("b") + `}`, []string{"b"}, ""},
		{"lower case then exact", `{"records":` + rec("a") + `,"Records":` + rec("b") + `}`, []string{"b"}, ""},
		{"exact then other case null", `{"Records":` + rec("a") + `,"rEcOrDs":null}`, nil, ReasonMalformedEvent},
		{"exact twice", `{"Records":` + rec("a") + `,"Records":` + rec("b") + `}`, []string{"b"}, ""},
		{"exact then null", `{"Records":` + rec("a") + `,"Records":null}`, nil, ReasonMalformedEvent},
		{"null then exact", `{"Records":null,"Records":` + rec("a") + `}`, []string{"a"}, ""},
		{"empty", `{"Records":[]}`, nil, ReasonMalformedEvent},
		{"not an array", `{"Records":{}}`, nil, ReasonMalformedEvent},
		{"type error in a record", `{"Records":[{"s3":{"object":{"size":"1"}}}]}`, nil, ReasonMalformedEvent},
		{"record field in other case", strings.Replace(`{"Records":`+rec("a")+`}`, `"eventSource"`, `"EVENTSOURCE"`, 1), []string{"a"}, ""},
		{"test event, other case", `{"event":"s3:TestEvent"}`, nil, ReasonMalformedEvent},
		{"SNS with records inside", `{"Type":"Notification","Message":` + quote(`{"Records":`+rec("a")+`}`) + `}`, []string{"a"}, ""},
		{"SNS, its Records in other case", `{"Type":"Notification","Message":` + quote(`{"records":`+rec("a")+`}`) + `}`, nil, ReasonMalformedEvent},
		{"Records beside an SNS envelope", `{"Type":"Notification","Message":"{}","Records":` + rec("a") + `}`, []string{"a"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.body))
			switch {
			case tc.reason != "":
				if err == nil || failure.ReasonOf(err) != tc.reason {
					t.Fatalf("Parse = %+v, %v; want reason %s", m, err, tc.reason)
				}
			case err != nil:
				t.Fatalf("Parse: %v", err)
			default:
				var got []string
				for _, r := range m.Records {
					got = append(got, r.Key)
				}
				if !reflect.DeepEqual(got, tc.keys) {
					t.Fatalf("records' keys %q, want %q", got, tc.keys)
				}
			}
			sameAsGeneral(t, []byte(tc.body))
		})
	}
}

// TestParseSameAsGeneralOnFixtures checks every fixture, good and bad, against the general path.
func TestParseSameAsGeneralOnFixtures(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.name, func(t *testing.T) { sameAsGeneral(t, fx.body) })
	}
}

func sameAsGeneral(t *testing.T, body []byte) {
	t.Helper()
	m, err := Parse(body)
	gm, gerr := parseGeneral(body, true)
	if (err == nil) != (gerr == nil) || (err != nil && err.Error() != gerr.Error()) {
		t.Fatalf("Parse error %v, the general path's %v", err, gerr)
	}
	if !reflect.DeepEqual(m, gm) {
		t.Fatalf("Parse = %+v, the general path %+v", m, gm)
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// BenchmarkParse compares Parse with the general path alone (two decodes of the body) on
// the put fixture, in one run:
//
//	go test ./pkg/s3event -run '^$' -bench Parse -benchmem
func BenchmarkParse(b *testing.B) {
	body := readFixture(b, "put.json")
	b.Run("one-decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := Parse(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		for b.Loop() {
			if _, err := parseGeneral(body, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}
