package console

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"imgpipe/dlq-replay/replay"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/sqsqueue"
)

// Pipeline is the state of the pipeline's queues at one moment.
type Pipeline struct {
	At time.Time `json:"at"`
	// Queue is the analyzer's source queue; absent when the console was given none.
	Queue       *QueueStatus       `json:"queue,omitempty"`
	DeadLetters []DeadLetterStatus `json:"deadLetters"`
	Throughput  Throughput         `json:"throughput"`
}

// Problem says why a part of the pipeline status is missing.
type Problem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// QueueStatus is an SQS queue's depth. SQS does not tell the age of its oldest message
// through its API (only CloudWatch does), so OldestAgeSeconds is always null for it.
type QueueStatus struct {
	Name             string       `json:"name"`
	Depth            *queue.Depth `json:"depth"`
	OldestAgeSeconds *float64     `json:"oldestAgeSeconds"`
	Error            *Problem     `json:"error,omitempty"`
}

// DeadLetterStatus is what the last scan of a dead-letter queue found (see DLQRefresh).
type DeadLetterStatus struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // sqs or pubsub
	// Depth is the queue's own count (SQS only).
	Depth *queue.Depth `json:"depth,omitempty"`
	// Messages is how many messages the scan saw; Complete says whether it saw them all.
	Messages  int            `json:"messages"`
	Complete  bool           `json:"complete"`
	Oldest    *time.Time     `json:"oldestFailure"`
	Newest    *time.Time     `json:"newestFailure"`
	ByReason  []replay.Count `json:"byReason"`
	ByClass   []replay.Count `json:"byClass"`
	ScannedAt time.Time      `json:"scannedAt"`
	Error     *Problem       `json:"error,omitempty"`
}

// Throughput is how many images the index took in recently.
type Throughput struct {
	LastMinute    *int64   `json:"indexedLastMinute"`
	Last5Minutes  *int64   `json:"indexedLast5Minutes"`
	Last15Minutes *int64   `json:"indexedLast15Minutes"`
	PerMinute5Min *float64 `json:"perMinuteOver5Minutes"`
	Error         *Problem `json:"error,omitempty"`
}

func (s *Server) servePipeline(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := s.o.Now()
	p := Pipeline{At: now.UTC(), DeadLetters: []DeadLetterStatus{}}
	var wg sync.WaitGroup
	if s.deps.SQS != nil && s.o.QueueURL != "" {
		p.Queue = &QueueStatus{Name: queueName(s.o.QueueURL)}
		wg.Go(func() {
			d, err := sqsDepth(ctx, s.deps.SQS, s.o.QueueURL)
			if err != nil {
				p.Queue.Error = s.problem(err)
				return
			}
			p.Queue.Depth = &d
		})
	}
	var view *deadLetterView
	var viewErr error
	var dlqDepth *queue.Depth
	if len(s.dead.queues) > 0 || s.o.DLQURL != "" {
		wg.Go(func() {
			if len(s.dead.queues) > 0 {
				if view, viewErr = s.dead.current(ctx); viewErr != nil {
					return
				}
			}
			// After the scan, which holds the messages it looks at (they would count in flight).
			if s.deps.SQS != nil && s.o.DLQURL != "" {
				if d, err := sqsDepth(ctx, s.deps.SQS, s.o.DLQURL); err == nil {
					dlqDepth = &d
				}
			}
		})
	}
	wg.Go(func() { p.Throughput = s.throughput(ctx, now) })
	wg.Wait()
	if viewErr != nil {
		s.fail(w, r, viewErr)
		return
	}
	if view != nil {
		for _, rep := range view.reports {
			ds := DeadLetterStatus{Name: rep.queue.name, Kind: rep.queue.kind, Messages: rep.stats.Messages, Complete: rep.complete,
				ByReason: orEmpty(rep.stats.ByReason), ByClass: orEmpty(rep.stats.ByClass), ScannedAt: view.at.UTC()}
			if !rep.stats.Oldest.IsZero() {
				o, n := rep.stats.Oldest.UTC(), rep.stats.Newest.UTC()
				ds.Oldest, ds.Newest = &o, &n
			}
			if rep.err != nil {
				ds.Error = s.problem(rep.err)
			}
			if rep.queue.kind == "sqs" {
				ds.Depth = dlqDepth
			}
			p.DeadLetters = append(p.DeadLetters, ds)
		}
	}
	writeJSON(w, http.StatusOK, p)
}

func orEmpty(c []replay.Count) []replay.Count {
	if c == nil {
		return []replay.Count{}
	}
	return c
}

// throughput counts the documents indexed in the last 1, 5 and 15 minutes.
func (s *Server) throughput(ctx context.Context, now time.Time) Throughput {
	var t Throughput
	for _, w := range []struct {
		d   time.Duration
		out **int64
	}{{time.Minute, &t.LastMinute}, {5 * time.Minute, &t.Last5Minutes}, {15 * time.Minute, &t.Last15Minutes}} {
		n, err := s.deps.Index.CountIndexedSince(ctx, now.Add(-w.d))
		if err != nil {
			return Throughput{Error: s.problem(err)}
		}
		*w.out = &n
	}
	rate := float64(*t.Last5Minutes) / 5
	t.PerMinute5Min = &rate
	return t
}

// problem describes a failed part of the status for the page; the detail goes to the log.
func (s *Server) problem(err error) *Problem {
	s.log.Warn("pipeline status incomplete", zap.Error(err))
	code := failure.ReasonOf(err)
	if errors.Is(err, context.DeadlineExceeded) {
		code = "Timeout"
	}
	return &Problem{Code: code, Message: innermost(err)}
}

// sqsDepth reads the approximate depth of the SQS queue at url with the pipeline's SQS
// driver.
func sqsDepth(ctx context.Context, client *sqs.Client, url string) (queue.Depth, error) {
	q, err := sqsqueue.New(client, url, nil)
	if err != nil {
		return queue.Depth{}, err
	}
	return q.Depth(ctx)
}
