package console

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"imgpipe/dlq-replay/replay"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/uploader"
)

// deadLetterQueue is one dead-letter queue the console reports on.
type deadLetterQueue struct {
	name, kind string // kind: "sqs" or "pubsub"
	src        replay.Source
	// visible, when set, tells how many messages a scan can see (SQS's approximate count):
	// the scan stops there instead of waiting out an empty receive, and skips an empty queue.
	visible func(ctx context.Context) (int, error)
}

// deadLetterReport is what one scan of a dead-letter queue found.
type deadLetterReport struct {
	queue    *deadLetterQueue
	stats    replay.Stats
	complete bool // every message was seen (fewer than the scan's bound, within its time)
	err      error
}

// objectRef names one object.
type objectRef struct{ bucket, key string }

// deadLetterView is one look at every dead-letter queue: their statistics, and the failure of
// every object they hold a message about.
type deadLetterView struct {
	at       time.Time
	reports  []deadLetterReport
	failures map[objectRef]uploader.FailureInfo
}

// deadLetters keeps a view of the dead-letter queues no older than refresh, shared by every
// request: a scan receives (and releases) every message, so it must not run per request. One
// scan runs at a time, on the goroutine of the request that found the view stale; the others
// wait for it.
type deadLetters struct {
	queues  []*deadLetterQueue
	refresh time.Duration
	max     int           // messages looked at per queue and scan
	hold    time.Duration // lease of scanned messages, released at the end of the scan
	timeout time.Duration // bound on one scan of all queues
	now     func() time.Time

	sem  chan struct{} // held while the view is read or refreshed
	view *deadLetterView
}

// current returns the view, scanning first when it is older than refresh.
func (d *deadLetters) current(ctx context.Context) (*deadLetterView, error) {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-d.sem }()
	if d.view != nil && d.now().Sub(d.view.at) < d.refresh {
		return d.view, nil
	}
	// The scan is shared: a request that goes away must not cut it short for the others.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
	defer cancel()
	d.view = d.scan(sctx)
	return d.view, nil
}

func (d *deadLetters) scan(ctx context.Context) *deadLetterView {
	v := &deadLetterView{at: d.now(), failures: map[objectRef]uploader.FailureInfo{}}
	newest := map[objectRef]time.Time{}
	for _, q := range d.queues {
		b := &replay.StatsBuilder{PrefixDepth: 2}
		n, limit := 0, d.max
		if q.visible != nil {
			if vis, err := q.visible(ctx); err == nil {
				limit = min(limit, vis)
			}
		}
		if limit == 0 {
			v.reports = append(v.reports, deadLetterReport{queue: q, stats: b.Stats(), complete: true})
			continue
		}
		_, err := replay.Scan(ctx, q.src, &replay.ScanOptions{Max: limit, Hold: d.hold}, func(m *replay.Message) error {
			n++
			b.Add(m)
			at := m.FailedAt()
			for _, ref := range subjects(m, q.kind) {
				if prev, ok := newest[ref]; ok && prev.After(at) {
					continue
				}
				newest[ref] = at
				v.failures[ref] = uploader.NewFailureInfo(m.Failure(), m.ID, m.ReceiveCount)
			}
			return nil
		})
		rep := deadLetterReport{queue: q, stats: b.Stats(), complete: err == nil && n < d.max}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			rep.err = err
		}
		v.reports = append(v.reports, rep)
	}
	return v
}

// subjects returns the objects a dead-lettered message is about: the records of an S3 event
// notification (the analyzer's SQS DLQ), or the bucket and key of an analysis record (the
// indexer's Pub/Sub dead letters), from its attributes or its body.
func subjects(m *replay.Message, kind string) []objectRef {
	if kind == "sqs" {
		ev, err := s3event.Parse(m.Body)
		if err != nil {
			return nil
		}
		refs := make([]objectRef, 0, len(ev.Records))
		for _, r := range ev.Records {
			refs = append(refs, objectRef{r.Bucket, r.Key})
		}
		return refs
	}
	attrs := m.StringAttributes()
	ref := objectRef{attrs[record.AttrBucket], attrs[record.AttrKey]}
	if ref.bucket == "" || ref.key == "" {
		var rec struct{ Bucket, Key string }
		if json.Unmarshal(m.Body, &rec) != nil {
			return nil
		}
		ref = objectRef{rec.Bucket, rec.Key}
	}
	if ref.bucket == "" || ref.key == "" {
		return nil
	}
	return []objectRef{ref}
}

// Failures implements uploader.FailureSource from the current view.
func (d *deadLetters) Failures(ctx context.Context, bucket string, keys map[string]bool) (map[string]uploader.FailureInfo, error) {
	if len(d.queues) == 0 {
		return nil, nil
	}
	v, err := d.current(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]uploader.FailureInfo{}
	for k := range keys {
		if f, ok := v.failures[objectRef{bucket, k}]; ok {
			out[k] = f
		}
	}
	return out, nil
}
