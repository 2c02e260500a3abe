// Package sqsdlq is dlq-replay's SQS edge: an SQS dead-letter queue as a replay.Source and SQS
// queues as a replay.Sink (both the pipeline's SQS driver, pkg/queue/sqsqueue), the routing of
// replayed messages to their source queues, the discovery of a DLQ's source queues, and SQS's
// native redrive (StartMessageMoveTask). Errors are classified by the AWS table
// (pkg/failure/awserr).
package sqsdlq

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/dlq-replay/replay"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/failure/awserr"
	"imgpipe/pkg/queue/sqsqueue"
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
const MaxHold = sqsqueue.MaxHold

// Queue is an SQS queue used as a replay.Source (the DLQ) or a replay.Sink (a source queue):
// the pipeline's SQS driver (pkg/queue/sqsqueue), with dlq-replay's long-poll wait.
type Queue struct {
	*sqsqueue.Queue
}

// New returns the queue at url.
func New(client *sqs.Client, url string, opts *Options) *Queue {
	w := time.Second
	if opts != nil && opts.Wait > 0 {
		w = min(opts.Wait, sqsqueue.MaxWait)
	}
	w = (w + time.Second - 1).Truncate(time.Second) // a part of a second counts as a whole one
	q, err := sqsqueue.New(client, url, &sqsqueue.Options{Wait: w})
	if err != nil {
		// The wait is whole seconds from 1 to 20 by construction.
		panic("sqsdlq: " + err.Error())
	}
	return &Queue{q}
}

// URL returns the queue's URL.
func (q *Queue) URL() string { return q.Name() }

// ApproximateSize implements replay.Sizer: ApproximateNumberOfMessages, what a receive can
// get (not counting messages in flight or delayed).
func (q *Queue) ApproximateSize(ctx context.Context) (int, error) {
	d, err := q.Depth(ctx)
	return d.Visible, err
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
		return "", awserr.Classify(fmt.Errorf("queue url of %s: %w", dest, err))
	}
	return aws.ToString(out.QueueUrl), nil
}

// ARN returns the queue's ARN.
func ARN(ctx context.Context, client *sqs.Client, url string) (string, error) {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", awserr.Classify(fmt.Errorf("arn of %s: %w", url, err))
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
			return nil, awserr.Classify(fmt.Errorf("list queues: %w", err))
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
		return "", awserr.Classify(fmt.Errorf("start message move task from %s: %w", dlqARN, err))
	}
	return aws.ToString(out.TaskHandle), nil
}

// ListMoves lists the native redrive tasks of the DLQ dlqARN, newest first.
func ListMoves(ctx context.Context, client *sqs.Client, dlqARN string) ([]MoveTask, error) {
	out, err := client.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &dlqARN, MaxResults: aws.Int32(10)})
	if err != nil {
		return nil, awserr.Classify(fmt.Errorf("list message move tasks of %s: %w", dlqARN, err))
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
		return 0, awserr.Classify(fmt.Errorf("cancel message move task: %w", err))
	}
	return out.ApproximateNumberOfMessagesMoved, nil
}
