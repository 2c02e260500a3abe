package s3server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"imgpipe/pkg/failure"

	"imgpipe/pkg/retry"
)

// Delivery tuning. They are constants rather than options: nothing in the project needs to
// change them, and tests do not depend on their values.
const (
	// fullWait is how long a writer waits for room when the outbox is at capacity before the
	// event is accepted beyond capacity (never dropped).
	fullWait = 5 * time.Second
	// attemptTimeout bounds one SendMessage / SendMessageBatch / GetQueueUrl call.
	attemptTimeout = 10 * time.Second
	// missingQueueGrace is how long an event keeps being retried while its queue does not
	// exist (a restarted SQS stand-in may be re-creating it) before it is dropped, as S3
	// drops events for a deleted destination.
	missingQueueGrace = 30 * time.Second
	// batchMax and batchBytes are SQS's SendMessageBatch limits.
	batchMax   = 10
	batchBytes = 256 * 1024
)

var errClosed = errors.New("s3standin: closed")

// outgoing is one message waiting for delivery.
type outgoing struct {
	id           uint64
	queueARN     string
	body         []byte
	attempts     int
	notBefore    time.Time
	firstMissing time.Time // first QueueDoesNotExist answer, zero if none
}

// sender owns the outbox and the goroutine that drains it into SQS.
type sender struct {
	client   *sqs.Client
	log      *zap.Logger
	capacity int
	fullWait time.Duration // fullWait, changed by tests
	// missingGrace is missingQueueGrace, changed by tests.
	missingGrace time.Duration

	mu          sync.Mutex
	ready       []*outgoing // waiting, in enqueue order, retries at the end
	outstanding int         // waiting plus in flight
	nextID      uint64      // id of the last enqueued message
	low         uint64      // every id below low is finished
	finished    map[uint64]bool
	changed     chan struct{} // closed and replaced on every state change
	closed      bool

	urlMu sync.Mutex
	urls  map[string]string // queue ARN -> queue URL

	enqueued, sent, testEvents, failedAttempts, dropped atomic.Uint64

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

func newSender(client *sqs.Client, log *zap.Logger, capacity int) *sender {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sender{
		client:       client,
		log:          log,
		capacity:     capacity,
		fullWait:     fullWait,
		low:          1,
		missingGrace: missingQueueGrace,
		finished:     make(map[uint64]bool),
		changed:      make(chan struct{}),
		urls:         make(map[string]string),
		stop:         cancel,
		done:         make(chan struct{}),
	}
	go s.run(ctx)
	return s
}

// broadcast wakes everyone waiting on a state change. Call with s.mu held.
func (s *sender) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// enqueue adds a message for delivery. When the outbox is at capacity it waits up to
// fullWait for room, then accepts the message anyway: S3 never drops an event, so the
// stand-in prefers slowing writers down and growing beyond its capacity to losing one.
func (s *sender) enqueue(queueARN string, body []byte) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	if s.outstanding >= s.capacity {
		s.log.Warn("notification outbox full; holding the S3 writer",
			zap.Int("pending", s.outstanding), zap.Int("capacity", s.capacity))
		timer := time.NewTimer(s.fullWait)
		defer timer.Stop()
	wait:
		for s.outstanding >= s.capacity && !s.closed {
			ch := s.changed
			s.mu.Unlock()
			select {
			case <-ch:
				s.mu.Lock()
			case <-timer.C:
				s.mu.Lock()
				break wait
			}
		}
		if s.closed {
			s.mu.Unlock()
			return errClosed
		}
		if s.outstanding >= s.capacity {
			s.log.Error("notification outbox over capacity: SQS delivery is not keeping up; "+
				"accepting the event beyond capacity rather than dropping it",
				zap.Int("pending", s.outstanding), zap.Int("capacity", s.capacity))
		}
	}
	s.nextID++
	s.ready = append(s.ready, &outgoing{id: s.nextID, queueARN: queueARN, body: body})
	s.outstanding++
	s.enqueued.Add(1)
	s.broadcast()
	s.mu.Unlock()
	return nil
}

// finish marks a message delivered or dropped.
func (s *sender) finish(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outstanding--
	if id == s.low {
		s.low++
		for s.finished[s.low] {
			delete(s.finished, s.low)
			s.low++
		}
	} else {
		s.finished[id] = true
	}
	s.broadcast()
}

// flush waits until every message enqueued before the call is delivered or dropped.
func (s *sender) flush(ctx context.Context) error {
	dropped := s.dropped.Load()
	s.mu.Lock()
	target := s.nextID
	for s.low <= target {
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			s.mu.Lock()
			pending := s.outstanding
			s.mu.Unlock()
			return fmt.Errorf("flush: %d events pending: %w", pending, ctx.Err())
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	if n := s.dropped.Load() - dropped; n > 0 {
		return fmt.Errorf("flush: %d events dropped (see the log)", n)
	}
	return nil
}

// close refuses new messages, delivers what it can until ctx ends, then stops the goroutine.
func (s *sender) close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.broadcast()
		s.mu.Unlock()
		err := s.flush(ctx)
		s.stop()
		<-s.done
		if err != nil {
			s.closeErr = fmt.Errorf("close: %w", err)
		}
	})
	return s.closeErr
}

func (s *sender) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outstanding
}

// run drains the outbox until ctx is cancelled.
func (s *sender) run(ctx context.Context) {
	defer close(s.done)
	for ctx.Err() == nil {
		batch, wait, ch := s.next()
		if len(batch) > 0 {
			s.deliver(ctx, batch)
			continue
		}
		var (
			timer   *time.Timer
			timeout <-chan time.Time
		)
		if wait > 0 {
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		select {
		case <-ctx.Done():
		case <-ch:
		case <-timeout:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// next takes the next batch of due messages for one queue. When nothing is due it returns
// how long until the earliest retry (zero: wait for news) and the channel to wait on.
func (s *sender) next() ([]*outgoing, time.Duration, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var (
		batch    []*outgoing
		size     int
		earliest time.Time
		keep     = s.ready[:0]
	)
	for _, m := range s.ready {
		due := !m.notBefore.After(now)
		if due && len(batch) < batchMax && (len(batch) == 0 || m.queueARN == batch[0].queueARN) &&
			(len(batch) == 0 || size+len(m.body) <= batchBytes) {
			batch = append(batch, m)
			size += len(m.body)
			continue
		}
		if !due && (earliest.IsZero() || m.notBefore.Before(earliest)) {
			earliest = m.notBefore
		}
		keep = append(keep, m)
	}
	clear(s.ready[len(keep):])
	s.ready = keep
	if len(batch) > 0 {
		return batch, 0, nil
	}
	var wait time.Duration
	if !earliest.IsZero() {
		wait = max(earliest.Sub(now), time.Millisecond)
	}
	return nil, wait, s.changed
}

// deliver sends one batch and settles each message: finished, dropped or back for a retry.
func (s *sender) deliver(ctx context.Context, batch []*outgoing) {
	arn := batch[0].queueARN
	failed, err := s.send(ctx, arn, batch)
	if err != nil {
		failed = make(map[*outgoing]error, len(batch))
		for _, m := range batch {
			failed[m] = err
		}
	}
	var retry []*outgoing
	for _, m := range batch {
		ferr, isFailed := failed[m]
		if !isFailed {
			s.sent.Add(1)
			s.finish(m.id)
			continue
		}
		s.failedAttempts.Add(1)
		m.attempts++
		if ctx.Err() != nil {
			// Stopping: leave it pending; Close reports it as undelivered.
			retry = append(retry, m)
			continue
		}
		if isMissingQueue(ferr) {
			if m.firstMissing.IsZero() {
				m.firstMissing = time.Now()
			}
			if time.Since(m.firstMissing) > s.missingGrace {
				s.drop(m, ferr)
				continue
			}
		} else {
			m.firstMissing = time.Time{}
			if failure.IsPermanent(ferr) {
				s.drop(m, ferr)
				continue
			}
		}
		m.notBefore = time.Now().Add(deliveryBackoff.Backoff(m.attempts, nil))
		s.log.Warn("notification delivery failed; will retry",
			zap.String("queue_arn", arn), zap.Int("attempt", m.attempts), zap.Error(ferr))
		retry = append(retry, m)
	}
	if len(retry) > 0 {
		s.mu.Lock()
		s.ready = append(s.ready, retry...)
		s.broadcast()
		s.mu.Unlock()
	}
}

func (s *sender) drop(m *outgoing, err error) {
	s.dropped.Add(1)
	s.log.Error("notification dropped", zap.String("queue_arn", m.queueARN),
		zap.Int("attempts", m.attempts), zap.Error(err))
	s.finish(m.id)
}

// send delivers batch to the queue behind arn. It returns the messages SQS rejected
// individually with their errors, or an error that applies to all of them.
func (s *sender) send(ctx context.Context, arn string, batch []*outgoing) (map[*outgoing]error, error) {
	url, err := s.queueURL(ctx, arn)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	if len(batch) == 1 {
		_, err := s.client.SendMessage(actx, &sqs.SendMessageInput{
			QueueUrl: aws.String(url), MessageBody: aws.String(string(batch[0].body)),
		})
		if err != nil {
			return nil, s.classify(arn, fmt.Errorf("send message to %s: %w", arn, err))
		}
		return nil, nil
	}
	entries := make([]sqstypes.SendMessageBatchRequestEntry, len(batch))
	for i, m := range batch {
		entries[i] = sqstypes.SendMessageBatchRequestEntry{
			Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(m.body)),
		}
	}
	out, err := s.client.SendMessageBatch(actx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	if err != nil {
		return nil, s.classify(arn, fmt.Errorf("send message batch to %s: %w", arn, err))
	}
	failed := make(map[*outgoing]error)
	seen := make(map[int]bool, len(batch))
	for _, r := range out.Successful {
		if i, err := strconv.Atoi(aws.ToString(r.Id)); err == nil {
			seen[i] = true
		}
	}
	for _, f := range out.Failed {
		i, err := strconv.Atoi(aws.ToString(f.Id))
		if err != nil || i < 0 || i >= len(batch) {
			continue
		}
		seen[i] = true
		class := failure.Transient
		if f.SenderFault {
			class = failure.Permanent // the message itself is wrong: retrying cannot help
		}
		failed[batch[i]] = failure.New(class, aws.ToString(f.Code), fmt.Errorf("send message batch to %s: entry rejected: %s: %s",
			arn, aws.ToString(f.Code), aws.ToString(f.Message)))
	}
	// A message the answer does not mention counts as failed.
	for i, m := range batch {
		if !seen[i] {
			failed[m] = failure.Transientf("MissingBatchEntry", "send message batch to %s: no result for entry %d", arn, i)
		}
	}
	return failed, nil
}

// sendNow delivers one message synchronously, for the s3:TestEvent that validates a
// destination when a configuration is put.
func (s *sender) sendNow(ctx context.Context, arn string, body []byte) error {
	url, err := s.queueURL(ctx, arn)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	if _, err := s.client.SendMessage(actx, &sqs.SendMessageInput{
		QueueUrl: aws.String(url), MessageBody: aws.String(string(body)),
	}); err != nil {
		return s.classify(arn, fmt.Errorf("send test event to %s: %w", arn, err))
	}
	s.testEvents.Add(1)
	return nil
}

// queueURL resolves a queue ARN with GetQueueUrl(QueueName) and caches the answer.
func (s *sender) queueURL(ctx context.Context, arn string) (string, error) {
	s.urlMu.Lock()
	url, ok := s.urls[arn]
	s.urlMu.Unlock()
	if ok {
		return url, nil
	}
	q, ok := parseQueueARN(arn)
	if !ok {
		return "", failure.Permanentf("InvalidQueueARN", "invalid queue ARN %q", arn)
	}
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	out, err := s.client.GetQueueUrl(actx, &sqs.GetQueueUrlInput{QueueName: aws.String(q.Name)})
	if err != nil {
		return "", classifySQS(fmt.Errorf("get queue url of %s: %w", arn, err))
	}
	url = aws.ToString(out.QueueUrl)
	s.urlMu.Lock()
	s.urls[arn] = url
	s.urlMu.Unlock()
	return url, nil
}

// classify classifies an SQS error and forgets the cached URL when the queue is gone.
func (s *sender) classify(arn string, err error) error {
	err = classifySQS(err)
	if isMissingQueue(err) {
		s.urlMu.Lock()
		delete(s.urls, arn)
		s.urlMu.Unlock()
	}
	return err
}

const reasonQueueDoesNotExist = "QueueDoesNotExist"

// classifySQS gives an SQS call's error its failure class.
func classifySQS(err error) error {
	var missing *sqstypes.QueueDoesNotExist
	if errors.As(err, &missing) {
		return failure.New(failure.Permanent, reasonQueueDoesNotExist, err)
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist":
			return failure.New(failure.Permanent, reasonQueueDoesNotExist, err)
		case "ThrottlingException", "RequestThrottled", "KmsThrottled":
			return failure.ThrottledAfter(api.ErrorCode(), 0, err)
		}
		if api.ErrorFault() == smithy.FaultClient {
			return failure.New(failure.Permanent, api.ErrorCode(), err)
		}
		return failure.New(failure.Transient, api.ErrorCode(), err)
	}
	return failure.New(failure.Transient, "SQSUnavailable", err)
}

func isMissingQueue(err error) bool {
	return err != nil && failure.ReasonOf(err) == reasonQueueDoesNotExist
}

// deliveryBackoff is the per-event wait between attempts: the project's one backoff
// (pkg/retry, full jitter), its ceiling 100 ms doubling up to 5 s. Events are retried until
// Close (or the missing-queue grace), so its MaxRetries is not used.
var deliveryBackoff = retry.Policy{BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second}
