// Package s3event parses and produces the bodies of SQS messages that carry Amazon S3 event
// notifications, as the analyzer receives them and as the project's S3 stand-in emits them.
//
// A body is one of:
//
//   - a raw S3 event: {"Records":[...]} (the S3 notification sent straight to SQS, or through
//     SNS with raw message delivery on);
//   - the s3:TestEvent message S3 sends when a notification configuration is set;
//   - an SNS notification envelope ({"Type":"Notification", ..., "Message":"<JSON string>"})
//     whose Message is one of the two above (SNS with raw message delivery off).
//
// EventBridge-shaped bodies are not supported and are reported as a permanent
// ReasonUnsupportedEnvelope error. SNS signatures are not verified: the queue policy decides who
// may send to the queue.
//
// Every error Parse returns is classified with imgpipe/pkg/failure as Permanent, with one of the
// Reason* constants of this package: a body that does not parse today never will.
//
// The package imports no cloud SDK.
package s3event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"imgpipe/pkg/failure"
)

// Reasons attached to the permanent errors of this package. They are stable: DLQ attributes,
// metrics and replay filters use them.
const (
	// ReasonMalformedEvent: the body is not JSON, not an object, has no (or an empty)
	// Records array, or a record lacks a required field or has a field of the wrong type.
	ReasonMalformedEvent = "MalformedEvent"
	// ReasonBadKeyEncoding: s3.object.key is not valid form encoding (a bad percent escape)
	// or decodes to invalid UTF-8.
	ReasonBadKeyEncoding = "BadKeyEncoding"
	// ReasonBadSequencer: s3.object.sequencer is present but is not a hexadecimal string.
	ReasonBadSequencer = "BadSequencer"
	// ReasonUnsupportedEnvelope: the body is an EventBridge event, an SNS message other than a
	// Notification (for example a SubscriptionConfirmation), or an SNS envelope nested in
	// another one.
	ReasonUnsupportedEnvelope = "UnsupportedEnvelope"
	// ReasonUnsupportedEventSource: a record's eventSource is not "aws:s3".
	ReasonUnsupportedEventSource = "UnsupportedEventSource"
	// ReasonUnsupportedEventVersion: a record's eventVersion is not of major version 2
	// (S3 has sent 2.1 to 2.6 so far; all of them are read).
	ReasonUnsupportedEventVersion = "UnsupportedEventVersion"
)

// EventSource is the eventSource of every S3 event record.
const EventSource = "aws:s3"

// TestEventName is the Event field of the message S3 sends to check a new destination.
const TestEventName = "s3:TestEvent"

// Envelope says how the S3 event reached the queue.
type Envelope int

const (
	// EnvelopeRaw is an S3 event (or test event) as the body itself.
	EnvelopeRaw Envelope = iota + 1
	// EnvelopeSNS is an S3 event (or test event) in the Message of an SNS notification.
	EnvelopeSNS
)

// String returns "raw" or "sns".
func (e Envelope) String() string {
	switch e {
	case EnvelopeRaw:
		return "raw"
	case EnvelopeSNS:
		return "sns"
	default:
		return fmt.Sprintf("envelope(%d)", int(e))
	}
}

// Kind is what an event means for the index.
type Kind int

const (
	// Other is any event that is neither a creation nor a removal (ObjectRestore:*,
	// Replication:*, ObjectTagging:*, ObjectAcl:Put, LifecycleTransition, IntelligentTiering,
	// ...). Parse returns such records without error so that the caller skips them
	// deliberately. It is the zero value, so a Record built without a Kind triggers no action.
	Other Kind = iota
	// Created is ObjectCreated:* (Put, Post, Copy, CompleteMultipartUpload, ...).
	Created
	// Removed is ObjectRemoved:* (Delete, DeleteMarkerCreated), LifecycleExpiration:Delete and
	// LifecycleExpiration:DeleteMarkerCreated. In an unversioned bucket, and for a delete
	// marker, the object is no longer readable under its key afterwards; the permanent deletion
	// of one version of a versioned object (see Record.RemovesVersion) may leave the key with a
	// current version.
	Removed
)

// String returns "created", "removed" or "other".
func (k Kind) String() string {
	switch k {
	case Created:
		return "created"
	case Removed:
		return "removed"
	case Other:
		return "other"
	default:
		return fmt.Sprintf("kind(%d)", int(k))
	}
}

// KindOf classifies an event name, with or without the "s3:" prefix used in notification
// configurations.
func KindOf(eventName string) Kind {
	name := strings.TrimPrefix(eventName, "s3:")
	family, _, ok := strings.Cut(name, ":")
	if !ok {
		return Other
	}
	switch family {
	case "ObjectCreated":
		return Created
	case "ObjectRemoved":
		return Removed
	}
	switch name {
	case "LifecycleExpiration:Delete", "LifecycleExpiration:DeleteMarkerCreated":
		return Removed
	}
	return Other
}

// NullVersionID is the version ID S3 gives an object written while its bucket's versioning
// was suspended, or before it was first enabled: the "null" version. A later write while
// versioning is suspended replaces it, so it names no fixed content.
const NullVersionID = "null"

// RemovesVersion reports whether r is the permanent deletion of one version of an object in
// a versioned bucket: ObjectRemoved:Delete (DELETE with a version ID) or
// LifecycleExpiration:Delete (a noncurrent version expired) with a version ID. Unlike a delete
// marker or a removal in an unversioned bucket, it may leave the key with a current version:
// the version deleted may have been noncurrent, or the previous version became current again.
func (r *Record) RemovesVersion() bool {
	if r.VersionID == "" {
		return false
	}
	switch r.EventName {
	case "ObjectRemoved:Delete", "LifecycleExpiration:Delete":
		return true
	}
	return false
}

// ExpiresVersion reports whether r is S3 Lifecycle's permanent deletion of one version
// (LifecycleExpiration:Delete with a version ID). Lifecycle never deletes the current version of
// an object in a versioned bucket (its expiration adds a delete marker instead), so such an
// event never changes what the key reads as.
func (r *Record) ExpiresVersion() bool {
	return r.VersionID != "" && r.EventName == "LifecycleExpiration:Delete"
}

// Message is one parsed SQS message body.
type Message struct {
	// Envelope is how the event reached the queue.
	Envelope Envelope
	// SNSMessageID and SNSTopicARN are set for EnvelopeSNS.
	SNSMessageID string
	SNSTopicARN  string

	// TestEvent is true for the s3:TestEvent message; Records is then empty.
	TestEvent bool
	// TestBucket and TestTime are the Bucket and Time of a test event. TestTime is zero when
	// the test event's Time is missing or does not parse: a test event is never an error.
	TestBucket string
	TestTime   time.Time

	// Records holds every record of the message, in message order. It is never empty when
	// TestEvent is false.
	Records []Record
}

// Record is one S3 event record.
type Record struct {
	// EventName is the event type without the "s3:" prefix, for example "ObjectCreated:Put".
	EventName string
	// Kind is KindOf(EventName).
	Kind Kind
	// EventTime is when S3 finished processing the request, in UTC.
	EventTime time.Time
	// Region is awsRegion.
	Region string
	// PrincipalID is userIdentity.principalId: who caused the event.
	PrincipalID string
	// SourceIP is requestParameters.sourceIPAddress.
	SourceIP string
	// RequestID and HostID are responseElements x-amz-request-id and x-amz-id-2.
	RequestID string
	HostID    string
	// ConfigurationID is s3.configurationId: the ID of the notification configuration.
	ConfigurationID string
	// Bucket, BucketOwner and BucketARN are s3.bucket name, ownerIdentity.principalId and arn.
	Bucket      string
	BucketOwner string
	BucketARN   string
	// Key is the decoded object key, usable in S3 API calls.
	Key string
	// RawKey is s3.object.key as received (form-encoded). It is informational: MarshalEvent
	// always encodes Key with EncodeKey and ignores RawKey.
	RawKey string
	// Size is the object size in bytes; zero when absent (S3 omits it for removals).
	Size int64
	// ETag is s3.object.eTag, as sent (S3 sends it without quotes).
	ETag string
	// VersionID is s3.object.versionId; empty for unversioned buckets, NullVersionID for the
	// null version of a versioned one.
	VersionID string
	// Sequencer orders events for the same key (see CompareSequencer); empty when absent.
	Sequencer string
}

// Position returns the ordering information of r (see ComparePosition).
func (r *Record) Position() Position {
	return Position{Sequencer: r.Sequencer, EventTime: r.EventTime}
}

// Wire types, in the field order AWS uses.

type wireEvent struct {
	Records []wireRecord `json:"Records"`
}

type wirePrincipal struct {
	PrincipalID string `json:"principalId"`
}

type wireRequestParameters struct {
	SourceIPAddress string `json:"sourceIPAddress"`
}

type wireResponseElements struct {
	RequestID string `json:"x-amz-request-id"`
	HostID    string `json:"x-amz-id-2"`
}

type wireBucket struct {
	Name          string        `json:"name"`
	OwnerIdentity wirePrincipal `json:"ownerIdentity"`
	ARN           string        `json:"arn"`
}

type wireObject struct {
	Key       string  `json:"key"`
	Size      *int64  `json:"size,omitempty"`
	ETag      *string `json:"eTag,omitempty"`
	VersionID string  `json:"versionId,omitempty"`
	Sequencer string  `json:"sequencer,omitempty"`
}

type wireS3 struct {
	SchemaVersion   string     `json:"s3SchemaVersion"`
	ConfigurationID string     `json:"configurationId"`
	Bucket          wireBucket `json:"bucket"`
	Object          wireObject `json:"object"`
}

type wireRecord struct {
	EventVersion      string                `json:"eventVersion"`
	EventSource       string                `json:"eventSource"`
	AWSRegion         string                `json:"awsRegion"`
	EventTime         string                `json:"eventTime"`
	EventName         string                `json:"eventName"`
	UserIdentity      wirePrincipal         `json:"userIdentity"`
	RequestParameters wireRequestParameters `json:"requestParameters"`
	ResponseElements  wireResponseElements  `json:"responseElements"`
	S3                wireS3                `json:"s3"`
}

type wireTestEvent struct {
	Service   string `json:"Service"`
	Event     string `json:"Event"`
	Time      string `json:"Time"`
	Bucket    string `json:"Bucket"`
	RequestID string `json:"RequestId"`
	HostID    string `json:"HostId"`
}

type wireSNS struct {
	Type      string `json:"Type"`
	MessageID string `json:"MessageId"`
	TopicARN  string `json:"TopicArn"`
	Subject   string `json:"Subject,omitempty"`
	Message   string `json:"Message"`
	Timestamp string `json:"Timestamp"`
}

// Parse parses an SQS message body carrying S3 event notifications (raw or SNS-wrapped, or
// the s3:TestEvent message). Every error it returns is failure.Permanent with one of the
// Reason* constants.
//
// Parse accepts what S3 sends and rejects the rest rather than guess: all records of the
// message must be valid, or the whole message is rejected (the DLQ entry keeps the whole body,
// so a replay after a fix recovers every record). An empty Records array, which S3 never
// sends, is ReasonMalformedEvent: it points at a broken producer, and acknowledging it
// silently would hide that. An "s3:" prefix on eventName is removed.
func Parse(body []byte) (*Message, error) {
	return parse(body, true)
}

func parse(body []byte, allowSNS bool) (*Message, error) {
	// The usual body, a raw S3 event, in one decode. Anything else, a failed decode included,
	// takes the general path below, so that what is accepted, and every error, stay as they
	// were.
	var fast fastEvent
	if json.Unmarshal(body, &fast) == nil && fast.Records != nil && !fast.OtherCase {
		recs, err := fromWireRecords(fast.Records)
		if err != nil {
			return nil, err
		}
		return &Message{Envelope: EnvelopeRaw, Records: recs}, nil
	}
	return parseGeneral(body, allowSNS)
}

// parseGeneral finds what the body is by its top-level keys, then decodes it as that.
func parseGeneral(body []byte, allowSNS bool) (*Message, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, malformed("decode body: %w", err)
	}
	if top == nil {
		return nil, malformed("body is null")
	}
	switch {
	case has(top, "Records"):
		recs, err := parseRecords(body)
		if err != nil {
			return nil, err
		}
		return &Message{Envelope: EnvelopeRaw, Records: recs}, nil
	case has(top, "Event") && isString(top["Event"], TestEventName):
		return parseTestEvent(body), nil
	case has(top, "Type") && has(top, "Message"):
		if !allowSNS {
			return nil, failure.Permanentf(ReasonUnsupportedEnvelope, "SNS envelope nested in an SNS message")
		}
		return parseSNS(body)
	case has(top, "detail-type") || has(top, "detail"):
		return nil, failure.Permanentf(ReasonUnsupportedEnvelope, "EventBridge event: not supported")
	}
	return nil, malformed("no Records, not a test event, not an SNS notification")
}

func has(m map[string]json.RawMessage, k string) bool {
	v, ok := m[k]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

func isString(raw json.RawMessage, want string) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil && s == want
}

func malformed(format string, args ...any) error {
	return failure.Permanentf(ReasonMalformedEvent, format, args...)
}

func parseTestEvent(body []byte) *Message {
	var te wireTestEvent
	// Type errors only leave fields empty: a test event is ignored anyway, and must never be
	// dead-lettered for a detail.
	_ = json.Unmarshal(body, &te)
	m := &Message{Envelope: EnvelopeRaw, TestEvent: true, TestBucket: te.Bucket}
	if t, err := parseTime(te.Time); err == nil {
		m.TestTime = t
	}
	return m
}

func parseSNS(body []byte) (*Message, error) {
	var env wireSNS
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, malformed("decode SNS envelope: %w", err)
	}
	if env.Type != "Notification" {
		return nil, failure.Permanentf(ReasonUnsupportedEnvelope, "SNS message of type %q: only Notification is supported", env.Type)
	}
	m, err := parse([]byte(env.Message), false)
	if err != nil {
		return nil, fmt.Errorf("SNS message %s: %w", env.MessageID, err)
	}
	m.Envelope = EnvelopeSNS
	m.SNSMessageID = env.MessageID
	m.SNSTopicARN = env.TopicARN
	return m, nil
}

// fastEvent is a body decoded as a raw S3 event, for parse's one-decode path. The general
// path finds the event by its exact key "Records" and then decodes the body into wireEvent,
// whose field matching also takes "records", "RECORDS" and so on (the last of them in the body
// wins). So the one-decode path takes only a body with the exact key and no other spelling of
// it: the other spellings match OtherCase, the first of the two fields, and the exact key the
// second (encoding/json prefers an exact name, and gives a folded one to the first field).
type fastEvent struct {
	OtherCase seenField    `json:"records"`
	Records   []wireRecord `json:"Records"`
}

// seenField records that its key was in the object, and decodes nothing.
type seenField bool

func (s *seenField) UnmarshalJSON([]byte) error {
	*s = true
	return nil
}

func parseRecords(body []byte) ([]Record, error) {
	var ev wireEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, malformed("decode records: %w", err)
	}
	return fromWireRecords(ev.Records)
}

func fromWireRecords(recs []wireRecord) ([]Record, error) {
	if len(recs) == 0 {
		return nil, malformed("empty Records array")
	}
	out := make([]Record, len(recs))
	for i := range recs {
		r, err := fromWire(&recs[i])
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		out[i] = r
	}
	return out, nil
}

func fromWire(w *wireRecord) (Record, error) {
	switch {
	case w.EventVersion == "":
		return Record{}, malformed("missing eventVersion")
	case w.EventVersion != "2" && !strings.HasPrefix(w.EventVersion, "2."):
		return Record{}, failure.Permanentf(ReasonUnsupportedEventVersion, "eventVersion %q", w.EventVersion)
	case w.EventSource == "":
		return Record{}, malformed("missing eventSource")
	case w.EventSource != EventSource:
		return Record{}, failure.Permanentf(ReasonUnsupportedEventSource, "eventSource %q", w.EventSource)
	case strings.TrimPrefix(w.EventName, "s3:") == "":
		return Record{}, malformed("missing eventName")
	case w.EventTime == "":
		return Record{}, malformed("missing eventTime")
	case w.S3.Bucket.Name == "":
		return Record{}, malformed("missing s3.bucket.name")
	case w.S3.Object.Key == "":
		return Record{}, malformed("missing s3.object.key")
	}
	t, err := parseTime(w.EventTime)
	if err != nil {
		return Record{}, malformed("eventTime: %w", err)
	}
	key, err := DecodeKey(w.S3.Object.Key)
	if err != nil {
		return Record{}, err
	}
	if w.S3.Object.Sequencer != "" {
		if err := checkHex(w.S3.Object.Sequencer); err != nil {
			return Record{}, err
		}
	}
	r := Record{
		EventName:       strings.TrimPrefix(w.EventName, "s3:"),
		EventTime:       t,
		Region:          w.AWSRegion,
		PrincipalID:     w.UserIdentity.PrincipalID,
		SourceIP:        w.RequestParameters.SourceIPAddress,
		RequestID:       w.ResponseElements.RequestID,
		HostID:          w.ResponseElements.HostID,
		ConfigurationID: w.S3.ConfigurationID,
		Bucket:          w.S3.Bucket.Name,
		BucketOwner:     w.S3.Bucket.OwnerIdentity.PrincipalID,
		BucketARN:       w.S3.Bucket.ARN,
		Key:             key,
		RawKey:          w.S3.Object.Key,
		VersionID:       w.S3.Object.VersionID,
		Sequencer:       w.S3.Object.Sequencer,
	}
	r.Kind = KindOf(r.EventName)
	if w.S3.Object.Size != nil {
		if *w.S3.Object.Size < 0 {
			return Record{}, malformed("negative s3.object.size %d", *w.S3.Object.Size)
		}
		r.Size = *w.S3.Object.Size
	}
	if w.S3.Object.ETag != nil {
		r.ETag = *w.S3.Object.ETag
	}
	return r, nil
}

// awsTimeLayout is how S3 writes eventTime: UTC, millisecond precision.
const awsTimeLayout = "2006-01-02T15:04:05.000Z"

// nanoTimeLayout is used instead when a time has sub-millisecond precision, which S3 never
// produces, so that such a time survives a round trip through MarshalEvent and Parse.
const nanoTimeLayout = "2006-01-02T15:04:05.000000000Z"

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("%q is outside years 0000-9999 in UTC", s)
	}
	return t, nil
}

func formatTime(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", errors.New("time year outside [0,9999]")
	}
	if t.Nanosecond()%int(time.Millisecond) == 0 {
		return t.Format(awsTimeLayout), nil
	}
	return t.Format(nanoTimeLayout), nil
}
