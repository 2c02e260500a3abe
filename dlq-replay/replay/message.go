// Package replay is the portable core of dlq-replay: the message shape every dead-letter
// source shares, the filters and decisions of a replay, the statistics of a DLQ, the JSONL
// export format, and the engine that moves messages from a Source to a Sink without ever
// deleting one whose send was not confirmed. It imports no cloud SDK.
package replay

import (
	"encoding/json"
	"path"
	"strings"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/s3event"
)

// Attribute data types (SQS's names; Pub/Sub attributes are all DataString).
const (
	DataString = queue.DataString
	DataNumber = queue.DataNumber
	DataBinary = queue.DataBinary
)

// AttrReplayedAt is set by dlq-replay on each replayed message: RFC 3339, when it was replayed
// (failure.AttrReplayedAt). The replay count itself is failure.AttrReplayCount.
const AttrReplayedAt = failure.AttrReplayedAt

// Attr is one message attribute with its data type (pkg/queue's).
type Attr = queue.Attr

// Message is one dead-lettered message as every source presents it: pkg/queue's message, so
// that dlq-replay's sources are the pipeline's queue drivers. Its failure details are
// Message.Failure; the object key it is about is Key.
type Message = queue.Message

// Key returns the object key m is about: the first record's key of an S3 event notification,
// or the "key" field of a JSON body (the pipeline's analysis records); "" when neither.
func Key(m *Message) string { return KeyOf(m.Body) }

// KeyOf returns the object key a message body is about (see Key).
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
