// Package replay is the portable core of dlq-replay: the message shape every dead-letter
// source shares, the filters and decisions of a replay, the statistics of a DLQ, the JSONL
// export format, and the engine that moves messages from a Source to a Sink without ever
// deleting one whose send was not confirmed. It imports no cloud SDK.
package replay

import (
	"encoding/json"
	"path"
	"strings"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/s3event"
)

// Attribute data types (SQS's names; Pub/Sub attributes are all DataString).
const (
	DataString = "String"
	DataNumber = "Number"
	DataBinary = "Binary"
)

// AttrReplayedAt is set by dlq-replay on each replayed message: RFC 3339, when it was replayed.
// The replay count itself is failure.AttrReplayCount.
const AttrReplayedAt = "imgpipe.replayed-at"

// Attr is one message attribute with its data type. String holds the value of String and
// Number attributes (and custom types such as "String.json"); Binary that of Binary ones.
type Attr struct {
	DataType string
	String   string
	Binary   []byte
}

// Message is one dead-lettered message as every source presents it.
type Message struct {
	ID           string
	Body         []byte
	Attributes   map[string]Attr
	ReceiveCount int       // SQS ApproximateReceiveCount; Pub/Sub delivery attempt (0: unknown)
	SentAt       time.Time // SQS SentTimestamp; Pub/Sub publish time
	OrderingKey  string    // Pub/Sub ordering key; empty for SQS
	// Handle is the source's lease on the message (SQS receipt handle, Pub/Sub ack ID).
	Handle string
}

// StringAttributes returns the attributes that carry text, as a plain map.
func (m *Message) StringAttributes() map[string]string {
	out := make(map[string]string, len(m.Attributes))
	for k, a := range m.Attributes {
		if a.DataType != DataBinary && !strings.HasPrefix(a.DataType, DataBinary+".") {
			out[k] = a.String
		}
	}
	return out
}

// Failure returns what the analyzer recorded about why m is in the DLQ (zero fields when a
// redrive policy, not the analyzer, put it there).
func (m *Message) Failure() failure.Details { return failure.ParseDetails(m.StringAttributes()) }

// Key returns the object key m is about: the first record's key of an S3 event notification,
// or the "key" field of a JSON body (the pipeline's analysis records); "" when neither.
func (m *Message) Key() string { return KeyOf(m.Body) }

// KeyOf returns the object key a message body is about (see Message.Key).
func KeyOf(body []byte) string {
	if ev, err := s3event.Parse(body); err == nil && len(ev.Records) > 0 {
		return ev.Records[0].Key
	}
	var rec struct {
		Key string `json:"key"`
	}
	if json.Unmarshal(body, &rec) == nil {
		return rec.Key
	}
	return ""
}

// FailedAt is the time a message's age is measured from: its last recorded failure, else when
// it was sent.
func (m *Message) FailedAt() time.Time {
	if f := m.Failure(); !f.LastFailure.IsZero() {
		return f.LastFailure
	}
	return m.SentAt
}

// PrefixOf returns the first depth folders of key ("upload/cats/" for "upload/cats/a.jpg" at
// depth 2); a key with fewer folders returns all of them; "" for a key without a folder.
func PrefixOf(key string, depth int) string {
	if depth <= 0 {
		return ""
	}
	dir := path.Dir(key)
	if dir == "." || dir == "/" {
		return ""
	}
	parts := strings.Split(dir, "/")
	if len(parts) > depth {
		parts = parts[:depth]
	}
	return strings.Join(parts, "/") + "/"
}
