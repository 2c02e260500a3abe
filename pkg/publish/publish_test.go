package publish_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/record"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.PubSub) }

func TestPublishCarriesAttributesAndOrderingKey(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordering-keys=%v", ordered), func(t *testing.T) {
			testPublish(t, ordered)
		})
	}
}

// testPublish publishes one record and checks what the subscription receives: attributes,
// body, and the object's ordering key only when ordering keys are on.
func testPublish(t *testing.T, ordered bool) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pub := publish.New(client, b.TopicName, &publish.Options{OrderingKeys: ordered})
	defer pub.Close()
	rec := &record.Analysis{SchemaVersion: record.SchemaVersion, Event: record.Created, Bucket: "images",
		Key: "upload/ünï code+x.jpg", Sequencer: "00AB", EventTime: time.Now().UTC().Truncate(time.Millisecond), Width: 10, Height: 20}
	id, err := pub.Publish(ctx, rec)
	if err != nil || id == "" {
		t.Fatalf("publish: %q, %v", id, err)
	}
	got := make(chan *pubsub.Message, 1)
	rctx, stop := context.WithCancel(ctx)
	go func() {
		_ = client.Subscriber(b.SubscriptionName).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			select {
			case got <- m:
			default:
			}
		})
	}()
	defer stop()
	select {
	case m := <-got:
		wantKey := ""
		if ordered {
			wantKey = rec.OrderingKey()
		}
		if m.ID != id || m.OrderingKey != wantKey {
			t.Errorf("message %s ordering key %q, want %s %q", m.ID, m.OrderingKey, id, wantKey)
		}
		for k, v := range rec.Attributes() {
			if m.Attributes[k] != v {
				t.Errorf("attribute %s = %q, want %q", k, m.Attributes[k], v)
			}
		}
		back, err := record.Unmarshal(m.Data)
		if err != nil || back.Key != rec.Key || back.Width != 10 || !back.EventTime.Equal(rec.EventTime) {
			t.Errorf("body round trip: %+v, %v", back, err)
		}
	case <-ctx.Done():
		t.Fatal("published record never arrived")
	}
}

func TestInvalidRecordIsRefusedPermanently(t *testing.T) {
	st := stacktest.Get(t)
	ctx := context.Background()
	client, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pub := publish.New(client, "projects/"+st.ProjectID+"/topics/unused", nil)
	defer pub.Close()
	_, err = pub.Publish(ctx, &record.Analysis{SchemaVersion: record.SchemaVersion, Event: record.Created, Bucket: "b"})
	if !failure.IsPermanent(err) {
		t.Fatalf("record without a key: %v, want a permanent error", err)
	}
}

func TestMissingTopicIsTransient(t *testing.T) {
	st := stacktest.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pub := publish.New(client, "projects/"+st.ProjectID+"/topics/"+stacktest.Unique("missing"), nil)
	defer pub.Close()
	_, err = pub.Publish(ctx, &record.Analysis{SchemaVersion: record.SchemaVersion, Event: record.Removed, Bucket: "b", Key: "k"})
	if err == nil || failure.IsPermanent(err) || !failure.IsSetup(err) || failure.ReasonOf(err) != "NotFound" {
		t.Fatalf("publish to a missing topic: %v (reason %q), want a transient setup fault NotFound", err, failure.ReasonOf(err))
	}
}

// TestOversizedRecordIsPermanent: a record larger than a Pub/Sub message may be can never be
// published: a permanent failure, not a retry.
func TestOversizedRecordIsPermanent(t *testing.T) {
	st := stacktest.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := pubsub.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pub := publish.New(client, "projects/"+st.ProjectID+"/topics/"+stacktest.Unique("unused"), nil)
	defer pub.Close()
	_, err = pub.Publish(ctx, &record.Analysis{SchemaVersion: record.SchemaVersion, Event: record.Created, Bucket: "b", Key: "k",
		Caption: strings.Repeat("x", 11<<20)})
	if !failure.IsPermanent(err) || failure.ReasonOf(err) != publish.ReasonRecordTooLarge {
		t.Fatalf("an 11 MB record: %v (reason %q), want permanent %s", err, failure.ReasonOf(err), publish.ReasonRecordTooLarge)
	}
}
