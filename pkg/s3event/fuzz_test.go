package s3event

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"imgpipe/pkg/failure"
)

// FuzzParse checks that Parse never panics, that every error is a permanent *failure.Error
// with one of the package's reasons, and that whatever Parse accepts re-marshals and
// re-parses to the same records (RawKey becomes EncodeKey(Key); a missing bucket ARN becomes
// the derived one), and that a second round is byte-stable.
// fixture is one JSON file of testdata or testdata/bad.
type fixture struct {
	name string
	body []byte
}

// fixtures reads every JSON file of testdata and testdata/bad.
func fixtures(tb testing.TB) []fixture {
	tb.Helper()
	var out []fixture
	for _, dir := range []string{"testdata", filepath.Join("testdata", "bad")} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, fixture{filepath.Join(dir, e.Name()), b})
		}
	}
	if len(out) == 0 {
		tb.Fatal("no fixtures in testdata")
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, fx := range fixtures(f) {
		f.Add(fx.body)
	}
	f.Add([]byte(`{"Records":[{"eventVersion":"2","eventSource":"aws:s3","eventTime":"2025-01-01T00:00:00+14:00","eventName":"s3:X:Y","s3":{"bucket":{"name":"b"},"object":{"key":"%2b+","size":0,"eTag":null}}}]}`))
	f.Add([]byte(`{"Type":"Notification","Message":"{\"Event\":\"s3:TestEvent\"}"}`))

	reasons := map[string]bool{
		ReasonMalformedEvent: true, ReasonBadKeyEncoding: true, ReasonBadSequencer: true,
		ReasonUnsupportedEnvelope: true, ReasonUnsupportedEventSource: true, ReasonUnsupportedEventVersion: true,
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Parse(body)
		if err != nil {
			var fe *failure.Error
			if !errors.As(err, &fe) || !failure.IsPermanent(err) || !reasons[failure.ReasonOf(err)] {
				t.Fatalf("unclassified error %v", err)
			}
			if m != nil {
				t.Fatal("message returned with an error")
			}
			return
		}
		if m.Envelope != EnvelopeRaw && m.Envelope != EnvelopeSNS {
			t.Fatalf("envelope %v", m.Envelope)
		}
		if m.TestEvent {
			if len(m.Records) != 0 {
				t.Fatal("test event with records")
			}
			b, err := MarshalTestEvent(m.TestBucket, m.TestTime)
			if err != nil {
				t.Fatalf("MarshalTestEvent: %v", err)
			}
			m2, err := Parse(b)
			if err != nil || !m2.TestEvent || m2.TestBucket != m.TestBucket || !m2.TestTime.Equal(m.TestTime) {
				t.Fatalf("test event round trip: %+v, %v", m2, err)
			}
			return
		}
		if len(m.Records) == 0 {
			t.Fatal("accepted message without records")
		}
		for _, r := range m.Records {
			if r.Bucket == "" || r.Key == "" || !utf8.ValidString(r.Key) || r.Size < 0 || r.Kind != KindOf(r.EventName) ||
				strings.HasPrefix(r.EventName, "s3:") || r.EventTime.Location() != time.UTC {
				t.Fatalf("accepted record breaks an invariant: %+v", r)
			}
		}
		b := checkRoundTrip(t, m.Records)
		m2, _ := Parse(b)
		b2, err := MarshalEvent(m2.Records)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("second round differs: %v\n%s\n%s", err, b, b2)
		}
	})
}

// FuzzKeyRoundTrip checks that DecodeKey(EncodeKey(k)) == k for every valid UTF-8 key, that
// the encoding uses only the characters S3 leaves in a key, and that the key survives a whole
// event round trip.
func FuzzKeyRoundTrip(f *testing.F) {
	for _, k := range []string{"red flower.jpg", "c++/a+b.png", "100%.jpg", "a&b=c", "фото/日本 語.jpg",
		"emoji-📷.png", "%2B", "~*()!'", "a//b/", " ", "+", "\x00\x7f", "upload/2025/03/14/x/y/z.jpeg"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		enc := EncodeKey(key)
		for i := 0; i < len(enc); i++ {
			c := enc[i]
			ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.*/+%", c) >= 0
			if !ok {
				t.Fatalf("EncodeKey(%q) = %q has %q", key, enc, c)
			}
		}
		got, err := DecodeKey(enc)
		if !utf8.ValidString(key) {
			if failure.ReasonOf(err) != ReasonBadKeyEncoding {
				t.Fatalf("DecodeKey(EncodeKey(invalid UTF-8 %q)) err = %v", key, err)
			}
			return
		}
		if err != nil || got != key {
			t.Fatalf("DecodeKey(EncodeKey(%q)) = %q, %v (encoded %q)", key, got, err, enc)
		}
		if key == "" {
			return
		}
		checkRoundTrip(t, []Record{NewRecord("ObjectCreated:Put", "b", key, time.Unix(0, 0))})
	})
}
