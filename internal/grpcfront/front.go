// Package grpcfront is a gRPC front for Google's emulators: it forwards every call to the
// emulator unchanged, ends the calls of a client that went away the way the emulator can
// handle, and can cut its clients off for a while (an outage, or a restart of the emulator
// behind it) without touching the emulator.
//
// Why: Google's Pub/Sub emulator (cloud-pubsub-emulator 0.8.20 in google-cloud-cli) mishandles
// every call that ends with a non-OK status on its side. A client's RST_STREAM (a cancelled
// call) and a dropped connection (a SIGKILLed client) both fail inside it with
// NoSuchMethodError InternalStatus.asRuntimeException, so its StreamingPull handler never
// learns that the stream ended. It keeps the dead stream among the subscription's streams and
// goes on handing it messages, first deliveries and redeliveries after the ack deadline alike.
// Measured (TestKilledSubscriberStrandsMessagesOnTheEmulator in internal/devstack, run by
// make emulator-defects, which asserts that some but not all of the messages published after
// the kill arrive): after a
// subscriber with two streams holding 20 messages was SIGKILLed, a second subscriber got 64 of
// the 100 published afterwards and 14 of the 20 within 30 s in one run, 80 and 20 in another.
//
// What the front changes, and nothing else: a call whose client went away (cancelled, reset,
// or lost with its connection) is not cancelled towards the emulator but half-closed, as a
// client that stops cleanly does, and read to its end (a client's deadline is passed on as
// it is, so the emulator ends a timed-out call itself). The emulator then ends the call with
// OK and forgets the stream. What the emulator sent on such a call after its client was gone
// is dropped; for StreamingPull those messages stay leased until their ack deadline and then
// come back on other streams, which is what the real service does with messages it sent to a
// client that died (Stats.Stranded counts them). Only if the emulator has not ended a
// half-closed call within Options.DrainTimeout is the call cancelled (Stats.Cancelled), and
// the emulator's defect applies to it.
//
// Pause cuts every client connection and refuses new ones until Resume; the calls cut end
// towards the emulator as above, and Pause returns once none is left, so a caller can then
// export and restart the emulator knowing that no client holds an answer the export lacks.
package grpcfront

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// streamingPull is the one method whose answers the front looks into, to count the messages
// it could not deliver.
const streamingPull = "/google.pubsub.v1.Subscriber/StreamingPull"

// maxMessage is above the largest request or answer the emulators take (Pub/Sub: 10 MB
// messages; Firestore: 10 MiB requests), so the front refuses nothing the emulator would take.
const maxMessage = 64 << 20

// Options tunes a front. A nil *Options takes the defaults.
type Options struct {
	// DrainTimeout bounds how long a call whose client went away is read after the front
	// half-closed it, before the front cancels it; default 30s.
	DrainTimeout time.Duration
	Logger       *zap.Logger
}

// Stats counts what a front did.
type Stats struct {
	Calls     int64 // calls forwarded
	Abandoned int64 // calls whose client went away before the emulator ended them
	Drained   int64 // of those, half-closed and then ended by the emulator
	Cancelled int64 // of those, cancelled after DrainTimeout
	// Stranded counts messages the emulator sent on StreamingPull calls after their client
	// was gone; they stay leased until their ack deadline, then come back.
	Stranded int64
	Cut      int64 // client connections cut by Pause
}

// Front forwards gRPC calls from its listener to one emulator.
type Front struct {
	upstream string
	o        Options
	conn     *grpc.ClientConn
	srv      *grpc.Server
	ln       *listener
	ctx      context.Context // ends when the front closes; bounds every upstream call
	cancel   context.CancelFunc
	served   chan struct{}

	active atomic.Int64 // calls to the emulator not yet ended

	calls, abandoned, drained, cancelled, stranded atomic.Int64

	closeOnce sync.Once
}

// Start listens on addr (host:port; port 0 picks a free one) and forwards every call to the
// emulator at upstream (host:port). Close stops it.
func Start(addr, upstream string, opts *Options) (*Front, error) {
	o := Options{DrainTimeout: 30 * time.Second, Logger: zap.NewNop()}
	if opts != nil {
		if opts.DrainTimeout > 0 {
			o.DrainTimeout = opts.DrainTimeout
		}
		if opts.Logger != nil {
			o.Logger = opts.Logger
		}
	}
	conn, err := grpc.NewClient(upstream,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)))
	if err != nil {
		return nil, fmt.Errorf("grpc front: emulator %s: %w", upstream, err)
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("grpc front: listen %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Front{upstream: upstream, o: o, conn: conn, ln: newListener(tcp), ctx: ctx, cancel: cancel, served: make(chan struct{})}
	f.srv = grpc.NewServer(
		grpc.ForceServerCodec(rawCodec{}),
		grpc.UnknownServiceHandler(f.forward),
		grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage),
	)
	go func() {
		defer close(f.served)
		_ = f.srv.Serve(f.ln)
	}()
	return f, nil
}

// Addr is the front's host:port, the address clients use.
func (f *Front) Addr() string { return f.ln.Addr().String() }

// Upstream is the emulator's host:port.
func (f *Front) Upstream() string { return f.upstream }

// Stats returns the front's counters.
func (f *Front) Stats() Stats {
	return Stats{
		Calls: f.calls.Load(), Abandoned: f.abandoned.Load(), Drained: f.drained.Load(),
		Cancelled: f.cancelled.Load(), Stranded: f.stranded.Load(), Cut: f.ln.cut.Load(),
	}
}

// Pause cuts every client connection, refuses new ones (each is accepted and closed at once)
// until Resume, and waits until every call to the emulator has ended (or ctx ends).
func (f *Front) Pause(ctx context.Context) error {
	f.ln.pause(true)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for f.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("grpc front: %d calls to %s still open: %w", f.active.Load(), f.upstream, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// Resume accepts clients again after Pause.
func (f *Front) Resume() { f.ln.pause(false) }

// Close cuts the clients, ends the calls to the emulator (waiting up to DrainTimeout for
// them) and stops. Safe to call twice.
func (f *Front) Close() error {
	f.closeOnce.Do(func() {
		f.ln.pause(true)
		stopped := make(chan struct{})
		go func() {
			f.srv.GracefulStop() // waits for the handlers, which end with their upstream calls
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(f.o.DrainTimeout):
			f.cancel()
			f.srv.Stop()
			<-stopped
		}
		f.cancel()
		<-f.served
		f.conn.Close()
	})
	return nil
}

// forward relays one call, of any method, to the emulator.
func (f *Front) forward(_ any, down grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(down)
	if !ok {
		return status.Error(codes.Internal, "grpc front: a call without a method")
	}
	f.calls.Add(1)
	f.active.Add(1)
	defer f.active.Add(-1)
	dctx := down.Context()
	md, _ := metadata.FromIncomingContext(dctx)
	md = md.Copy()
	delete(md, ":authority")
	delete(md, "user-agent")
	// The upstream call does not end when the client cancels (a cancelled call is what the
	// emulator mishandles), only with the front's life. The client's deadline goes along
	// unchanged: the emulator sees it (grpc-timeout) and ends the call itself, so a long poll
	// that timed out (a Pull) is not left open to take messages nobody will read.
	uctx, ucancel := context.WithCancel(metadata.NewOutgoingContext(f.ctx, md))
	defer ucancel()
	if dl, ok := dctx.Deadline(); ok {
		var c context.CancelFunc
		uctx, c = context.WithDeadline(uctx, dl)
		defer c()
	}
	up, err := f.conn.NewStream(uctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return err
	}

	// The client went away before the call ended: bound the drain.
	var gone atomic.Bool
	stopWatch := context.AfterFunc(dctx, func() {
		gone.Store(true)
		f.abandoned.Add(1)
		t := time.AfterFunc(f.o.DrainTimeout, func() {
			if uctx.Err() == nil {
				f.cancelled.Add(1)
				f.o.Logger.Warn("the emulator did not end a half-closed call; cancelled it",
					zap.String("method", method), zap.String("emulator", f.upstream))
				ucancel()
			}
		})
		context.AfterFunc(uctx, func() { t.Stop() })
	})
	defer stopWatch()

	// Client to emulator. However the client's side ends, the emulator sees a half-close.
	go func() {
		defer up.CloseSend()
		for {
			var m frame
			if err := down.RecvMsg(&m); err != nil {
				return
			}
			if err := up.SendMsg(&m); err != nil {
				return // the call ended; its status comes through RecvMsg below
			}
		}
	}()

	// Emulator to client, until the emulator ends the call.
	headerSent := false
	for {
		var m frame
		if err := up.RecvMsg(&m); err != nil {
			if gone.Load() {
				if uctx.Err() == nil {
					f.drained.Add(1)
				}
				return nil
			}
			if !headerSent {
				if h, herr := up.Header(); herr == nil && len(h) > 0 {
					_ = down.SetHeader(h)
				}
			}
			down.SetTrailer(up.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if !gone.Load() {
			if !headerSent {
				if h, err := up.Header(); err == nil {
					_ = down.SendHeader(h)
				}
				headerSent = true
			}
			if down.SendMsg(&m) == nil {
				continue
			}
		}
		f.strand(method, m)
	}
}

// strand counts the messages of a StreamingPull answer that could not be delivered.
func (f *Front) strand(method string, m frame) {
	if method != streamingPull {
		return
	}
	var resp pubsubpb.StreamingPullResponse
	if err := proto.Unmarshal(m, &resp); err == nil {
		f.stranded.Add(int64(len(resp.GetReceivedMessages())))
	}
}

// frame is one gRPC message, as its wire bytes.
type frame []byte

// rawCodec passes messages through as bytes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("grpc front: cannot marshal %T", v)
	}
	return *m, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("grpc front: cannot unmarshal into %T", v)
	}
	*m = append((*m)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }
