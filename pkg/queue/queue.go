// Package queue is the portable core of a message source: the message every queue and
// subscription presents, the small interface a driver implements (receive a batch, extend
// leases, delete and release in batches, read the depth), and what the pipeline builds on it
// once for every driver: batched deletes (Deleter) and leases kept while messages are in
// work (Keeper). It imports no cloud SDK.
//
// Drivers: sqsqueue (Amazon SQS), pubsubqueue (a Google Cloud Pub/Sub subscription and
// topic), memqueue (in memory, for fast tests of the stages built on it). queuetest is the
// one conformance suite every driver runs, each case where the driver's service can do it.
package queue

import (
	"context"
	"errors"
	"strings"
	"time"

	"imgpipe/pkg/failure"
)

// Attribute data types (SQS's names; Pub/Sub attributes are all DataString).
const (
	DataString = "String"
	DataNumber = "Number"
	DataBinary = "Binary"
)

// Attr is one message attribute with its data type. String holds the value of String and
// Number attributes (and custom types such as "String.json"); Binary that of Binary ones.
type Attr struct {
	DataType string
	String   string
	Binary   []byte
}

// StringAttr is a String attribute.
func StringAttr(v string) Attr { return Attr{DataType: DataString, String: v} }

// Message is one message as every source presents it.
type Message struct {
	ID         string
	Body       []byte
	Attributes map[string]Attr
	// ReceiveCount is how many times the message was received, this time included (SQS
	// ApproximateReceiveCount; Pub/Sub's delivery attempt, counted only on a subscription
	// with a dead-letter policy; 0: unknown).
	ReceiveCount int
	SentAt       time.Time // when it was sent (SQS SentTimestamp, Pub/Sub publish time)
	// FirstReceivedAt is when it was first received (SQS ApproximateFirstReceiveTimestamp;
	// zero: unknown).
	FirstReceivedAt time.Time
	// OrderingKey is the Pub/Sub ordering key; empty for SQS.
	OrderingKey string
	// Handle is the source's lease on the message (an SQS receipt handle, a Pub/Sub ack ID).
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

// Failure returns the failure details the message carries (failure.Details, as the analyzer
// and the indexer write them when they dead-letter it); zero fields when it carries none, as
// a message moved by a queue's redrive policy.
func (m *Message) Failure() failure.Details { return failure.ParseDetails(m.StringAttributes()) }

// FailedAt is the time a message's age is measured from: its last recorded failure, else when
// it was sent.
func (m *Message) FailedAt() time.Time {
	if f := m.Failure(); !f.LastFailure.IsZero() {
		return f.LastFailure
	}
	return m.SentAt
}

// Depth is a source's approximate depth (in JSON as the console's API shows it).
type Depth struct {
	Visible    int `json:"visible"`  // waiting to be received
	NotVisible int `json:"inFlight"` // received and leased, not deleted yet
	Delayed    int `json:"delayed"`  // sent, not deliverable yet
}

// ErrNoDepth is what Depth wraps on a source whose service has no depth call (Pub/Sub): a
// caller that can do without (a status page) tells it apart with errors.Is.
var ErrNoDepth = errors.New("the service tells no queue depth")

// Source is what a driver implements: a queue (or subscription) that leases messages to
// whoever receives them. Every method that takes messages takes at most MaxBatch of them (or
// the driver's own BatchSize, see Batcher) and answers one error per message (nil: done); an
// error is classified with pkg/failure (permanent when the same call can never succeed).
type Source interface {
	// Receive leases up to max messages (1..BatchSize) for hold, so that no other receive
	// sees them until they are released, deleted or the hold ends. It may wait for messages
	// (a long poll, as long as the driver is set to) and returns none, and no error, when
	// there are none. A poll whose ctx ends may still have leased messages on the service's
	// side: callers that stop receiving let a poll run to its end rather than cancel it.
	Receive(ctx context.Context, max int, hold time.Duration) ([]*Message, error)
	// Extend sets the leases of msgs to hold from now: kept longer while in work, or given
	// back after hold (a message to be retried later).
	Extend(ctx context.Context, msgs []*Message, hold time.Duration) []error
	// Release makes leased messages receivable again at once. A lease that already ran out
	// is not an error.
	Release(ctx context.Context, msgs []*Message) []error
	// Delete removes leased messages for good.
	Delete(ctx context.Context, msgs []*Message) []error
	// Depth reads the source's approximate depth. A source whose service tells no depth
	// (Pub/Sub) answers an error wrapping ErrNoDepth, classified permanent.
	Depth(ctx context.Context) (Depth, error)
	// Name names the source in logs and in the failure details of a dead-lettered message
	// (the queue's URL).
	Name() string
}

// Sink is where messages are sent: a queue or a topic.
type Sink interface {
	// Send sends up to MaxBatch messages (body and attributes). The result has one entry per
	// message: nil when the service confirmed it stored the message.
	Send(ctx context.Context, msgs []*Message) []error
}

// MaxBatch is the most messages one call takes (SQS's limit for every batch call), unless the
// driver declares more (Batcher).
const MaxBatch = 10

// Batcher is implemented by a source whose calls take more than MaxBatch messages (Pub/Sub:
// a Pull returns up to 1,000, an Acknowledge or ModifyAckDeadline takes thousands of ack
// IDs). BatchSize is the most messages each of its calls takes, Receive included; the Keeper
// and the Deleter send batches that large, and a stage may receive that many at once.
type Batcher interface {
	BatchSize() int
}

// BatchSize is the most messages one call of src takes: its Batcher's BatchSize when it
// declares more than MaxBatch, else MaxBatch.
func BatchSize(src Source) int {
	if b, ok := src.(Batcher); ok && b.BatchSize() > MaxBatch {
		return b.BatchSize()
	}
	return MaxBatch
}

// MaxAttributes is how many message attributes SQS takes on one message.
const MaxAttributes = 10

// expendable are the attributes that give way, in this order, when a message would carry more
// than a queue takes: the trace's baggage and tracestate (traceparent alone continues the
// trace), then the replay time, the error text and the first failure's time. The reason,
// class, attempts, last failure, source queue and replay count always stay.
var expendable = []string{"baggage", "tracestate", failure.AttrReplayedAt, failure.AttrError, failure.AttrFirstFailure}

// Trim removes attributes from attrs until at most limit remain (limit <= 0: no limit), the
// expendable ones only, in their order, and returns the names it removed. It is the one rule
// the analyzer's dead letters and dlq-replay's replays follow; attrs may still exceed limit
// when the others alone do.
func Trim(attrs map[string]Attr, limit int) []string {
	var dropped []string
	for _, name := range expendable {
		if limit <= 0 || len(attrs) <= limit {
			break
		}
		if _, ok := attrs[name]; ok {
			delete(attrs, name)
			dropped = append(dropped, name)
		}
	}
	return dropped
}

// HoldChecker is implemented by sources that take only some lease durations (SQS: whole
// seconds from 1 s to 12 h). CheckHold says why a hold cannot be given as it is.
type HoldChecker interface {
	CheckHold(hold time.Duration) error
}

// CheckHold checks hold against what src takes: positive, and what its HoldChecker allows.
func CheckHold(src Source, hold time.Duration) error {
	if hold <= 0 {
		return errors.New("must be positive")
	}
	if c, ok := src.(HoldChecker); ok {
		return c.CheckHold(hold)
	}
	return nil
}

// Batches calls f with consecutive pieces of msgs of at most MaxBatch messages and gathers
// the results, one per message.
func Batches(msgs []*Message, f func(batch []*Message) []error) []error {
	return BatchesOf(MaxBatch, msgs, f)
}

// BatchesOf is Batches with pieces of at most size messages (BatchSize of the source the
// calls go to).
func BatchesOf(size int, msgs []*Message, f func(batch []*Message) []error) []error {
	size = max(size, 1)
	out := make([]error, 0, len(msgs))
	for start := 0; start < len(msgs); start += size {
		batch := msgs[start:min(start+size, len(msgs))]
		res := f(batch)
		for i := range batch {
			var err error
			if i < len(res) {
				err = res[i]
			}
			out = append(out, err)
		}
	}
	return out
}

// Each returns errs with err in every one of n places (a whole batch call failed).
func Each(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
