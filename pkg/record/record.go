// Package record defines the analysis record the analyzer publishes and the indexer stores: what the
// pipeline saw in one S3 object, or that the object was removed.
//
// The record is versioned: SchemaVersion is set on every record and carried as a Pub/Sub
// attribute, so a consumer can refuse (dead-letter) a version it does not know instead of
// misreading it.
package record

import (
	"encoding/json"
	"fmt"
	"time"

	"imgpipe/pkg/failure"
)

// SchemaVersion is the version of Analysis this code writes.
const SchemaVersion = 1

// Event says what happened to the object.
type Event string

const (
	Created Event = "created"
	Removed Event = "removed"
)

// Tag is one label with the model's confidence in [0, 1].
type Tag struct {
	Name       string  `json:"name" firestore:"name"`
	Confidence float64 `json:"confidence" firestore:"confidence"`
}

// Analysis is one analysis result (Event Created) or one removal (Event Removed).
type Analysis struct {
	SchemaVersion int    `json:"schemaVersion" firestore:"schemaVersion"`
	Event         Event  `json:"event" firestore:"event"`
	Bucket        string `json:"bucket" firestore:"bucket"`
	Key           string `json:"key" firestore:"key"`
	VersionID     string `json:"versionId,omitempty" firestore:"versionId,omitempty"`
	ETag          string `json:"etag,omitempty" firestore:"etag,omitempty"`
	// Sequencer is the S3 event's sequencer: per key, a greater value is a later event.
	Sequencer string    `json:"sequencer,omitempty" firestore:"sequencer,omitempty"`
	EventTime time.Time `json:"eventTime" firestore:"eventTime"`

	// Set for Created only.
	Size              int64     `json:"size,omitempty" firestore:"size,omitempty"`
	ContentType       string    `json:"contentType,omitempty" firestore:"contentType,omitempty"`
	Format            string    `json:"format,omitempty" firestore:"format,omitempty"`
	Width             int       `json:"width,omitempty" firestore:"width,omitempty"`
	Height            int       `json:"height,omitempty" firestore:"height,omitempty"`
	Tags              []Tag     `json:"tags,omitempty" firestore:"tags,omitempty"`
	Caption           string    `json:"caption,omitempty" firestore:"caption,omitempty"`
	CaptionConfidence float64   `json:"captionConfidence,omitempty" firestore:"captionConfidence,omitempty"`
	ModelVersion      string    `json:"modelVersion,omitempty" firestore:"modelVersion,omitempty"`
	APIVersion        string    `json:"apiVersion,omitempty" firestore:"apiVersion,omitempty"`
	AnalyzedAt        time.Time `json:"analyzedAt,omitempty" firestore:"analyzedAt,omitempty"`
}

// Reasons of the permanent errors this package reports.
const (
	ReasonMalformedRecord    = "MalformedRecord"
	ReasonUnsupportedVersion = "UnsupportedSchemaVersion"
)

// Validate checks the fields every consumer relies on.
func (r *Analysis) Validate() error {
	switch {
	case r.SchemaVersion != SchemaVersion:
		return failure.Permanentf(ReasonUnsupportedVersion, "schema version %d, this build reads %d", r.SchemaVersion, SchemaVersion)
	case r.Event != Created && r.Event != Removed:
		return failure.Permanentf(ReasonMalformedRecord, "unknown event %q", r.Event)
	case r.Bucket == "":
		return failure.Permanentf(ReasonMalformedRecord, "missing bucket")
	case r.Key == "":
		return failure.Permanentf(ReasonMalformedRecord, "missing key")
	}
	return nil
}

// Marshal encodes r as JSON after validating it.
func Marshal(r *Analysis) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// Unmarshal decodes and validates a record. Every error it returns is permanent: the same
// bytes can never decode differently.
func Unmarshal(b []byte) (*Analysis, error) {
	var r Analysis
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, failure.New(failure.Permanent, ReasonMalformedRecord, fmt.Errorf("decode analysis record: %w", err))
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Pub/Sub attribute names carried with every published record.
const (
	AttrBucket        = "bucket"
	AttrKey           = "key"
	AttrEvent         = "event"
	AttrSchemaVersion = "schemaVersion"
	AttrSequencer     = "sequencer"
)

// Attributes returns the Pub/Sub attributes of r.
func (r *Analysis) Attributes() map[string]string {
	a := map[string]string{
		AttrBucket:        r.Bucket,
		AttrKey:           r.Key,
		AttrEvent:         string(r.Event),
		AttrSchemaVersion: fmt.Sprint(r.SchemaVersion),
	}
	if r.Sequencer != "" {
		a[AttrSequencer] = r.Sequencer
	}
	return a
}

// OrderingKey is the Pub/Sub ordering key of r: one per object, so events for one object are
// delivered in publish order. Ordering keys are limited to 1 KiB; S3 keys are too, plus the
// bucket name, so long ones are cut to a prefix and a hash (ordering per key is then shared
// by keys with a common 1000-byte prefix, which only serialises them).
func (r *Analysis) OrderingKey() string {
	k := r.Bucket + "/" + r.Key
	if len(k) <= 1024 {
		return k
	}
	return k[:1000] + "#" + shortHash(k)
}
