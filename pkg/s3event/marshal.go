package s3event

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"imgpipe/pkg/failure"
)

// MarshalEventVersion is the eventVersion MarshalEvent writes.
const MarshalEventVersion = "2.1"

// NewRecord returns a Record for an event on bucket/key at time t, with the fields every
// record needs filled in: EventName (without an "s3:" prefix), Kind, EventTime (UTC), Bucket,
// BucketARN ("arn:aws:s3:::" + bucket), Key and RawKey (EncodeKey(key)). The caller sets the
// rest (Region, Size, ETag, VersionID, Sequencer, ConfigurationID, RequestID, ...).
func NewRecord(eventName, bucket, key string, t time.Time) Record {
	name := strings.TrimPrefix(eventName, "s3:")
	return Record{
		EventName: name,
		Kind:      KindOf(name),
		EventTime: t.UTC(),
		Bucket:    bucket,
		BucketARN: bucketARN(bucket),
		Key:       key,
		RawKey:    EncodeKey(key),
	}
}

func bucketARN(bucket string) string { return "arn:aws:s3:::" + bucket }

// MarshalEvent returns the SQS body S3 would send for records: {"Records":[...]} in AWS's
// shape and field order, with eventVersion "2.1", eventSource "aws:s3", eventTime as
// "2006-01-02T15:04:05.000Z" (a time with sub-millisecond precision, which S3 never produces,
// keeps all nine digits so that it round-trips), eventName without "s3:", userIdentity,
// requestParameters, responseElements, and s3 with s3SchemaVersion "1.0", configurationId,
// bucket{name, ownerIdentity, arn} and object{key, size, eTag, versionId, sequencer}.
//
// The key is always EncodeKey(r.Key); RawKey and Kind are ignored. An empty BucketARN becomes
// "arn:aws:s3:::" + Bucket. Like S3, size and eTag are written for ObjectCreated events and
// omitted for others when zero/empty; versionId and sequencer are omitted when empty. Empty
// identity fields are written as empty strings (no value is invented).
//
// MarshalEvent refuses what Parse would reject (no records, an empty EventName, Bucket or
// Key, a negative Size, a non-hex Sequencer, a string that is not UTF-8, a year outside
// 0-9999), so Parse(MarshalEvent(records)) always succeeds and returns the same records.
func MarshalEvent(records []Record) ([]byte, error) {
	if len(records) == 0 {
		return nil, malformed("marshal event: no records")
	}
	ev := wireEvent{Records: make([]wireRecord, len(records))}
	for i := range records {
		w, err := toWire(&records[i])
		if err != nil {
			return nil, fmt.Errorf("marshal event: record %d: %w", i, err)
		}
		ev.Records[i] = w
	}
	return marshalJSON(ev)
}

func toWire(r *Record) (wireRecord, error) {
	name := strings.TrimPrefix(r.EventName, "s3:")
	switch {
	case name == "":
		return wireRecord{}, malformed("empty EventName")
	case r.Bucket == "":
		return wireRecord{}, malformed("empty Bucket")
	case r.Key == "":
		return wireRecord{}, malformed("empty Key")
	case r.Size < 0:
		return wireRecord{}, malformed("negative Size %d", r.Size)
	}
	for _, f := range []struct{ name, v string }{
		{"EventName", r.EventName}, {"Region", r.Region}, {"PrincipalID", r.PrincipalID},
		{"SourceIP", r.SourceIP}, {"RequestID", r.RequestID}, {"HostID", r.HostID},
		{"ConfigurationID", r.ConfigurationID}, {"Bucket", r.Bucket},
		{"BucketOwner", r.BucketOwner}, {"BucketARN", r.BucketARN}, {"ETag", r.ETag},
		{"VersionID", r.VersionID},
	} {
		if !utf8.ValidString(f.v) {
			return wireRecord{}, malformed("%s is not valid UTF-8", f.name)
		}
	}
	if !utf8.ValidString(r.Key) {
		return wireRecord{}, failure.Permanentf(ReasonBadKeyEncoding, "key %q is not valid UTF-8", r.Key)
	}
	if r.Sequencer != "" {
		if err := checkHex(r.Sequencer); err != nil {
			return wireRecord{}, err
		}
	}
	t, err := formatTime(r.EventTime)
	if err != nil {
		return wireRecord{}, malformed("EventTime: %w", err)
	}
	arn := r.BucketARN
	if arn == "" {
		arn = bucketARN(r.Bucket)
	}
	obj := wireObject{Key: EncodeKey(r.Key), VersionID: r.VersionID, Sequencer: r.Sequencer}
	if KindOf(name) == Created || r.Size != 0 {
		size := r.Size
		obj.Size = &size
	}
	if KindOf(name) == Created || r.ETag != "" {
		etag := r.ETag
		obj.ETag = &etag
	}
	return wireRecord{
		EventVersion:      MarshalEventVersion,
		EventSource:       EventSource,
		AWSRegion:         r.Region,
		EventTime:         t,
		EventName:         name,
		UserIdentity:      wirePrincipal{PrincipalID: r.PrincipalID},
		RequestParameters: wireRequestParameters{SourceIPAddress: r.SourceIP},
		ResponseElements:  wireResponseElements{RequestID: r.RequestID, HostID: r.HostID},
		S3: wireS3{
			SchemaVersion:   "1.0",
			ConfigurationID: r.ConfigurationID,
			Bucket: wireBucket{
				Name:          r.Bucket,
				OwnerIdentity: wirePrincipal{PrincipalID: r.BucketOwner},
				ARN:           arn,
			},
			Object: obj,
		},
	}, nil
}

// MarshalTestEvent returns the s3:TestEvent message S3 sends to a destination when a
// notification configuration is set on bucket at time t. Its RequestId and HostId are
// derived from bucket and t, so the output is deterministic.
func MarshalTestEvent(bucket string, t time.Time) ([]byte, error) {
	ts, err := formatTime(t)
	if err != nil {
		return nil, malformed("marshal test event: %w", err)
	}
	sum := sha256.Sum256([]byte(bucket + "\x00" + ts))
	return marshalJSON(wireTestEvent{
		Service:   "Amazon S3",
		Event:     TestEventName,
		Time:      ts,
		Bucket:    bucket,
		RequestID: fmt.Sprintf("%016X", sum[:8]),
		HostID:    base64.StdEncoding.EncodeToString(sum[8:]),
	})
}

// WrapSNS returns message (an S3 event or test event body) as SNS delivers it to an SQS
// queue with raw message delivery off: a Notification envelope whose Message is the body as a
// JSON string. The envelope carries no signature (Parse does not verify one).
func WrapSNS(message []byte, topicARN, messageID string, t time.Time) ([]byte, error) {
	if !utf8.Valid(message) {
		return nil, malformed("wrap SNS: message is not valid UTF-8")
	}
	ts, err := formatTime(t)
	if err != nil {
		return nil, malformed("wrap SNS: %w", err)
	}
	return marshalJSON(wireSNS{
		Type:      "Notification",
		MessageID: messageID,
		TopicARN:  topicARN,
		Subject:   "Amazon S3 Notification",
		Message:   string(message),
		Timestamp: ts,
	})
}

// marshalJSON encodes v compactly without HTML escaping, as AWS writes JSON.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
