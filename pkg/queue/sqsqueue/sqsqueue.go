// Package sqsqueue is the Amazon SQS driver of pkg/queue: an SQS queue as a queue.Source
// (receive with a long poll, visibility timeouts as leases, batched deletes and visibility
// changes, depth from the queue's attributes) and as a queue.Sink. Every error it returns is
// classified with the AWS table (pkg/failure/awserr).
//
// Who retries what: ReceiveMessage is made without the SDK's own retries (a receive whose
// answer was lost on the way leaves its batch invisible until the lease ends, and that must
// reach the caller, who retries and counts it); every other call keeps the SDK's retryer as
// the client was built with (awsclient: 5 attempts), and the caller decides about what still
// fails.
package sqsqueue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/pkg/config"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/failure/awserr"
	"imgpipe/pkg/queue"
)

// SQS's limits.
const (
	// MaxHold is the longest lease (visibility timeout) SQS grants.
	MaxHold = 12 * time.Hour
	// MaxWait is the longest long-poll wait SQS takes.
	MaxWait = 20 * time.Second
	// MaxAttributes is how many message attributes SQS takes on one message.
	MaxAttributes = queue.MaxAttributes
)

// Options configures a Queue. A nil *Options means the defaults.
type Options struct {
	// Wait is the long-poll wait of each receive, whole seconds up to MaxWait; 0 means
	// MaxWait, a negative value none (short polling).
	Wait time.Duration
}

// Queue is an SQS queue. It is safe for concurrent use.
type Queue struct {
	client *sqs.Client
	url    string
	wait   int32
}

// New returns the queue at url. It fails on a wait SQS does not take.
func New(client *sqs.Client, url string, opts *Options) (*Queue, error) {
	w := MaxWait
	if opts != nil && opts.Wait != 0 {
		w = max(opts.Wait, 0)
	}
	if err := config.Seconds(w, 0, MaxWait); err != nil {
		return nil, fmt.Errorf("sqs long-poll wait: %w", err)
	}
	return &Queue{client: client, url: url, wait: int32(w / time.Second)}, nil
}

// Name implements queue.Source: the queue's URL.
func (q *Queue) Name() string { return q.url }

// MaxAttributes is how many attributes one message may carry.
func (q *Queue) MaxAttributes() int { return MaxAttributes }

// CheckHold implements queue.HoldChecker: SQS takes whole seconds from 1 s to 12 h.
func (q *Queue) CheckHold(hold time.Duration) error {
	return config.Seconds(hold, time.Second, MaxHold)
}

// seconds is d as a visibility timeout: whole seconds, rounded up (a lease shorter than asked
// could end under its holder), at most MaxHold.
func seconds(d time.Duration) int32 {
	d = min(max(d, 0), MaxHold)
	return int32((d + time.Second - 1) / time.Second)
}

// Receive implements queue.Source. A hold SQS cannot grant as asked (CheckHold) is refused
// with the permanent reason InvalidHold, before anything is received: rounded, it could end
// under its holder.
func (q *Queue) Receive(ctx context.Context, n int, hold time.Duration) ([]*queue.Message, error) {
	if err := q.CheckHold(hold); err != nil {
		return nil, failure.New(failure.Permanent, ReasonInvalidHold, fmt.Errorf("receive from %s: lease %v: %w", q.url, hold, err))
	}
	out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:              &q.url,
		MaxNumberOfMessages:   int32(min(max(n, 1), queue.MaxBatch)),
		VisibilityTimeout:     seconds(hold),
		WaitTimeSeconds:       q.wait,
		MessageAttributeNames: []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
			types.MessageSystemAttributeNameApproximateFirstReceiveTimestamp,
		},
	}, func(o *sqs.Options) {
		// No silent SDK retry: see the package documentation.
		o.RetryMaxAttempts = 1
	})
	if err != nil {
		return nil, awserr.Classify(fmt.Errorf("receive from %s: %w", q.url, err))
	}
	msgs := make([]*queue.Message, len(out.Messages))
	for i := range out.Messages {
		msgs[i] = fromSQS(&out.Messages[i])
	}
	return msgs, nil
}

func fromSQS(m *types.Message) *queue.Message {
	out := &queue.Message{ID: aws.ToString(m.MessageId), Body: []byte(aws.ToString(m.Body)), Handle: aws.ToString(m.ReceiptHandle)}
	out.ReceiveCount, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	out.SentAt = millis(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)])
	out.FirstReceivedAt = millis(m.Attributes[string(types.MessageSystemAttributeNameApproximateFirstReceiveTimestamp)])
	if len(m.MessageAttributes) > 0 {
		out.Attributes = make(map[string]queue.Attr, len(m.MessageAttributes))
		for k, a := range m.MessageAttributes {
			out.Attributes[k] = queue.Attr{DataType: aws.ToString(a.DataType), String: aws.ToString(a.StringValue), Binary: a.BinaryValue}
		}
	}
	return out
}

// millis reads an epoch-milliseconds attribute; zero when absent or unreadable.
func millis(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// ReasonInvalidHold is the reason of a receive asked for a lease SQS cannot grant as asked.
const ReasonInvalidHold = "InvalidHold"

// Extend implements queue.Source: the visibility timeout set to hold from now, in whole
// seconds rounded up and at most MaxHold (a message given back for later comes back no later
// than SQS allows).
func (q *Queue) Extend(ctx context.Context, msgs []*queue.Message, hold time.Duration) []error {
	return q.visibility(ctx, msgs, seconds(hold), "extend", false)
}

// Release implements queue.Source: visibility timeout 0. A message whose lease already ran
// out is visible already, as asked: SQS answers MessageNotInflight for it (fauxqs
// ReceiptHandleIsInvalid), which is not a failure here.
func (q *Queue) Release(ctx context.Context, msgs []*queue.Message) []error {
	return q.visibility(ctx, msgs, 0, "release", true)
}

// visibility changes the visibility of msgs, one ChangeMessageVisibility for a single
// message and ChangeMessageVisibilityBatch for more.
func (q *Queue) visibility(ctx context.Context, msgs []*queue.Message, secs int32, what string, lapsedOK bool) []error {
	return queue.Batches(msgs, func(batch []*queue.Message) []error {
		if len(batch) == 1 {
			_, err := q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
				QueueUrl: &q.url, ReceiptHandle: aws.String(batch[0].Handle), VisibilityTimeout: secs,
			})
			if err != nil && !(lapsedOK && lapsed(awserr.Code(err))) {
				return []error{awserr.Classify(fmt.Errorf("%s %s on %s: %w", what, batch[0].ID, q.url, err))}
			}
			return []error{nil}
		}
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(batch))
		for i, m := range batch {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(m.Handle), VisibilityTimeout: secs}
		}
		out, err := q.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			return queue.Each(len(batch), awserr.Classify(fmt.Errorf("%s on %s: %w", what, q.url, err)))
		}
		ok := make([]*string, len(out.Successful))
		for i, e := range out.Successful {
			ok[i] = e.Id
		}
		return visibilityAnswer(what, q.url, batch, ok, out.Failed, lapsedOK)
	})
}

// visibilityAnswer maps a visibility batch answer onto its entries by batchAnswer's rule (an
// entry the answer names in neither list is a transient NoBatchResult, not done), except that
// an entry refused because its message is no longer leased is done when lapsedOK.
func visibilityAnswer(what, url string, batch []*queue.Message, ok []*string, failed []types.BatchResultErrorEntry, lapsedOK bool) []error {
	res := batchAnswer(what, url, batch, ok, failed)
	if lapsedOK {
		for _, f := range failed {
			if i, in := entryIndex(f.Id, len(batch)); in && lapsed(aws.ToString(f.Code)) {
				res[i] = nil
			}
		}
	}
	return res
}

// lapsed reports whether code says the message was no longer leased.
func lapsed(code string) bool {
	return strings.HasSuffix(code, "MessageNotInflight") || strings.HasSuffix(code, "ReceiptHandleIsInvalid")
}

// Delete implements queue.Source with DeleteMessageBatch. An entry the batch answer neither
// confirms nor refuses counts as not deleted (the Deleter tries it again).
func (q *Queue) Delete(ctx context.Context, msgs []*queue.Message) []error {
	return queue.Batches(msgs, func(batch []*queue.Message) []error {
		entries := make([]types.DeleteMessageBatchRequestEntry, len(batch))
		for i, m := range batch {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(m.Handle)}
		}
		out, err := q.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			err = awserr.Classify(fmt.Errorf("delete on %s: %w", q.url, err))
			if failure.IsPermanent(err) {
				// The batch was refused as a whole: one entry must not hold back the others.
				return q.each(batch, func(m *queue.Message) error {
					_, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &q.url, ReceiptHandle: aws.String(m.Handle)})
					if err != nil {
						return awserr.Classify(fmt.Errorf("delete %s on %s: %w", m.ID, q.url, err))
					}
					return nil
				})
			}
			return queue.Each(len(batch), err)
		}
		ok := make([]*string, len(out.Successful))
		for i, e := range out.Successful {
			ok[i] = e.Id
		}
		return batchAnswer("delete", q.url, batch, ok, out.Failed)
	})
}

// Send implements queue.Sink: SendMessage for a single message, SendMessageBatch for more. An
// entry the batch answer neither confirms nor refuses counts as not sent. A batch refused as a
// whole (over SQS's size limit, say) is sent again one message at a time.
func (q *Queue) Send(ctx context.Context, msgs []*queue.Message) []error {
	return queue.Batches(msgs, func(batch []*queue.Message) []error {
		if len(batch) == 1 {
			return []error{q.sendOne(ctx, batch[0])}
		}
		entries := make([]types.SendMessageBatchRequestEntry, len(batch))
		for i, m := range batch {
			entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(m.Body)), MessageAttributes: toSQS(m.Attributes)}
		}
		out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			err = awserr.Classify(fmt.Errorf("send to %s: %w", q.url, err))
			if failure.IsPermanent(err) {
				return q.each(batch, func(m *queue.Message) error { return q.sendOne(ctx, m) })
			}
			return queue.Each(len(batch), err)
		}
		ok := make([]*string, len(out.Successful))
		for i, e := range out.Successful {
			ok[i] = e.Id
		}
		return batchAnswer("send", q.url, batch, ok, out.Failed)
	})
}

func (q *Queue) sendOne(ctx context.Context, m *queue.Message) error {
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &q.url, MessageBody: aws.String(string(m.Body)), MessageAttributes: toSQS(m.Attributes)})
	if err != nil {
		return awserr.Classify(fmt.Errorf("send %s to %s: %w", m.ID, q.url, err))
	}
	return nil
}

// each calls f for every message of batch, one result each.
func (q *Queue) each(batch []*queue.Message, f func(m *queue.Message) error) []error {
	res := make([]error, len(batch))
	for i, m := range batch {
		res[i] = f(m)
	}
	return res
}

func toSQS(attrs map[string]queue.Attr) map[string]types.MessageAttributeValue {
	if len(attrs) == 0 {
		return nil
	}
	out := make(map[string]types.MessageAttributeValue, len(attrs))
	for k, a := range attrs {
		v := types.MessageAttributeValue{DataType: aws.String(a.DataType)}
		if a.Binary != nil {
			v.BinaryValue = a.Binary
		} else {
			v.StringValue = aws.String(a.String)
		}
		out[k] = v
	}
	return out
}

// batchAnswer maps a batch answer onto its entries (what names the request: "send",
// "delete", or a visibility change's "extend" or "release"): nil for an entry the answer
// confirms (its ID in ok), the entry's classified error for one it refuses, and a transient
// NoBatchResult for one it names in neither, so that the caller tries it again rather than
// counting it done.
func batchAnswer(what, url string, batch []*queue.Message, ok []*string, failed []types.BatchResultErrorEntry) []error {
	res := make([]error, len(batch))
	confirmed := make([]bool, len(batch))
	for _, id := range ok {
		if i, in := entryIndex(id, len(batch)); in {
			confirmed[i] = true
		}
	}
	for _, f := range failed {
		if i, in := entryIndex(f.Id, len(batch)); in {
			confirmed[i] = true
			res[i] = entryError(what, batch[i], f)
		}
	}
	for i, c := range confirmed {
		if !c {
			res[i] = failure.Transientf("NoBatchResult", "%s %s on %s: no result in the batch answer", what, batch[i].ID, url)
		}
	}
	return res
}

// entryIndex reads a batch entry ID (the index of its message in the batch); false for one
// that is no index of a batch of n.
func entryIndex(id *string, n int) (int, bool) {
	i, err := strconv.Atoi(aws.ToString(id))
	return i, err == nil && i >= 0 && i < n
}

// entryError classifies the failure of one batch entry by the AWS table. An unknown code the
// service blames on the sender cannot succeed when sent again: permanent.
func entryError(what string, m *queue.Message, f types.BatchResultErrorEntry) error {
	code := aws.ToString(f.Code)
	v := awserr.Lookup(code, 0)
	if _, known := awserr.Codes[code]; !known && f.SenderFault {
		v.Class = failure.Permanent
	}
	return v.Wrap(fmt.Errorf("%s %s: %s: %s", what, m.ID, code, aws.ToString(f.Message)))
}

// Depth implements queue.Source from the queue's approximate attributes.
func (q *Queue) Depth(ctx context.Context) (queue.Depth, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &q.url,
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return queue.Depth{}, awserr.Classify(fmt.Errorf("queue depth of %s: %w", q.url, err))
	}
	num := func(n types.QueueAttributeName) int {
		v, _ := strconv.Atoi(out.Attributes[string(n)])
		return v
	}
	return queue.Depth{
		Visible:    num(types.QueueAttributeNameApproximateNumberOfMessages),
		NotVisible: num(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:    num(types.QueueAttributeNameApproximateNumberOfMessagesDelayed),
	}, nil
}
