package s3event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"imgpipe/pkg/failure"
)

func compactJSON(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Re-marshalling what S3 sent (eventVersion 2.1) gives back S3's bytes exactly: the same
// fields, the same order, the same encodings.
func TestMarshalEventReproducesAWSFixtures(t *testing.T) {
	for _, file := range []string{
		"put.json", "multipart.json", "copy.json", "post.json", "delete.json",
		"delete_marker.json", "versioned.json", "multi_record.json",
	} {
		t.Run(file, func(t *testing.T) {
			raw := readFixture(t, file)
			m, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := MarshalEvent(m.Records)
			if err != nil {
				t.Fatal(err)
			}
			if want := compactJSON(t, raw); !bytes.Equal(got, want) {
				t.Errorf("MarshalEvent:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// The stand-in's path: NewRecord plus the fields it knows gives S3's bytes.
func TestNewRecordMarshalsLikeS3(t *testing.T) {
	r := NewRecord("s3:ObjectCreated:Put", "imgpipe-drop", "upload/holiday/red flower.jpg",
		mustTime(t, "2025-03-14T10:26:53.589+01:00"))
	r.Region = "us-east-1"
	r.PrincipalID = "AWS:AIDAQ3EGRXAMPLEUPLOAD"
	r.SourceIP = "203.0.113.17"
	r.RequestID = "8F2A41C7D93B0E55"
	r.HostID = "Qm9vdHN0cmFwSG9zdElkRm9yVGVzdHMvZXhhbXBsZS9ub3QvcmVhbC8xMjM0NTY3ODkwYWJjZGVm"
	r.ConfigurationID = "imgpipe-upload-created"
	r.BucketOwner = "A3NL1KOZZKEXAMPLE"
	r.Size = 1048576
	r.ETag = "0123456789abcdef0123456789abcdef"
	r.Sequencer = "0065F3C1DD8A2B4F1C"
	if d := recordDiff(r, putRecord(t)); d != "" {
		t.Fatalf("NewRecord: field %s differs: %+v", d, r)
	}
	got, err := MarshalEvent([]Record{r})
	if err != nil {
		t.Fatal(err)
	}
	if want := compactJSON(t, readFixture(t, "put.json")); !bytes.Equal(got, want) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestMarshalEventShapeDetails(t *testing.T) {
	base := NewRecord("ObjectRemoved:Delete", "b", "k", time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	tests := []struct {
		name     string
		mod      func(*Record)
		contains []string
		absent   []string
	}{
		{"removal omits size and eTag", func(*Record) {},
			[]string{`"eventTime":"2025-01-02T03:04:05.000Z"`, `"object":{"key":"k"}`, `"arn":"arn:aws:s3:::b"`},
			[]string{`"size"`, `"eTag"`, `"versionId"`, `"sequencer"`}},
		{"created writes size and eTag even when zero", func(r *Record) { r.EventName = "ObjectCreated:Put" },
			[]string{`"object":{"key":"k","size":0,"eTag":""}`}, nil},
		{"removal with version and sequencer", func(r *Record) { r.VersionID = "v1"; r.Sequencer = "0A" },
			[]string{`"object":{"key":"k","versionId":"v1","sequencer":"0A"}`}, nil},
		{"empty ARN derived, given ARN kept", func(r *Record) { r.BucketARN = "arn:aws-cn:s3:::b" },
			[]string{`"arn":"arn:aws-cn:s3:::b"`}, nil},
		{"s3: prefix dropped", func(r *Record) { r.EventName = "s3:ObjectRemoved:Delete" },
			[]string{`"eventName":"ObjectRemoved:Delete"`}, []string{`s3:Object`}},
		{"no HTML escaping", func(r *Record) { r.ETag = "<&>"; r.Key = "a&b" },
			[]string{`"eTag":"<&>"`, `"key":"a%26b"`}, []string{`\u0026`}},
		{"sub-millisecond time keeps nanoseconds", func(r *Record) { r.EventTime = r.EventTime.Add(1500) },
			[]string{`"eventTime":"2025-01-02T03:04:05.000001500Z"`}, nil},
		{"identity blocks always present", func(*Record) {},
			[]string{`"userIdentity":{"principalId":""}`, `"requestParameters":{"sourceIPAddress":""}`,
				`"responseElements":{"x-amz-request-id":"","x-amz-id-2":""}`, `"s3SchemaVersion":"1.0"`,
				`"eventVersion":"2.1","eventSource":"aws:s3"`}, nil},
	}
	for _, tt := range tests {
		r := base
		r.BucketARN = ""
		tt.mod(&r)
		b, err := MarshalEvent([]Record{r})
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		for _, s := range tt.contains {
			if !bytes.Contains(b, []byte(s)) {
				t.Errorf("%s: %s lacks %s", tt.name, b, s)
			}
		}
		for _, s := range tt.absent {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s: %s has %s", tt.name, b, s)
			}
		}
	}
}

func TestMarshalEventRejects(t *testing.T) {
	good := NewRecord("ObjectCreated:Put", "b", "k", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	tests := []struct {
		name   string
		mod    func(*Record)
		reason string
	}{
		{"empty event name", func(r *Record) { r.EventName = "" }, ReasonMalformedEvent},
		{"prefix only", func(r *Record) { r.EventName = "s3:" }, ReasonMalformedEvent},
		{"empty bucket", func(r *Record) { r.Bucket = "" }, ReasonMalformedEvent},
		{"empty key", func(r *Record) { r.Key = "" }, ReasonMalformedEvent},
		{"negative size", func(r *Record) { r.Size = -1 }, ReasonMalformedEvent},
		{"bad sequencer", func(r *Record) { r.Sequencer = "xyz" }, ReasonBadSequencer},
		{"key not UTF-8", func(r *Record) { r.Key = "a\xffb" }, ReasonBadKeyEncoding},
		{"bucket not UTF-8", func(r *Record) { r.Bucket = "b\xff" }, ReasonMalformedEvent},
		{"year 10000", func(r *Record) { r.EventTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, ReasonMalformedEvent},
		{"year -1", func(r *Record) { r.EventTime = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }, ReasonMalformedEvent},
	}
	for _, tt := range tests {
		r := good
		tt.mod(&r)
		_, err := MarshalEvent([]Record{good, r})
		if !failure.IsPermanent(err) || failure.ReasonOf(err) != tt.reason {
			t.Errorf("%s: err = %v, want permanent %s", tt.name, err, tt.reason)
		}
	}
	if _, err := MarshalEvent(nil); failure.ReasonOf(err) != ReasonMalformedEvent {
		t.Errorf("no records: err = %v", err)
	}
}

func TestMarshalTestEvent(t *testing.T) {
	tm := mustTime(t, "2025-03-14T09:00:00.042Z")
	b, err := MarshalTestEvent("imgpipe-drop", tm)
	if err != nil {
		t.Fatal(err)
	}
	prefix := `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2025-03-14T09:00:00.042Z","Bucket":"imgpipe-drop","RequestId":"`
	if !bytes.HasPrefix(b, []byte(prefix)) {
		t.Fatalf("shape: %s", b)
	}
	var fields map[string]string
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	var fixture map[string]string
	if err := json.Unmarshal(readFixture(t, "test_event.json"), &fixture); err != nil {
		t.Fatal(err)
	}
	for k := range fixture {
		if fields[k] == "" {
			t.Errorf("field %s missing or empty in %s", k, b)
		}
	}
	if len(fields) != len(fixture) {
		t.Errorf("fields %v, fixture has %v", fields, fixture)
	}
	again, _ := MarshalTestEvent("imgpipe-drop", tm)
	if !bytes.Equal(b, again) {
		t.Error("MarshalTestEvent is not deterministic")
	}
	m, err := Parse(b)
	if err != nil || !m.TestEvent || m.TestBucket != "imgpipe-drop" || !m.TestTime.Equal(tm) {
		t.Fatalf("Parse(MarshalTestEvent) = %+v, %v", m, err)
	}
}

func TestWrapSNS(t *testing.T) {
	inner := compactJSON(t, readFixture(t, "put.json"))
	tm := mustTime(t, "2025-03-14T09:26:53.702Z")
	b, err := WrapSNS(inner, "arn:aws:sns:us-east-1:123456789012:imgpipe-s3-events", "mid-1", tm)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Envelope != EnvelopeSNS || m.SNSMessageID != "mid-1" || m.SNSTopicARN != "arn:aws:sns:us-east-1:123456789012:imgpipe-s3-events" {
		t.Fatalf("envelope: %+v", m)
	}
	if d := recordDiff(m.Records[0], putRecord(t)); d != "" {
		t.Fatalf("record differs in %s", d)
	}
	te, _ := MarshalTestEvent("b", tm)
	b, _ = WrapSNS(te, "arn", "mid-2", tm)
	if m, err := Parse(b); err != nil || !m.TestEvent || m.Envelope != EnvelopeSNS {
		t.Fatalf("SNS test event: %+v, %v", m, err)
	}
	// Wrapping twice is a nested envelope, which Parse refuses.
	b2, _ := WrapSNS(b, "arn", "mid-3", tm)
	if _, err := Parse(b2); failure.ReasonOf(err) != ReasonUnsupportedEnvelope {
		t.Fatalf("nested SNS: err = %v", err)
	}
}

// randomKey returns a key mixing the characters that matter to the encoding.
func randomKey(rng *rand.Rand) string {
	pieces := []string{"a", "Z", "9", " ", "+", "%", "&", "=", "/", "~", "*", "(", ")", "?", "#",
		"%2B", "é", "日", "📷", "\t", "\x7f", ".", "-", "_", "\"", "\\", "<", ">", "'"}
	n := 1 + rng.IntN(24)
	var b strings.Builder
	for range n {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}

func randomRecord(rng *rand.Rand) Record {
	names := []string{"ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload", "ObjectCreated:Copy",
		"ObjectCreated:Post", "ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated",
		"LifecycleExpiration:Delete", "ObjectRestore:Completed", "s3:ObjectCreated:Put"}
	opt := func(s string) string {
		if rng.IntN(3) == 0 {
			return ""
		}
		return s
	}
	t := time.Unix(rng.Int64N(253402300799), 0).UTC()
	if rng.IntN(2) == 0 {
		t = t.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
	} else if rng.IntN(4) == 0 {
		t = t.Add(time.Duration(rng.IntN(1e9)))
	}
	r := NewRecord(names[rng.IntN(len(names))], fmt.Sprintf("bucket-%d", rng.IntN(100)), randomKey(rng), t)
	if rng.IntN(4) == 0 {
		r.BucketARN = ""
	}
	r.Region = opt("eu-central-1")
	r.PrincipalID = opt("AWS:AIDA" + randomKey(rng))
	r.SourceIP = opt("192.0.2.1")
	r.RequestID = opt(fmt.Sprintf("%016X", rng.Uint64()))
	r.HostID = opt(randomKey(rng))
	r.ConfigurationID = opt(randomKey(rng))
	r.BucketOwner = opt("A3NL1KOZZKEXAMPLE")
	if rng.IntN(3) > 0 {
		r.Size = rng.Int64N(1 << 40)
	}
	r.ETag = opt(fmt.Sprintf("%032x", rng.Uint64()))
	r.VersionID = opt(randomKey(rng))
	r.Sequencer = opt(FormatSequencer(rng.Uint64()))
	return r
}

// checkRoundTrip asserts that Parse(MarshalEvent(records)) returns records, with RawKey
// EncodeKey(Key), Kind KindOf(EventName) and an empty BucketARN derived from the bucket.
func checkRoundTrip(t testing.TB, records []Record) []byte {
	t.Helper()
	b, err := MarshalEvent(records)
	if err != nil {
		t.Fatalf("MarshalEvent: %v", err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(MarshalEvent) = %v\nbody %s", err, b)
	}
	if m.Envelope != EnvelopeRaw || m.TestEvent || len(m.Records) != len(records) {
		t.Fatalf("Parse(MarshalEvent) = %+v", m)
	}
	for i, want := range records {
		want.EventName = strings.TrimPrefix(want.EventName, "s3:")
		want.Kind = KindOf(want.EventName)
		want.RawKey = EncodeKey(want.Key)
		if want.BucketARN == "" {
			want.BucketARN = "arn:aws:s3:::" + want.Bucket
		}
		if d := recordDiff(m.Records[i], want); d != "" {
			t.Fatalf("record %d: field %s differs\n got %+v\nwant %+v\nbody %s", i, d, m.Records[i], want, b)
		}
	}
	return b
}

func TestMarshalParseRoundTripProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		recs := make([]Record, 1+rng.IntN(4))
		for i := range recs {
			recs[i] = randomRecord(rng)
		}
		checkRoundTrip(t, recs)
	}
}
