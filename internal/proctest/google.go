package proctest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"imgpipe/internal/stacktest"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/record"
)

// NewSubscription creates a subscription named id on the pipeline's topic, so that the
// indexers of one scenario see only the records published after it, and deletes it when the
// test ends. It returns its full name.
func (st *Stack) NewSubscription(tb testing.TB, id string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	project := st.Env["GOOGLE_CLOUD_PROJECT"]
	client, err := pubsub.NewClient(ctx, project)
	if err != nil {
		tb.Fatalf("pubsub client: %v", err)
	}
	defer client.Close()
	topic := st.Env["IMGPIPE_TOPIC"]
	if !strings.Contains(topic, "/") {
		topic = "projects/" + project + "/topics/" + topic
	}
	name := "projects/" + project + "/subscriptions/" + id
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: name, Topic: topic, AckDeadlineSeconds: 60,
	}); err != nil {
		tb.Fatalf("create subscription %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client, err := pubsub.NewClient(ctx, project)
		if err != nil {
			return
		}
		defer client.Close()
		_ = client.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: name})
	})
	return name
}

// UniqueID is a name no other scenario of this run uses, built from prefix.
func UniqueID(prefix string) string { return stacktest.Unique(prefix) }

// Indexed compares the Firestore collection (read with the real client) with the objects
// that were put: it returns the keys that have no document, the documents whose key was
// never put (or put in another scenario), and the documents whose ETag or size differ from
// the object. All three empty means every object ended as exactly one correct document (a
// document ID is derived from the bucket and key, so a key cannot have two).
func (st *Stack) Indexed(ctx context.Context, collection string, objs []Object) (missing, unexpected, wrong []string, err error) {
	fs, err := firestore.NewClient(ctx, st.Env["GOOGLE_CLOUD_PROJECT"])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("firestore client: %w", err)
	}
	defer fs.Close()
	docs, err := indexstore.New(fs, collection, nil).List(ctx, st.Env["IMGPIPE_BUCKET"], len(objs)+1000)
	if err != nil {
		return nil, nil, nil, err
	}
	want := make(map[string]Object, len(objs))
	for _, o := range objs {
		want[o.Key] = o
	}
	seen := make(map[string]bool, len(docs))
	for _, d := range docs {
		o, ok := want[d.Key]
		switch {
		case !ok:
			unexpected = append(unexpected, d.Key)
		case seen[d.Key]:
			unexpected = append(unexpected, d.Key+" (twice)")
		case d.Event != record.Created || strings.Trim(d.ETag, `"`) != o.ETag || d.Size != o.Size || len(d.Tags) == 0:
			wrong = append(wrong, fmt.Sprintf("%s (event %s, etag %s, size %d, %d tags; put etag %s, size %d)",
				d.Key, d.Event, d.ETag, d.Size, len(d.Tags), o.ETag, o.Size))
		}
		seen[d.Key] = true
	}
	for _, o := range objs {
		if !seen[o.Key] {
			missing = append(missing, o.Key)
		}
	}
	sort.Strings(missing)
	sort.Strings(unexpected)
	sort.Strings(wrong)
	return missing, unexpected, wrong, nil
}
