package memqueue_test

import (
	"testing"
	"time"

	"imgpipe/pkg/queue"
	"imgpipe/pkg/queue/memqueue"
	"imgpipe/pkg/queue/queuetest"
)

type harness struct{}

func (harness) NewQueue(t *testing.T) (queue.Source, queue.Sink) {
	q := memqueue.New(t.Name(), nil)
	return q, q
}
func (harness) Hold() time.Duration { return 100 * time.Millisecond }
func (harness) Capabilities() queuetest.Capabilities {
	return queuetest.Capabilities{TypedAttributes: true, StaleHandleRefused: true, Depth: true}
}

func TestConformance(t *testing.T) { queuetest.Run(t, harness{}) }
