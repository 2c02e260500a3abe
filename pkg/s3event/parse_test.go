package s3event

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"imgpipe/pkg/failure"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UTC()
}

// putRecord is what testdata/put.json holds, field by field.
func putRecord(t testing.TB) Record {
	return Record{
		EventName:       "ObjectCreated:Put",
		Kind:            Created,
		EventTime:       mustTime(t, "2025-03-14T09:26:53.589Z"),
		Region:          "us-east-1",
		PrincipalID:     "AWS:AIDAQ3EGRXAMPLEUPLOAD",
		SourceIP:        "203.0.113.17",
		RequestID:       "8F2A41C7D93B0E55",
		HostID:          "Qm9vdHN0cmFwSG9zdElkRm9yVGVzdHMvZXhhbXBsZS9ub3QvcmVhbC8xMjM0NTY3ODkwYWJjZGVm",
		ConfigurationID: "imgpipe-upload-created",
		Bucket:          "imgpipe-drop",
		BucketOwner:     "A3NL1KOZZKEXAMPLE",
		BucketARN:       "arn:aws:s3:::imgpipe-drop",
		Key:             "upload/holiday/red flower.jpg",
		RawKey:          "upload/holiday/red+flower.jpg",
		Size:            1048576,
		ETag:            "0123456789abcdef0123456789abcdef",
		Sequencer:       "0065F3C1DD8A2B4F1C",
	}
}

// recordDiff returns the name of the first field where a and b differ, or "".
func recordDiff(a, b Record) string {
	switch {
	case a.EventName != b.EventName:
		return "EventName"
	case a.Kind != b.Kind:
		return "Kind"
	case !a.EventTime.Equal(b.EventTime):
		return "EventTime"
	case a.Region != b.Region:
		return "Region"
	case a.PrincipalID != b.PrincipalID:
		return "PrincipalID"
	case a.SourceIP != b.SourceIP:
		return "SourceIP"
	case a.RequestID != b.RequestID:
		return "RequestID"
	case a.HostID != b.HostID:
		return "HostID"
	case a.ConfigurationID != b.ConfigurationID:
		return "ConfigurationID"
	case a.Bucket != b.Bucket:
		return "Bucket"
	case a.BucketOwner != b.BucketOwner:
		return "BucketOwner"
	case a.BucketARN != b.BucketARN:
		return "BucketARN"
	case a.Key != b.Key:
		return "Key"
	case a.RawKey != b.RawKey:
		return "RawKey"
	case a.Size != b.Size:
		return "Size"
	case a.ETag != b.ETag:
		return "ETag"
	case a.VersionID != b.VersionID:
		return "VersionID"
	case a.Sequencer != b.Sequencer:
		return "Sequencer"
	}
	return ""
}

func TestParsePutFullRecord(t *testing.T) {
	m, err := Parse(readFixture(t, "put.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Envelope != EnvelopeRaw || m.TestEvent || m.SNSMessageID != "" || len(m.Records) != 1 {
		t.Fatalf("message = %+v", m)
	}
	if d := recordDiff(m.Records[0], putRecord(t)); d != "" {
		t.Fatalf("field %s differs: got %+v", d, m.Records[0])
	}
}

func TestParseFixtures(t *testing.T) {
	type want struct {
		name, key, version, sequencer, etag string
		kind                                Kind
		size                                int64
		time                                string
	}
	tests := []struct {
		file     string
		envelope Envelope
		snsID    string
		records  []want
	}{
		{"put.json", EnvelopeRaw, "", []want{{"ObjectCreated:Put", "upload/holiday/red flower.jpg", "", "0065F3C1DD8A2B4F1C", "0123456789abcdef0123456789abcdef", Created, 1048576, "2025-03-14T09:26:53.589Z"}}},
		{"multipart.json", EnvelopeRaw, "", []want{{"ObjectCreated:CompleteMultipartUpload", "upload/scans/large-panorama.tiff", "", "0065F3CA73005C6D3E", "d41d8cd98f00b204e9800998ecf8427e-27", Created, 219152384, "2025-03-14T10:02:11.007Z"}}},
		{"copy.json", EnvelopeRaw, "", []want{{"ObjectCreated:Copy", "upload/copies/cat.png", "", "0065F3D0800000000A", "9b2cf535f27731c974343645a3985328", Created, 53211, "2025-03-15T00:00:00Z"}}},
		{"post.json", EnvelopeRaw, "", []want{{"ObjectCreated:Post", "upload/form/avatar.webp", "", "0065F4020211223344", "5d41402abc4b2a76b9719d911017c592", Created, 2048, "2025-03-15T08:15:30.25Z"}}},
		{"delete.json", EnvelopeRaw, "", []want{{"ObjectRemoved:Delete", "upload/holiday/red flower.jpg", "", "0065F5A9F0C1D2E3F4", "", Removed, 0, "2025-03-16T12:00:00.123Z"}}},
		{"delete_marker.json", EnvelopeRaw, "", []want{{"ObjectRemoved:DeleteMarkerCreated", "upload/dog.jpg", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", "0065F5B07D00000001", "", Removed, 0, "2025-03-16T12:30:45Z"}}},
		{"versioned.json", EnvelopeRaw, "", []want{{"ObjectCreated:Put", "upload/dog.jpg", "Zk6b7qR2s.PB3tYQx_9GhVwXo8LmNcD1", "0065F5A9EFFFFFFFFF", "e4d909c290d0fb1ca068ffaddf22cbd0", Created, 77001, "2025-03-16T11:59:59.999Z"}}},
		{"lifecycle_expiration.json", EnvelopeRaw, "", []want{
			{"LifecycleExpiration:Delete", "upload/old/2019 summer.jpg", "", "0066000000ABCDEF01", "", Removed, 0, "2025-04-01T00:07:12.41Z"},
			{"LifecycleExpiration:DeleteMarkerCreated", "upload/dog.jpg", "nGjB4bq0Ue2tQ7xWlY8cHdK3mZpR9sVa", "0066000000ABCDEF02", "", Removed, 0, "2025-04-01T00:07:12.998Z"},
		}},
		{"version_deletes.json", EnvelopeRaw, "", []want{
			{"ObjectRemoved:Delete", "upload/dog.jpg", "Zk6b7qR2s.PB3tYQx_9GhVwXo8LmNcD1", "0065F6E2F000000001", "", Removed, 0, "2025-03-17T08:00:00.5Z"},
			{"LifecycleExpiration:Delete", "upload/dog.jpg", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", "0066010000ABCDEF03", "", Removed, 0, "2025-04-02T00:03:10.12Z"},
			{"ObjectRemoved:Delete", "upload/cat.png", NullVersionID, "0065F6E31000000002", "", Removed, 0, "2025-03-17T08:05:00Z"},
		}},
		{"restore.json", EnvelopeRaw, "", []want{{"ObjectRestore:Completed", "upload/archive/scan.tiff", "", "0066010203040506AA", "aaaabbbbccccddddeeeeffff00001111", Other, 5242880, "2025-04-02T03:04:05.6Z"}}},
		{"replication.json", EnvelopeRaw, "", []want{{"Replication:OperationFailedReplication", "upload/cat.png", "1XyZ", "0066020304050607BB", "9b2cf535f27731c974343645a3985328", Other, 53211, "2025-04-03T10:11:12.13Z"}}},
		{"multi_record.json", EnvelopeRaw, "", []want{
			{"ObjectCreated:Put", "upload/holiday/red flower.jpg", "", "0065F3C1DD8A2B4F1C", "0123456789abcdef0123456789abcdef", Created, 1048576, "2025-03-14T09:26:53.589Z"},
			{"ObjectCreated:Put", "upload/holiday/red flower.jpg", "", "0065F3C1DE00000000", "fedcba9876543210fedcba9876543210", Created, 2097152, "2025-03-14T09:26:54.001Z"},
			{"ObjectRemoved:Delete", "upload/other.png", "", "0065F5A9F0C1D2E3F4", "", Removed, 0, "2025-03-16T12:00:00.123Z"},
		}},
		{"sns_put.json", EnvelopeSNS, "c8f6a0a4-5b1d-5e2f-9a3b-4c5d6e7f8091", []want{{"ObjectCreated:Put", "upload/holiday/red flower.jpg", "", "0065F3C1DD8A2B4F1C", "0123456789abcdef0123456789abcdef", Created, 1048576, "2025-03-14T09:26:53.589Z"}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := Parse(readFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if m.Envelope != tt.envelope || m.SNSMessageID != tt.snsID || m.TestEvent {
				t.Fatalf("envelope %v, sns id %q, test %v", m.Envelope, m.SNSMessageID, m.TestEvent)
			}
			if len(m.Records) != len(tt.records) {
				t.Fatalf("%d records, want %d", len(m.Records), len(tt.records))
			}
			for i, w := range tt.records {
				r := m.Records[i]
				if r.EventName != w.name || r.Key != w.key || r.VersionID != w.version ||
					r.Sequencer != w.sequencer || r.ETag != w.etag || r.Kind != w.kind || r.Size != w.size ||
					!r.EventTime.Equal(mustTime(t, w.time)) {
					t.Errorf("record %d = %+v\nwant %+v", i, r, w)
				}
				if r.EventTime.Location() != time.UTC {
					t.Errorf("record %d: EventTime location %v, want UTC", i, r.EventTime.Location())
				}
			}
		})
	}
}

func TestParseSNSFields(t *testing.T) {
	m, err := Parse(readFixture(t, "sns_put.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.SNSTopicARN != "arn:aws:sns:us-east-1:123456789012:imgpipe-s3-events" {
		t.Errorf("topic = %q", m.SNSTopicARN)
	}
	if d := recordDiff(m.Records[0], putRecord(t)); d != "" {
		t.Errorf("SNS-wrapped record differs from the raw one in %s", d)
	}
}

func TestParseTestEvents(t *testing.T) {
	tests := []struct {
		file     string
		envelope Envelope
		snsID    string
	}{
		{"test_event.json", EnvelopeRaw, ""},
		{"sns_test_event.json", EnvelopeSNS, "1f2e3d4c-5b6a-5978-8695-a4b3c2d1e0f9"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := Parse(readFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !m.TestEvent || len(m.Records) != 0 || m.Envelope != tt.envelope || m.SNSMessageID != tt.snsID {
				t.Fatalf("message = %+v", m)
			}
			if m.TestBucket != "imgpipe-drop" || !m.TestTime.Equal(mustTime(t, "2025-03-14T09:00:00.042Z")) {
				t.Errorf("bucket %q time %v", m.TestBucket, m.TestTime)
			}
		})
	}
	// A test event with an odd Time is still a test event, never an error.
	m, err := Parse([]byte(`{"Service":"Amazon S3","Event":"s3:TestEvent","Time":42,"Bucket":"b"}`))
	if err != nil || !m.TestEvent || !m.TestTime.IsZero() {
		t.Fatalf("odd test event: %+v, %v", m, err)
	}
}

func TestParseKeys(t *testing.T) {
	want := []string{
		"upload/hello world.jpg",
		"upload/c++/a+b.png",
		"upload/100%.jpg",
		"upload/a&b=c.jpg",
		"upload/фото/日本 語.jpg",
		"upload/2025/03/14/cam-01/burst/0001/IMG (1).jpeg",
		"upload/emoji-📷.png",
		"upload/percent-like %2B literal.jpg",
		"upload/tilde~star*.jpg",
		"upload/tilde~star*.jpg",
	}
	m, err := Parse(readFixture(t, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Records) != len(want) {
		t.Fatalf("%d records, want %d", len(m.Records), len(want))
	}
	for i, k := range want {
		if m.Records[i].Key != k {
			t.Errorf("record %d: key %q, want %q (raw %q)", i, m.Records[i].Key, k, m.Records[i].RawKey)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		file   string
		reason string
	}{
		{"truncated.json", ReasonMalformedEvent},
		{"size_string.json", ReasonMalformedEvent},
		{"size_float.json", ReasonMalformedEvent},
		{"size_negative.json", ReasonMalformedEvent},
		{"empty_records.json", ReasonMalformedEvent},
		{"null_records.json", ReasonMalformedEvent},
		{"records_not_array.json", ReasonMalformedEvent},
		{"no_records.json", ReasonMalformedEvent},
		{"missing_bucket.json", ReasonMalformedEvent},
		{"missing_key.json", ReasonMalformedEvent},
		{"missing_event_name.json", ReasonMalformedEvent},
		{"missing_event_time.json", ReasonMalformedEvent},
		{"missing_s3.json", ReasonMalformedEvent},
		{"bad_time.json", ReasonMalformedEvent},
		{"key_not_string.json", ReasonMalformedEvent},
		{"second_record_bad.json", ReasonMalformedEvent},
		{"not_object.json", ReasonMalformedEvent},
		{"null.json", ReasonMalformedEvent},
		{"empty.json", ReasonMalformedEvent},
		{"sns_bad_inner.json", ReasonMalformedEvent},
		{"bad_key_escape.json", ReasonBadKeyEncoding},
		{"bad_key_escape_short.json", ReasonBadKeyEncoding},
		{"bad_key_utf8.json", ReasonBadKeyEncoding},
		{"bad_sequencer.json", ReasonBadSequencer},
		{"event_version_3.json", ReasonUnsupportedEventVersion},
		{"wrong_source.json", ReasonUnsupportedEventSource},
		{"eventbridge.json", ReasonUnsupportedEnvelope},
		{"sns_eventbridge.json", ReasonUnsupportedEnvelope},
		{"sns_nested.json", ReasonUnsupportedEnvelope},
		{"../sns_subscription_confirmation.json", ReasonUnsupportedEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := Parse(readFixture(t, filepath.Join("bad", tt.file)))
			if err == nil {
				t.Fatalf("no error; message %+v", m)
			}
			if m != nil {
				t.Errorf("message %+v returned with error", m)
			}
			var fe *failure.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *failure.Error", err)
			}
			if !failure.IsPermanent(err) || failure.ReasonOf(err) != tt.reason {
				t.Errorf("error %v: class %v reason %q, want permanent %q", err, failure.ClassOf(err), failure.ReasonOf(err), tt.reason)
			}
		})
	}
}

func TestParseEventNamePrefixAndVersions(t *testing.T) {
	tests := []struct {
		version, source, name string
		wantName              string
		wantKind              Kind
		reason                string
	}{
		{"2.1", "aws:s3", "s3:ObjectCreated:Put", "ObjectCreated:Put", Created, ""},
		{"2.2", "aws:s3", "ObjectRemoved:Delete", "ObjectRemoved:Delete", Removed, ""},
		{"2.3", "aws:s3", "ObjectTagging:Put", "ObjectTagging:Put", Other, ""},
		{"2.6", "aws:s3", "ObjectCreated:Put", "ObjectCreated:Put", Created, ""},
		{"1.0", "aws:s3", "ObjectCreated:Put", "", Other, ReasonUnsupportedEventVersion},
		{"20.1", "aws:s3", "ObjectCreated:Put", "", Other, ReasonUnsupportedEventVersion},
		{"", "aws:s3", "ObjectCreated:Put", "", Other, ReasonMalformedEvent},
		{"2.1", "", "ObjectCreated:Put", "", Other, ReasonMalformedEvent},
		{"2.1", "aws:S3", "ObjectCreated:Put", "", Other, ReasonUnsupportedEventSource},
		{"2.1", "aws:s3", "s3:", "", Other, ReasonMalformedEvent},
	}
	for _, tt := range tests {
		body := []byte(`{"Records":[{"eventVersion":"` + tt.version + `","eventSource":"` + tt.source +
			`","eventTime":"2025-01-01T00:00:00.000Z","eventName":"` + tt.name +
			`","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}`)
		m, err := Parse(body)
		if tt.reason != "" {
			if failure.ReasonOf(err) != tt.reason || !failure.IsPermanent(err) {
				t.Errorf("%s/%s/%s: err %v, want %s", tt.version, tt.source, tt.name, err, tt.reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s/%s/%s: %v", tt.version, tt.source, tt.name, err)
			continue
		}
		if r := m.Records[0]; r.EventName != tt.wantName || r.Kind != tt.wantKind {
			t.Errorf("%s: got %q %v, want %q %v", tt.name, r.EventName, r.Kind, tt.wantName, tt.wantKind)
		}
	}
}

func TestParseTimeForms(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"2025-03-14T09:26:53.589Z", "2025-03-14T09:26:53.589Z", true},
		{"2025-03-14T09:26:53Z", "2025-03-14T09:26:53Z", true},
		{"2025-03-14T10:26:53.5+01:00", "2025-03-14T09:26:53.5Z", true},
		{"2025-03-14T09:26:53.123456789Z", "2025-03-14T09:26:53.123456789Z", true},
		{"0000-01-01T00:30:00+01:00", "", false}, // year -1 in UTC
		{"2025-03-14 09:26:53Z", "", false},
		{"2025-13-01T00:00:00Z", "", false},
	}
	for _, tt := range tests {
		got, err := parseTime(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parseTime(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && !got.Equal(mustTime(t, tt.want)) {
			t.Errorf("parseTime(%q) = %v, want %s", tt.in, got, tt.want)
		}
	}
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		name string
		want Kind
	}{
		{"ObjectCreated:Put", Created},
		{"ObjectCreated:Post", Created},
		{"ObjectCreated:Copy", Created},
		{"ObjectCreated:CompleteMultipartUpload", Created},
		{"s3:ObjectCreated:Put", Created},
		{"ObjectRemoved:Delete", Removed},
		{"ObjectRemoved:DeleteMarkerCreated", Removed},
		{"LifecycleExpiration:Delete", Removed},
		{"LifecycleExpiration:DeleteMarkerCreated", Removed},
		{"s3:LifecycleExpiration:Delete", Removed},
		{"LifecycleExpiration:Other", Other},
		{"LifecycleTransition", Other},
		{"ObjectRestore:Post", Other},
		{"ObjectRestore:Completed", Other},
		{"ObjectRestore:Delete", Other},
		{"Replication:OperationFailedReplication", Other},
		{"ObjectTagging:Put", Other},
		{"ObjectAcl:Put", Other},
		{"IntelligentTiering", Other},
		{"ObjectCreated", Other},
		{"objectcreated:Put", Other},
		{"", Other},
	}
	for _, tt := range tests {
		if got := KindOf(tt.name); got != tt.want {
			t.Errorf("KindOf(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
	if Other.String() != "other" || Created.String() != "created" || Removed.String() != "removed" {
		t.Error("Kind.String")
	}
	if EnvelopeRaw.String() != "raw" || EnvelopeSNS.String() != "sns" {
		t.Error("Envelope.String")
	}
}

// TestVersionRemovals: which removals may leave a key with a current version, from AWS-shaped
// fixtures (versioned deletes, lifecycle expirations, delete markers, unversioned deletes).
func TestVersionRemovals(t *testing.T) {
	tests := []struct {
		file            string
		record          int
		removes, expiry bool
	}{
		{"version_deletes.json", 0, true, false},       // DELETE ?versionId=
		{"version_deletes.json", 1, true, true},        // lifecycle: a noncurrent version expired
		{"version_deletes.json", 2, true, false},       // DELETE ?versionId=null (suspended bucket)
		{"delete.json", 0, false, false},               // unversioned bucket
		{"delete_marker.json", 0, false, false},        // a delete marker hides the object
		{"lifecycle_expiration.json", 0, false, false}, // lifecycle, unversioned bucket
		{"lifecycle_expiration.json", 1, false, false}, // lifecycle added a delete marker
		{"versioned.json", 0, false, false},            // a creation
	}
	for _, tt := range tests {
		m, err := Parse(readFixture(t, tt.file))
		if err != nil {
			t.Fatal(err)
		}
		r := &m.Records[tt.record]
		if got := r.RemovesVersion(); got != tt.removes {
			t.Errorf("%s record %d (%s, version %q): RemovesVersion %v, want %v", tt.file, tt.record, r.EventName, r.VersionID, got, tt.removes)
		}
		if got := r.ExpiresVersion(); got != tt.expiry {
			t.Errorf("%s record %d (%s, version %q): ExpiresVersion %v, want %v", tt.file, tt.record, r.EventName, r.VersionID, got, tt.expiry)
		}
	}
}
