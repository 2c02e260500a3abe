package sqsdlq_test

import (
	"context"
	"testing"
	"time"

	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/replaytest"
	"imgpipe/dlq-replay/sqsdlq"
	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.SQS) }

type harness struct{}

func (harness) NewEnv(t *testing.T) *replaytest.Env {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	c := st.NewSQSClient()
	dlqQ := sqsdlq.New(c, b.DLQURL, nil)
	dest := sqsdlq.New(c, b.QueueURL, nil)
	return &replaytest.Env{
		DLQ: dlqQ, Seed: dlqQ, Dest: sqsdlq.NewRouter(c, b.QueueURL, nil), DestSrc: dest,
		Typed: true, Hold: time.Second, MaxHold: 12 * time.Hour,
		Depth: func(t *testing.T) (int, int) {
			d := func(url string) int {
				d, err := sqsdlq.New(c, url, nil).Depth(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return d.Visible + d.NotVisible
			}
			return d(b.DLQURL), d(b.QueueURL)
		},
		InFlight: func(t *testing.T) int {
			d, err := sqsdlq.New(c, b.DLQURL, nil).Depth(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return d.NotVisible
		},
	}
}

func TestBehaviour(t *testing.T) { replaytest.Run(t, harness{}) }

func TestSourceQueuesFromRedrivePolicy(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	other := stacktest.Bootstrap(t, st, devstack.Resources{}) // another pair: must not match
	got, err := sqsdlq.SourceQueues(context.Background(), st.NewSQSClient(), b.DLQURL)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != b.QueueURL {
		t.Fatalf("source queues of %s: %v, want [%s] (not %s)", b.DLQURL, got, b.QueueURL, other.QueueURL)
	}
}

// Without --to and without a redrive configuration, messages go to their
// imgpipe.source-queue; a message without one fails and stays.
func TestRouteByAttribute(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	c := st.NewSQSClient()
	ctx := context.Background()
	withSource := replaytest.Msg(t, "upload/routed.jpg", "VisionUnavailable", failure.Transient, 0)
	withSource.Attributes[failure.AttrSourceQueue] = replay.Attr{DataType: replay.DataString, String: b.Queue} // a name, not a URL
	lost := replaytest.Msg(t, "upload/nowhere.jpg", "VisionUnavailable", failure.Transient, 0)
	src := sqsdlq.New(c, b.DLQURL, nil)
	if n, err := replay.Send(ctx, src, []*replay.Message{withSource, lost}, 10); n != 2 || err != nil {
		t.Fatalf("seed: %d %v", n, err)
	}
	sum, err := replay.Run(ctx, src, sqsdlq.NewRouter(c, "", nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Moved != 1 || sum.Failed != 1 || !sum.Partial() {
		t.Fatalf("summary %+v", sum)
	}
	var keys []string
	if _, err := replay.Scan(ctx, sqsdlq.New(c, b.QueueURL, nil), nil, func(m *replay.Message) error { keys = append(keys, replay.Key(m)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "upload/routed.jpg" {
		t.Fatalf("source queue holds %v", keys)
	}
}

// fauxqs 1.9.2 has no StartMessageMoveTask: the native mode reports the service's refusal
// as an error rather than pretending. Against real SQS the call starts a task.
func TestNativeMoveReportsUnsupported(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	if _, err := sqsdlq.StartMove(context.Background(), st.NewSQSClient(), b.DLQARN, "", 0); err == nil {
		t.Fatal("the SQS stand-in now accepts StartMessageMoveTask: replace this test with one that checks the move")
	}
}

// A wait under a second must still long-poll: SQS takes whole seconds, and a wait cut to 0 is
// a short poll, which may come back empty while the queue holds messages (it samples a subset
// of the servers), and one empty receive ends a scan.
func TestSubSecondWaitStillLongPolls(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	c := st.NewSQSClient()
	q := sqsdlq.New(c, b.DLQURL, &sqsdlq.Options{Wait: 500 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // while the receive below waits
		_, err := replay.Send(context.Background(), q, []*replay.Message{replaytest.Msg(t, "upload/late.jpg", "VisionUnavailable", failure.Transient, 0)}, 10)
		done <- err
	}()
	msgs, err := q.Receive(context.Background(), 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("a receive with a 500ms wait returned %d messages; the message sent 300ms into it was missed (short poll)", len(msgs))
	}
}
