package s3server_test

import (
	"net/http"
	"testing"
	"time"

	"imgpipe/internal/s3standin"
)

// The admin endpoints, through the product's client (imgpipe/internal/s3standin), serve what
// the Go methods give: Flush delivers, Stats counts, RunLifecycle runs; and refuse what is
// not theirs.
func TestAdminEndpointsThroughTheClient(t *testing.T) {
	e := newEnv(t, "")
	e.configureAll(t)
	c := s3standin.NewClient(e.run.URL(), nil, nil)
	ctx := testCtx(t)
	before := c.Stats()
	if before.TestEvents == 0 {
		t.Fatalf("stats %+v: the configuration's test event is not counted", before)
	}
	for _, k := range []string{"a", "b", "c"} {
		e.put(t, k, k)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.GetStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st != e.run.Server().Stats() {
		t.Errorf("stats over HTTP %+v, in process %+v", st, e.run.Server().Stats())
	}
	if st.Enqueued-before.Enqueued != 3 || st.Sent-before.Sent != 3 || st.Pending != 0 {
		t.Errorf("after three puts and a flush: %+v (before %+v)", st, before)
	}
	res, err := c.RunLifecycle(ctx, time.Now().Add(72*time.Hour))
	if err != nil || res != (s3standin.LifecycleResult{}) {
		t.Errorf("lifecycle without rules: %+v, %v", res, err)
	}

	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, s3standin.AdminFlushPath, http.StatusMethodNotAllowed},
		{http.MethodPost, s3standin.AdminFlushPath + "?timeout=soon", http.StatusBadRequest},
		{http.MethodPost, s3standin.AdminFlushPath + "?timeout=-1s", http.StatusBadRequest},
		{http.MethodPost, s3standin.AdminStatsPath, http.StatusMethodNotAllowed},
		{http.MethodGet, "/_standin/nothing", http.StatusNotFound},
	} {
		req, _ := http.NewRequestWithContext(ctx, tc.method, e.run.URL()+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
}
