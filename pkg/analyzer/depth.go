package analyzer

import (
	"context"
	"time"

	"go.uber.org/zap"

	"imgpipe/pkg/autoscale"
	"imgpipe/pkg/queue"
)

// Depth is the source queue's approximate depth.
type Depth = queue.Depth

// QueueDepth reads the source queue's approximate depth.
func (a *Analyzer) QueueDepth(ctx context.Context) (Depth, error) { return a.deps.Queue.Depth(ctx) }

// watchQueue reads the queue's depth every DepthInterval until ctx ends, exports it and, with
// an autoscaler, resizes the worker pool. The dead-letter queue's depth is read and exported
// on the same interval.
func (a *Analyzer) watchQueue(ctx context.Context) {
	t := time.NewTicker(a.opts.DepthInterval)
	defer t.Stop()
	dlqFailing := false
	for {
		a.pollDepth(ctx)
		dlqFailing = a.pollDLQDepth(ctx, dlqFailing)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Analyzer) pollDepth(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	d, err := a.QueueDepth(cctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			a.depthErr.Store(&err)
			a.log.Warn("queue depth unavailable", zap.Error(err))
		}
		return
	}
	a.depthErr.Store(nil)
	setDepth(a.metrics.queueDepth, d)
	if a.scaler == nil {
		return
	}
	cur := a.capacity.size()
	dec := a.scaler.Decide(autoscale.Input{
		Now: a.now(), Current: cur, Backlog: d.Visible + d.NotVisible, Latency: a.metrics.handle.mean(),
	})
	a.metrics.wanted.Set(float64(dec.Wanted))
	if !dec.Changed {
		return
	}
	dir := "up"
	if dec.Workers < cur {
		dir = "down"
	}
	a.metrics.decisions.WithLabelValues(dir).Inc()
	a.capacity.resize(dec.Workers)
	a.log.Info("worker pool resized", zap.Int("from", cur), zap.Int("to", dec.Workers), zap.String("why", dec.Reason),
		zap.Int("visible", d.Visible), zap.Int("not_visible", d.NotVisible))
}

// pollDLQDepth exports the dead-letter queue's depth and reports whether the read failed. A
// failure is logged when it begins (say, a policy without sqs:GetQueueAttributes on the DLQ),
// not on every interval, and the gauges keep their last value; it does not make the analyzer
// unready.
func (a *Analyzer) pollDLQDepth(ctx context.Context, wasFailing bool) bool {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	d, err := a.deps.DLQ.Depth(cctx)
	cancel()
	if err != nil {
		if !wasFailing && ctx.Err() == nil {
			a.log.Warn("dead-letter queue depth unavailable", zap.Error(err))
		}
		return true
	}
	if wasFailing {
		a.log.Info("dead-letter queue depth readable again")
	}
	setDepth(a.metrics.dlqDepth, d)
	return false
}
