package replaytest

import (
	"context"
	"errors"
	"sync"
	"time"

	"imgpipe/dlq-replay/replay"
)

// ErrCrash is what every call fails with once a Crash has happened.
var ErrCrash = errors.New("injected crash between send and delete")

// Crash wraps a run's source and sink so that the process seems to die right after a send
// returns: the sent messages reach the destination, and from then on no call reaches the
// source (no delete, release, extend or receive): each fails with ErrCrash, so that the
// source keeps every message leased until its hold ends, as after a real crash.
type Crash struct {
	src replay.Source
	dst replay.Sink
	// After, when set, runs after each confirmed send with the messages whose send was
	// confirmed (the pipeline acting on them before the run deletes them). A non-nil error
	// makes the crash happen.
	After func(sent []*replay.Message) error

	mu      sync.Mutex
	crashed bool
	sent    int
}

// NewCrash wraps src and dst; with a nil after, the crash happens after the first send.
func NewCrash(src replay.Source, dst replay.Sink, after func(sent []*replay.Message) error) *Crash {
	if after == nil {
		after = func([]*replay.Message) error { return ErrCrash }
	}
	return &Crash{src: src, dst: dst, After: after}
}

// Source is the wrapped source, Sink the wrapped sink.
func (c *Crash) Source() replay.Source { return crashSource{c} }
func (c *Crash) Sink() replay.Sink     { return crashSink{c} }

// Sent is how many messages were sent (confirmed) before the crash.
func (c *Crash) Sent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent
}

// Crashed reports whether the crash happened.
func (c *Crash) Crashed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crashed
}

func (c *Crash) down() bool { return c.Crashed() }

type crashSink struct{ c *Crash }

func (s crashSink) Send(ctx context.Context, msgs []*replay.Message) []error {
	if s.c.down() {
		return fill(len(msgs))
	}
	errs := s.c.dst.Send(ctx, msgs)
	var sent []*replay.Message
	for i, e := range errs {
		if e == nil {
			sent = append(sent, msgs[i])
		}
	}
	err := s.c.After(sent)
	s.c.mu.Lock()
	s.c.sent += len(sent)
	if err != nil {
		s.c.crashed = true
	}
	s.c.mu.Unlock()
	return errs
}

type crashSource struct{ c *Crash }

func (s crashSource) Receive(ctx context.Context, max int, hold time.Duration) ([]*replay.Message, error) {
	if s.c.down() {
		return nil, ErrCrash
	}
	return s.c.src.Receive(ctx, max, hold)
}

func (s crashSource) Extend(ctx context.Context, msgs []*replay.Message, hold time.Duration) []error {
	if s.c.down() {
		return fill(len(msgs))
	}
	return s.c.src.Extend(ctx, msgs, hold)
}

func (s crashSource) Release(ctx context.Context, msgs []*replay.Message) []error {
	if s.c.down() {
		return fill(len(msgs))
	}
	return s.c.src.Release(ctx, msgs)
}

func (s crashSource) Delete(ctx context.Context, msgs []*replay.Message) []error {
	if s.c.down() {
		return fill(len(msgs))
	}
	return s.c.src.Delete(ctx, msgs)
}

func (s crashSource) MaxAttributes() int { return s.c.src.MaxAttributes() }

func fill(n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = ErrCrash
	}
	return errs
}
