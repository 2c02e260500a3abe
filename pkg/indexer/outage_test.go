package indexer_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/publish"
	"imgpipe/pkg/record"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startFirestore(t *testing.T, port int) *devstack.Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := devstack.Start(ctx, &devstack.Options{Parts: devstack.Firestore, Ports: devstack.Ports{Firestore: port}})
	if err != nil {
		t.Fatalf("start firestore emulator on %d: %v", port, err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// TestFirestoreOutage stops the Firestore emulator while records flow and starts it again on
// the same port: records are nacked meanwhile, none is dead-lettered, and every record
// published from the stop on ends indexed once Firestore is back. (The emulator keeps its
// data in memory, so what was written before the stop is gone after the restart; the test
// checks the records that cannot have been written before it.)
func TestFirestoreOutage(t *testing.T) {
	st := stacktest.Get(t)
	port := freePort(t)
	fs := startFirestore(t, port)
	// Enough delivery attempts that the outage cannot push records to the dead-letter topic.
	b := stacktest.Bootstrap(t, st, devstack.Resources{MaxDeliveryAttempts: 100, MinBackoff: time.Second, MaxBackoff: 2 * time.Second})
	// After Bootstrap, which points the environment at the shared stack again.
	t.Setenv("FIRESTORE_EMULATOR_HOST", fs.FirestoreHost)
	r := startIndexer(t, st.ProjectID, b, nil)
	pub := publish.New(pubsubClient(t, st.ProjectID), b.TopicName, nil)
	defer pub.Close()

	// A steady stream of records, one every 20ms, until stopped.
	var mu sync.Mutex
	var published []string
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(published) }
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			key := fmt.Sprintf("stream/%05d.jpg", i)
			if _, err := pub.Publish(context.Background(), rec(record.Created, b.Bucket, key, 1)); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			mu.Lock()
			published = append(published, key)
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()

	eventually(t, "records flowing", func() bool { return settled(r) >= 20 })
	if err := fs.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	from := count() // published after the stop: cannot have been written before it
	eventually(t, "nacks while Firestore is down", func() bool { return r.ix.Metrics().Nacked.Load() >= 20 })
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := r.store.Ping(pctx); err == nil {
		t.Error("Ping (the readiness check) passes while Firestore is down")
	}
	cancel()

	startFirestore(t, port)
	if err := r.store.Ping(context.Background()); err != nil {
		t.Errorf("Ping after the restart: %v", err)
	}
	restarted := count()
	eventually(t, "records flowing after the restart", func() bool { return count() >= restarted+50 })
	close(stop)
	<-done

	want := published[from:]
	eventually(t, "every record from the stop on indexed", func() bool {
		docs, err := r.store.List(context.Background(), b.Bucket, 100000)
		if err != nil {
			return false
		}
		got := map[string]bool{}
		for _, d := range docs {
			got[d.Key] = true
		}
		missing := 0
		for _, k := range want {
			if !got[k] {
				missing++
			}
		}
		return missing == 0
	})
	m := r.ix.Metrics()
	if m.DeadLettered.Load() != 0 || m.Invalid.Load() != 0 {
		t.Errorf("%d dead-lettered, %d invalid during a transient outage", m.DeadLettered.Load(), m.Invalid.Load())
	}
	t.Logf("%d records published from the stop on, all indexed; %d nacks", len(want), m.Nacked.Load())
}
