// Package sqsdlq is dlq-replay's SQS edge: an SQS dead-letter queue as a replay.Source, SQS
// queues as a replay.Sink, the discovery of a DLQ's source queues, and SQS's native redrive
// (StartMessageMoveTask).
package sqsdlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/dlq-replay/replay"
	"imgpipe/pkg/failure"
)

// Options configures a Queue. A nil *Options means the defaults.
type Options struct {
	// Wait is the long-poll wait of each receive; the queue counts as empty after one empty
	// receive (a long poll asks every server, unlike a short poll). 0 means 1s; SQS takes
	// whole seconds from 1 to 20, so a part of a second counts as a whole one (never 0: a
	// short poll) and more than 20s as 20s.
	Wait time.Duration
}

// MaxHold is the longest lease (visibility timeout) SQS grants.
const MaxHold = 12 * time.Hour

// Queue is an SQS queue used as a replay.Source (the DLQ) or a replay.Sink (a source queue).
type Queue struct {
	client *sqs.Client
	url    string
	wait   int32
}

// New returns the queue at url.
func New(client *sqs.Client, url string, opts *Options) *Queue {
	w := time.Second
	if opts != nil && opts.Wait > 0 {
		w = min(opts.Wait, 20*time.Second)
	}
	return &Queue{client: client, url: url, wait: int32((w + time.Second - 1) / time.Second)}
}

// URL returns the queue's URL.
func (q *Queue) URL() string { return q.url }

// MaxAttributes implements replay.Source.
func (q *Queue) MaxAttributes() int { return replay.SQSMaxAttributes }

// ApproximateSize implements replay.Sizer: ApproximateNumberOfMessages, what a receive can
// get (not counting messages in flight or delayed).
func (q *Queue) ApproximateSize(ctx context.Context) (int, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &q.url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		return 0, classify(fmt.Errorf("size of %s: %w", q.url, err))
	}
	n, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	return n, nil
}

// leaseSeconds returns hold as the visibility timeout SQS takes: whole seconds from 1 to 12 h.
// Anything else is refused, not rounded: a lease shorter than asked can run out under a
// batch.
func leaseSeconds(hold time.Duration) (int32, error) {
	secs, err := replay.Seconds(hold, time.Second, MaxHold)
	if err != nil {
		return 0, failure.New(failure.Permanent, "InvalidHold", fmt.Errorf("SQS lease: %w", err))
	}
	return secs, nil
}

// Receive implements replay.Source.
func (q *Queue) Receive(ctx context.Context, n int, hold time.Duration) ([]*replay.Message, error) {
	secs, err := leaseSeconds(hold)
	if err != nil {
		return nil, err
	}
	out, err := q.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:              &q.url,
		MaxNumberOfMessages:   int32(min(max(n, 1), 10)),
		VisibilityTimeout:     secs,
		WaitTimeSeconds:       q.wait,
		MessageAttributeNames: []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp,
		},
	}, func(o *sqs.Options) {
		// No silent SDK retry: a receive whose answer was lost on the way (the connection
		// closed under it) leaves its batch invisible for the hold, and the caller must know;
		// the pass retries and counts it (replay.Pass.FailedReceives).
		o.RetryMaxAttempts = 1
	})
	if err != nil {
		return nil, classify(fmt.Errorf("receive from %s: %w", q.url, err))
	}
	msgs := make([]*replay.Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		rm := &replay.Message{ID: aws.ToString(m.MessageId), Body: []byte(aws.ToString(m.Body)), Handle: aws.ToString(m.ReceiptHandle)}
		rm.ReceiveCount, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
			rm.SentAt = time.UnixMilli(ms).UTC()
		}
		if len(m.MessageAttributes) > 0 {
			rm.Attributes = make(map[string]replay.Attr, len(m.MessageAttributes))
			for k, a := range m.MessageAttributes {
				rm.Attributes[k] = replay.Attr{DataType: aws.ToString(a.DataType), String: aws.ToString(a.StringValue), Binary: a.BinaryValue}
			}
		}
		msgs = append(msgs, rm)
	}
	return msgs, nil
}

// Release implements replay.Source: visibility timeout 0. A message whose lease already ran
// out is visible already, as asked: SQS answers MessageNotInflight for it (fauxqs
// ReceiptHandleIsInvalid), which Release does not count as a failure.
func (q *Queue) Release(ctx context.Context, msgs []*replay.Message) error {
	return q.visibility(ctx, msgs, 0, "release", true)
}

// Extend implements replay.Source: the visibility timeout set to hold from now.
func (q *Queue) Extend(ctx context.Context, msgs []*replay.Message, hold time.Duration) error {
	secs, err := leaseSeconds(hold)
	if err != nil {
		return err
	}
	return q.visibility(ctx, msgs, secs, "extend", false)
}

func (q *Queue) visibility(ctx context.Context, msgs []*replay.Message, secs int32, what string, lapsedOK bool) error {
	var errs []error
	for chunk := range chunks(msgs) {
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(m.Handle), VisibilityTimeout: secs}
		}
		out, err := q.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			errs = append(errs, classify(fmt.Errorf("%s on %s: %w", what, q.url, err)))
			continue
		}
		for _, f := range out.Failed {
			if code := aws.ToString(f.Code); lapsedOK && (strings.HasSuffix(code, "MessageNotInflight") || strings.HasSuffix(code, "ReceiptHandleIsInvalid")) {
				continue
			}
			id := aws.ToString(f.Id)
			if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < len(chunk) {
				id = chunk[i].ID
			}
			errs = append(errs, fmt.Errorf("%s %s: %s: %s", what, id, aws.ToString(f.Code), aws.ToString(f.Message)))
		}
	}
	return errors.Join(errs...)
}

// Delete implements replay.Source. A batch call that fails as a whole is retried one message
// at a time, so that one bad entry cannot hold back the others.
func (q *Queue) Delete(ctx context.Context, msgs []*replay.Message) []error {
	res := make([]error, len(msgs))
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(m.Handle)}
	}
	for start := 0; start < len(entries); start += 10 {
		end := min(start+10, len(entries))
		out, err := q.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: &q.url, Entries: entries[start:end]})
		if err != nil {
			for i := start; i < end; i++ {
				_, e := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &q.url, ReceiptHandle: aws.String(msgs[i].Handle)})
				if e != nil {
					res[i] = classify(fmt.Errorf("delete %s: %w", msgs[i].ID, e))
				}
			}
			continue
		}
		for _, f := range out.Failed {
			if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i >= 0 && i < len(res) {
				res[i] = fmt.Errorf("delete %s: %s: %s", msgs[i].ID, aws.ToString(f.Code), aws.ToString(f.Message))
			}
		}
	}
	return res
}

// Send implements replay.Sink, with SendMessageBatch. A batch call that fails as a whole (a
// batch over the size limit, say) is retried one message at a time.
func (q *Queue) Send(ctx context.Context, msgs []*replay.Message) []error {
	res := make([]error, len(msgs))
	for start := 0; start < len(msgs); start += 10 {
		end := min(start+10, len(msgs))
		entries := make([]types.SendMessageBatchRequestEntry, 0, end-start)
		for i := start; i < end; i++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(msgs[i].Body)), MessageAttributes: toSQS(msgs[i].Attributes),
			})
		}
		if end-start == 1 {
			res[start] = q.sendOne(ctx, msgs[start])
			continue
		}
		out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &q.url, Entries: entries})
		if err != nil {
			for i := start; i < end; i++ {
				res[i] = q.sendOne(ctx, msgs[i])
			}
			continue
		}
		ok := make(map[string]bool, len(out.Successful))
		for _, s := range out.Successful {
			ok[aws.ToString(s.Id)] = true
		}
		failed := map[string]string{}
		for _, f := range out.Failed {
			failed[aws.ToString(f.Id)] = aws.ToString(f.Code) + ": " + aws.ToString(f.Message)
		}
		for i := start; i < end; i++ {
			id := strconv.Itoa(i)
			switch {
			case ok[id]:
			case failed[id] != "":
				res[i] = fmt.Errorf("send %s to %s: %s", msgs[i].ID, q.url, failed[id])
			default: // neither confirmed nor refused: not confirmed, so not sent
				res[i] = fmt.Errorf("send %s to %s: no result in the batch response", msgs[i].ID, q.url)
			}
		}
	}
	return res
}

func (q *Queue) sendOne(ctx context.Context, m *replay.Message) error {
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &q.url, MessageBody: aws.String(string(m.Body)), MessageAttributes: toSQS(m.Attributes)})
	if err != nil {
		return classify(fmt.Errorf("send %s to %s: %w", m.ID, q.url, err))
	}
	return nil
}

func toSQS(attrs map[string]replay.Attr) map[string]types.MessageAttributeValue {
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

func chunks(msgs []*replay.Message) func(func([]*replay.Message) bool) {
	return func(yield func([]*replay.Message) bool) {
		for len(msgs) > 0 {
			n := min(10, len(msgs))
			if !yield(msgs[:n]) {
				return
			}
			msgs = msgs[n:]
		}
	}
}

// Router is the replay.Sink of an SQS DLQ: each message goes back to its own source queue.
// The destination is To when set; otherwise the single source queue found from the redrive
// configuration; otherwise the message's imgpipe.source-queue attribute. A message with no
// destination fails and stays in the DLQ.
type Router struct {
	client *sqs.Client
	opts   *Options
	// To is the fixed destination queue URL, when given or discovered.
	To string
}

// NewRouter returns a Router sending to to ("" to route by each message's attribute).
func NewRouter(client *sqs.Client, to string, opts *Options) *Router {
	return &Router{client: client, opts: opts, To: to}
}

// Send implements replay.Sink.
func (r *Router) Send(ctx context.Context, msgs []*replay.Message) []error {
	res := make([]error, len(msgs))
	groups := map[string][]int{}
	var order []string
	for i, m := range msgs {
		dest := r.To
		if dest == "" {
			dest = m.StringAttributes()[failure.AttrSourceQueue]
		}
		if dest == "" {
			res[i] = failure.Permanentf("NoDestination", "message %s: no destination (give --to; the DLQ has no source queue and the message no %s)", m.ID, failure.AttrSourceQueue)
			continue
		}
		if _, ok := groups[dest]; !ok {
			order = append(order, dest)
		}
		groups[dest] = append(groups[dest], i)
	}
	for _, dest := range order {
		idx := groups[dest]
		url, err := r.queueURL(ctx, dest)
		if err != nil {
			for _, i := range idx {
				res[i] = err
			}
			continue
		}
		batch := make([]*replay.Message, len(idx))
		for j, i := range idx {
			batch[j] = msgs[i]
		}
		for j, e := range New(r.client, url, r.opts).Send(ctx, batch) {
			res[idx[j]] = e
		}
	}
	return res
}

// queueURL accepts a queue URL or a queue name (as imgpipe.source-queue may carry).
func (r *Router) queueURL(ctx context.Context, dest string) (string, error) {
	if strings.HasPrefix(dest, "http://") || strings.HasPrefix(dest, "https://") {
		return dest, nil
	}
	out, err := r.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(dest)})
	if err != nil {
		return "", classify(fmt.Errorf("queue url of %s: %w", dest, err))
	}
	return aws.ToString(out.QueueUrl), nil
}

// ARN returns the queue's ARN.
func ARN(ctx context.Context, client *sqs.Client, url string) (string, error) {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", classify(fmt.Errorf("arn of %s: %w", url, err))
	}
	return out.Attributes[string(types.QueueAttributeNameQueueArn)], nil
}

// SourceQueues returns the URLs of the queues whose redrive policy names the DLQ at dlqURL:
// ListDeadLetterSourceQueues where the service has it, otherwise every queue's RedrivePolicy
// (some SQS stand-ins lack ListDeadLetterSourceQueues).
func SourceQueues(ctx context.Context, client *sqs.Client, dlqURL string) ([]string, error) {
	var urls []string
	listed := true
	p := sqs.NewListDeadLetterSourceQueuesPaginator(client, &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: &dlqURL})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			listed = false
			break
		}
		urls = append(urls, out.QueueUrls...)
	}
	if listed {
		return urls, nil
	}
	urls = nil
	arn, err := ARN(ctx, client, dlqURL)
	if err != nil {
		return nil, err
	}
	lp := sqs.NewListQueuesPaginator(client, &sqs.ListQueuesInput{})
	for lp.HasMorePages() {
		out, err := lp.NextPage(ctx)
		if err != nil {
			return nil, classify(fmt.Errorf("list queues: %w", err))
		}
		for _, u := range out.QueueUrls {
			ga, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
				QueueUrl: aws.String(u), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy},
			})
			if err != nil {
				continue // a queue deleted meanwhile, or one we may not read
			}
			var rp struct {
				DeadLetterTargetArn string `json:"deadLetterTargetArn"`
			}
			if json.Unmarshal([]byte(ga.Attributes[string(types.QueueAttributeNameRedrivePolicy)]), &rp) == nil && rp.DeadLetterTargetArn == arn {
				urls = append(urls, u)
			}
		}
	}
	return urls, nil
}

// Depth returns the queue's approximate visible and in-flight message counts.
func Depth(ctx context.Context, client *sqs.Client, url string) (visible, inFlight int, err error) {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return 0, 0, classify(fmt.Errorf("depth of %s: %w", url, err))
	}
	visible, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	inFlight, _ = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, inFlight, nil
}

// MoveTask is one of SQS's native redrive tasks.
type MoveTask struct {
	Handle      string    `json:"task_handle,omitempty"`
	Status      string    `json:"status"`
	Source      string    `json:"source_arn"`
	Destination string    `json:"destination_arn,omitempty"`
	Moved       int64     `json:"moved"`
	ToMove      int64     `json:"to_move,omitempty"`
	Rate        int32     `json:"max_per_second,omitempty"`
	Started     time.Time `json:"started,omitzero"`
	Failure     string    `json:"failure,omitempty"`
}

// StartMove starts a native redrive of every message of the DLQ dlqARN to destARN ("" means
// each message's original source queue), at most perSecond messages a second (0: SQS's
// default). It returns the task handle.
func StartMove(ctx context.Context, client *sqs.Client, dlqARN, destARN string, perSecond int) (string, error) {
	in := &sqs.StartMessageMoveTaskInput{SourceArn: &dlqARN}
	if destARN != "" {
		in.DestinationArn = &destARN
	}
	if perSecond > 0 {
		in.MaxNumberOfMessagesPerSecond = aws.Int32(int32(perSecond))
	}
	out, err := client.StartMessageMoveTask(ctx, in)
	if err != nil {
		return "", classify(fmt.Errorf("start message move task from %s: %w", dlqARN, err))
	}
	return aws.ToString(out.TaskHandle), nil
}

// ListMoves lists the native redrive tasks of the DLQ dlqARN, newest first.
func ListMoves(ctx context.Context, client *sqs.Client, dlqARN string) ([]MoveTask, error) {
	out, err := client.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &dlqARN, MaxResults: aws.Int32(10)})
	if err != nil {
		return nil, classify(fmt.Errorf("list message move tasks of %s: %w", dlqARN, err))
	}
	tasks := make([]MoveTask, 0, len(out.Results))
	for _, r := range out.Results {
		t := MoveTask{
			Handle: aws.ToString(r.TaskHandle), Status: aws.ToString(r.Status), Source: aws.ToString(r.SourceArn),
			Destination: aws.ToString(r.DestinationArn), Moved: r.ApproximateNumberOfMessagesMoved,
			Rate: aws.ToInt32(r.MaxNumberOfMessagesPerSecond), Failure: aws.ToString(r.FailureReason),
		}
		if r.ApproximateNumberOfMessagesToMove != nil {
			t.ToMove = *r.ApproximateNumberOfMessagesToMove
		}
		if r.StartedTimestamp > 0 {
			t.Started = time.UnixMilli(r.StartedTimestamp).UTC()
		}
		tasks = append(tasks, t)
	}
	return tasks, nil
}

// CancelMove cancels a running native redrive task and returns how many messages it moved.
func CancelMove(ctx context.Context, client *sqs.Client, handle string) (int64, error) {
	out, err := client.CancelMessageMoveTask(ctx, &sqs.CancelMessageMoveTaskInput{TaskHandle: &handle})
	if err != nil {
		return 0, classify(fmt.Errorf("cancel message move task: %w", err))
	}
	return out.ApproximateNumberOfMessagesMoved, nil
}

// classify marks errors that retrying cannot fix as permanent; the rest stay transient (the
// SDK already retried them).
func classify(err error) error {
	var (
		notFound *types.QueueDoesNotExist
		tooLong  *types.BatchRequestTooLong
		invalid  *types.InvalidAttributeValue
	)
	switch {
	case errors.As(err, &notFound):
		return failure.New(failure.Permanent, "QueueDoesNotExist", err)
	case errors.As(err, &tooLong):
		return failure.New(failure.Permanent, "BatchRequestTooLong", err)
	case errors.As(err, &invalid):
		return failure.New(failure.Permanent, "InvalidAttributeValue", err)
	}
	return err
}
