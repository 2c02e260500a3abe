package chaos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"imgpipe/pkg/record"
	"imgpipe/pkg/retry"
	"imgpipe/pkg/s3event"
)

// audit is a subscription of the suite's own on the pipeline's topic, pulled by this process
// (never killed) for the whole run: it tells a record the analyzers published and the indexers
// did not index from one never published, and gives each key's newest published sequencer.
type audit struct {
	client *pubsub.Client
	name   string
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	published map[string][]published // by key
	// receiveErrs counts the audit subscription's failed receives (an emulator outage);
	// lastErr is the last one. Both go into the report.
	receiveErrs int
	lastErr     error
}

type published struct {
	sequencer, etag string
	event           record.Event
	at              time.Time
}

func startAudit(ctx context.Context, project, topic string) (*audit, error) {
	client, err := pubsub.NewClient(ctx, project)
	if err != nil {
		return nil, err
	}
	a := &audit{client: client, name: "projects/" + project + "/subscriptions/chaos-audit", done: make(chan struct{}),
		published: map[string][]published{}}
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: a.name, Topic: topic, AckDeadlineSeconds: 60,
	}); err != nil {
		client.Close()
		return nil, fmt.Errorf("create the audit subscription: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() {
		defer close(a.done)
		for rctx.Err() == nil {
			err := client.Subscriber(a.name).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
				rec, err := record.Unmarshal(m.Data)
				if err == nil {
					a.mu.Lock()
					a.published[rec.Key] = append(a.published[rec.Key], published{rec.Sequencer, rec.ETag, rec.Event, time.Now()})
					a.mu.Unlock()
				}
				m.Ack()
			})
			if err != nil && rctx.Err() == nil {
				a.mu.Lock()
				a.receiveErrs++
				a.lastErr = err
				a.mu.Unlock()
				_ = retry.Sleep(rctx, time.Second) // an emulator outage: receive again (the loop ends with rctx)
			}
		}
	}()
	return a, nil
}

// newest returns the newest record published for key (by S3 sequencer) and how many
// distinct events were published for it.
func (a *audit) newest(key string) (published, int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ps := a.published[key]
	if len(ps) == 0 {
		return published{}, 0, false
	}
	best := ps[0]
	distinct := map[string]bool{}
	for _, p := range ps {
		distinct[p.sequencer] = true
		if newer, err := s3event.CompareSequencer(p.sequencer, best.sequencer); err == nil && newer > 0 {
			best = p
		}
	}
	return best, len(distinct), true
}

// count is the number of records received, copies included, and of keys they were for.
func (a *audit) count() (records, keys int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ps := range a.published {
		records += len(ps)
	}
	return records, len(a.published)
}

// receiveErrors is how many of the audit subscription's receives failed, and the last error.
func (a *audit) receiveErrors() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.receiveErrs, a.lastErr
}

func (a *audit) close() {
	a.cancel()
	<-a.done
	a.client.Close()
}
