package record

import (
	"strings"
	"testing"
	"time"

	"imgpipe/pkg/failure"
)

func validRecord() *Analysis {
	return &Analysis{
		SchemaVersion: SchemaVersion, Event: Created, Bucket: "images", Key: "upload/a b+c.jpg",
		Sequencer: "0055AED6DCD90281E5", EventTime: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		Width: 640, Height: 480, Tags: []Tag{{"red", 0.9}}, Caption: "a red image",
	}
}

func TestRoundTrip(t *testing.T) {
	in := validRecord()
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Key != in.Key || out.Width != 640 || len(out.Tags) != 1 || out.Tags[0] != in.Tags[0] || !out.EventTime.Equal(in.EventTime) {
		t.Fatalf("round trip changed the record: %+v", out)
	}
}

func TestUnmarshalErrorsArePermanent(t *testing.T) {
	tests := []struct {
		name, body, reason string
	}{
		{"not json", `{"schemaVersion":`, ReasonMalformedRecord},
		{"future version", `{"schemaVersion":99,"event":"created","bucket":"b","key":"k"}`, ReasonUnsupportedVersion},
		{"unknown event", `{"schemaVersion":1,"event":"moved","bucket":"b","key":"k"}`, ReasonMalformedRecord},
		{"no bucket", `{"schemaVersion":1,"event":"created","key":"k"}`, ReasonMalformedRecord},
		{"no key", `{"schemaVersion":1,"event":"removed","bucket":"b"}`, ReasonMalformedRecord},
		{"wrong type", `{"schemaVersion":"1","event":"created","bucket":"b","key":"k"}`, ReasonMalformedRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Unmarshal([]byte(tt.body))
			if err == nil {
				t.Fatal("want error")
			}
			if !failure.IsPermanent(err) || failure.ReasonOf(err) != tt.reason {
				t.Fatalf("got %v (class %v, reason %q), want permanent %q", err, failure.ClassOf(err), failure.ReasonOf(err), tt.reason)
			}
		})
	}
}

func TestDocumentIDValidForAnyKey(t *testing.T) {
	keys := []string{"a", "upload/x/y.jpg", ".", "..", "__x__", strings.Repeat("k", 1024), "ünï cødé/é.png", "a/b", ""}
	seen := map[string]string{}
	for _, k := range keys {
		id := DocumentID("images", k)
		if len(id) != 64 || strings.ContainsAny(id, "/.") || strings.HasPrefix(id, "__") {
			t.Fatalf("DocumentID(%q) = %q is not a valid Firestore ID", k, id)
		}
		if prev, dup := seen[id]; dup {
			t.Fatalf("keys %q and %q share ID %s", prev, k, id)
		}
		seen[id] = k
	}
	if DocumentID("images", "k") != DocumentID("images", "k") {
		t.Fatal("not deterministic")
	}
	if DocumentID("images", "k") == DocumentID("images2", "k") {
		t.Fatal("bucket is not part of the ID")
	}
}

func TestOrderingKeyBounded(t *testing.T) {
	r := validRecord()
	if got := r.OrderingKey(); got != "images/upload/a b+c.jpg" {
		t.Fatalf("OrderingKey = %q", got)
	}
	r.Key = strings.Repeat("x", 1100)
	if got := r.OrderingKey(); len(got) > 1024 {
		t.Fatalf("ordering key %d bytes, Pub/Sub allows 1024", len(got))
	}
	r2 := *r
	r2.Key = strings.Repeat("x", 1099) + "y"
	if r.OrderingKey() == r2.OrderingKey() {
		t.Fatal("long keys differing at the end share an ordering key")
	}
}

func TestAttributes(t *testing.T) {
	a := validRecord().Attributes()
	if a[AttrBucket] != "images" || a[AttrKey] != "upload/a b+c.jpg" || a[AttrEvent] != "created" || a[AttrSchemaVersion] != "1" || a[AttrSequencer] != "0055AED6DCD90281E5" {
		t.Fatalf("attributes: %v", a)
	}
}
