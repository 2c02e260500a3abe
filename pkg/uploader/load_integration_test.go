package uploader_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/uploader"
)

func TestLoadSendsCountAtRate(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	ctx := testCtx(t)
	up, err := uploader.New(st.NewS3Client(), b.Bucket, b.Prefix, &uploader.Options{Keys: uploader.KeysUUID, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := up.Load(ctx, &uploader.LoadOptions{Rate: 200, Count: 40, Width: 64, Height: 48, Format: "png", Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 40 || rep.Failed != 0 || len(rep.Keys) != 40 || rep.AchievedRate <= 0 || rep.Max < rep.P50 || rep.ExitCode() != 0 {
		t.Fatalf("report %+v", rep)
	}
	if got := listKeys(t, ctx, st.NewS3Client(), b.Bucket); len(got) != 40 {
		t.Errorf("bucket holds %d objects, want 40", len(got))
	}
	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "Sent 40 uploads") {
		t.Errorf("text report %q, %v", text.String(), err)
	}
	var doc map[string]any
	if err := json.NewEncoder(&js).Encode(rep); err != nil || json.Unmarshal(js.Bytes(), &doc) != nil || doc["sent"] != float64(40) || doc["p95Seconds"] == nil {
		t.Errorf("json report %s, %v", js.String(), err)
	}

	// Given files are cycled; with a duration the run ends on time.
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"a.jpg": mustImage(t, 1, 60, 60, "jpeg"), "b.png": mustImage(t, 2, 60, 60, "png")})
	rep, err = up.Load(ctx, &uploader.LoadOptions{Rate: 50, Duration: 300 * time.Millisecond,
		Files: []string{filepath.Join(dir, "a.jpg"), filepath.Join(dir, "b.png")}})
	if err != nil || rep.Sent == 0 || rep.Failed != 0 || rep.Sent > 15 {
		t.Errorf("duration run: %+v, %v", rep, err)
	}
}

func TestLoadCountsErrorsByReason(t *testing.T) {
	st := stacktest.Get(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	up, err := uploader.New(clientFor(st, url), "bucket", "upload/", nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := up.Load(context.Background(), &uploader.LoadOptions{Rate: 500, Count: 10, Width: 60, Height: 60})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 0 || rep.Failed != 10 || rep.Errors[uploader.ReasonConnectionRefused] != 10 || rep.ExitCode() != uploader.ExitFailed {
		t.Errorf("report %+v", rep)
	}
	if _, err := up.Load(context.Background(), &uploader.LoadOptions{Rate: 5}); err == nil {
		t.Error("Load without count or duration accepted")
	}
}
