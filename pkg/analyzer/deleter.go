package analyzer

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"go.uber.org/zap"
)

// deleter batches message deletes: a batch goes out when it holds 10 entries (the SQS
// maximum) or flushInterval after its first entry. Entries that fail are retried in the next
// batch, up to maxDeleteAttempts; a message whose delete never succeeds comes back after its
// visibility timeout and is processed again, which downstream idempotency absorbs.
type deleter struct {
	client   *sqs.Client
	queueURL string
	log      *zap.Logger
	metrics  *Metrics

	mu      sync.Mutex
	pending []deleteEntry
	wake    chan struct{}
	closed  chan struct{}
	once    sync.Once
	flushed atomicCounter
}

type deleteEntry struct {
	handle   *string
	id       string
	attempts int
}

const (
	flushInterval     = 100 * time.Millisecond
	maxDeleteAttempts = 5
	sqsBatchMax       = 10
)

func newDeleter(client *sqs.Client, queueURL string, log *zap.Logger, m *Metrics) *deleter {
	return &deleter{client: client, queueURL: queueURL, log: log, metrics: m, wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

// delete queues a message for deletion.
func (d *deleter) delete(handle *string, id string) {
	d.mu.Lock()
	d.pending = append(d.pending, deleteEntry{handle: handle, id: id})
	full := len(d.pending) >= sqsBatchMax
	d.mu.Unlock()
	if full {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// deleteGrace is how long after the drain deadline the deleter's last calls may still run.
const deleteGrace = 15 * time.Second

// close asks run to flush everything pending and return.
func (d *deleter) close() { d.once.Do(func() { close(d.closed) }) }

// run sends batches until close, then flushes what is left.
func (d *deleter) run(ctx context.Context) {
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-d.closed:
			for d.flush(ctx, true) {
			}
			return
		case <-d.wake:
		case <-t.C:
		}
		for d.flush(ctx, false) {
		}
	}
}

// flush sends one batch. It returns true when more entries are waiting for a full batch (or
// for anything at all when all is set).
func (d *deleter) flush(ctx context.Context, all bool) bool {
	d.mu.Lock()
	n := min(len(d.pending), sqsBatchMax)
	batch := append([]deleteEntry(nil), d.pending[:n]...)
	d.pending = d.pending[n:]
	d.mu.Unlock()
	if n == 0 {
		return false
	}
	entries := make([]sqstypes.DeleteMessageBatchRequestEntry, n)
	for i, e := range batch {
		entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: e.handle}
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	out, err := d.client.DeleteMessageBatch(cctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(d.queueURL), Entries: entries})
	cancel()
	d.metrics.sqsCall("DeleteMessageBatch")
	var retry []deleteEntry
	if err != nil {
		d.log.Warn("delete batch failed", zap.Error(err), zap.Int("messages", n))
		retry = batch
	} else {
		for _, f := range out.Failed {
			i, _ := strconv.Atoi(aws.ToString(f.Id))
			if i >= 0 && i < n {
				d.log.Warn("delete failed", zap.String("sqs_message_id", batch[i].id), zap.String("code", aws.ToString(f.Code)), zap.String("detail", aws.ToString(f.Message)))
				if !f.SenderFault {
					retry = append(retry, batch[i])
				}
			}
		}
		d.flushed.add(int64(n - len(out.Failed)))
	}
	for _, e := range retry {
		e.attempts++
		if e.attempts >= maxDeleteAttempts || ctx.Err() != nil {
			d.log.Error("giving up deleting message; it will be redelivered", zap.String("sqs_message_id", e.id))
			continue
		}
		d.mu.Lock()
		d.pending = append(d.pending, e)
		d.mu.Unlock()
	}
	if len(retry) > 0 && err != nil {
		select {
		case <-time.After(flushInterval):
		case <-ctx.Done():
		}
	}
	d.mu.Lock()
	more := len(d.pending) >= sqsBatchMax || (all && len(d.pending) > 0)
	d.mu.Unlock()
	return more
}
