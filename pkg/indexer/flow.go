package indexer

import (
	"context"
	"sync"

	"imgpipe/pkg/queue"
)

// flow bounds the messages held unacknowledged, in number and in bytes: a receive reserves
// room for the messages it asks for, gives back what it did not get, and each message's room
// is freed once it is settled.
type flow struct {
	maxMsgs, maxBytes int

	mu    sync.Mutex
	cond  *sync.Cond
	msgs  int // held or reserved
	bytes int // of the held messages
}

func newFlow(maxMsgs, maxBytes int) *flow {
	f := &flow{maxMsgs: maxMsgs, maxBytes: maxBytes}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// acquire waits until there is room for a quarter of the bound (or want, if less), then
// reserves room for up to want and returns how many; 0 once ctx has ended. Waiting for a
// quarter keeps a receive from being made for a message or two each time one is settled
// while the bound is reached: each receive costs a round trip or two (Pub/Sub: a Pull and a
// ModifyAckDeadline), and the messages still held keep the writes busy meanwhile.
func (f *flow) acquire(ctx context.Context, want int) int {
	low := max(1, min(want, f.maxMsgs/4))
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for ctx.Err() == nil && (f.maxMsgs-f.msgs < low || f.bytes >= f.maxBytes) {
		f.cond.Wait()
	}
	if ctx.Err() != nil {
		return 0
	}
	n := min(want, f.maxMsgs-f.msgs)
	f.msgs += n
	return n
}

// received gives back the room reserved for asked messages that a receive did not bring,
// and counts the bytes of those it did.
func (f *flow) received(asked int, got []*queue.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs -= asked - len(got)
	for _, m := range got {
		f.bytes += size(m)
	}
	f.cond.Broadcast()
}

// done frees m's room.
func (f *flow) done(m *queue.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs--
	f.bytes -= size(m)
	f.cond.Broadcast()
}

// size is what a message counts for in the bytes bound: its body and attributes.
func size(m *queue.Message) int {
	n := len(m.Body)
	for k, a := range m.Attributes {
		n += len(k) + len(a.String) + len(a.Binary)
	}
	return n
}
