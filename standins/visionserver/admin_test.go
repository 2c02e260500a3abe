package visionserver

import (
	"bytes"
	"context"
	"encoding/json"
	"image/color"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"imgpipe/internal/visionstandin"
)

func TestAdminFaultsRoundTrip(t *testing.T) {
	initial := Faults{Latency: Latency{Fixed: Duration(time.Millisecond)}, Seed: 9}
	h := newHarness(t, &Options{Faults: initial})

	var got Faults
	r := h.do(http.MethodGet, visionstandin.AdminFaultsPath, nil, nil)
	if r.status != 200 || json.Unmarshal(r.body, &got) != nil || !reflect.DeepEqual(got, initial) {
		t.Fatalf("GET faults: %d %s, want %+v", r.status, r.body, initial)
	}

	doc := `{
		"latency": {"fixed": "5ms", "distribution": "uniform", "min": "1ms", "max": "2ms"},
		"transient": {"rate": 0.25, "kinds": ["Timeout", "ServiceUnavailable"]},
		"rateLimit": {"perSecond": 20, "burst": 40},
		"retryAfter": "x-ms-retry-after-ms",
		"outages": [{"from": "1m", "until": "2m", "mode": "drop"}],
		"badKey": false,
		"quotaExceeded": false,
		"seed": 42
	}`
	want := Faults{
		Latency: Latency{Fixed: Duration(5 * time.Millisecond), Distribution: visionstandin.DistUniform,
			Min: Duration(time.Millisecond), Max: Duration(2 * time.Millisecond)},
		Transient:  Transient{Rate: 0.25, Kinds: []string{visionstandin.KindTimeout, visionstandin.KindServiceUnavailable}},
		RateLimit:  RateLimit{PerSecond: 20, Burst: 40},
		RetryAfter: visionstandin.RetryAfterXMSMS,
		Outages:    []Outage{{From: Duration(time.Minute), Until: Duration(2 * time.Minute), Mode: visionstandin.OutageDrop}},
		Seed:       42,
	}
	r = h.do(http.MethodPut, visionstandin.AdminFaultsPath, map[string]string{"Content-Type": "application/json"}, doc)
	if r.status != 200 {
		t.Fatalf("PUT faults: %d %s", r.status, r.body)
	}
	if got := h.srv.Faults(); !reflect.DeepEqual(got, want) {
		t.Errorf("after PUT: %+v, want %+v", got, want)
	}
	r = h.do(http.MethodGet, visionstandin.AdminFaultsPath, nil, nil)
	got = Faults{}
	if err := json.Unmarshal(r.body, &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("GET after PUT: %s (%v), want %+v", r.body, err, want)
	}

	// Durations may also be given as nanoseconds.
	r = h.do(http.MethodPut, visionstandin.AdminFaultsPath, nil, `{"latency":{"fixed":1000000}}`)
	if r.status != 200 || h.srv.Faults().Latency.Fixed != Duration(time.Millisecond) {
		t.Errorf("PUT with nanoseconds: %d %s", r.status, r.body)
	}

	for _, bad := range []string{
		`{"latncy": {"fixed": "5ms"}}`,   // unknown member
		`{"transient": {"rate": 2}}`,     // invalid value
		`{"latency": {"fixed": "soon"}}`, // bad duration
		`{"retryAfter": "later"}`,        // bad mode
		`{"seed": 1} {"seed": 2}`,        // two documents
		`not json`,
	} {
		before := h.srv.Faults()
		r := h.do(http.MethodPut, visionstandin.AdminFaultsPath, nil, bad)
		wantError(t, r, 400, CodeInvalidRequest, CodeBadArgument)
		if after := h.srv.Faults(); !reflect.DeepEqual(before, after) {
			t.Errorf("refused PUT %s changed the faults to %+v", bad, after)
		}
	}

	// Reset restores the initial faults and zeroes the counters.
	if err := h.srv.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	decode40(t, h.analyze40("tags", solidPNG(t, 60, 60, red)))
	if h.srv.Stats().Calls != 1 {
		t.Fatalf("stats %+v", h.srv.Stats())
	}
	r = h.do(http.MethodPost, visionstandin.AdminResetPath, nil, nil)
	if r.status != http.StatusNoContent {
		t.Fatalf("reset: %d %s", r.status, r.body)
	}
	if got := h.srv.Faults(); !reflect.DeepEqual(got, initial) {
		t.Errorf("after reset: %+v, want %+v", got, initial)
	}
	if st := h.srv.Stats(); st.Calls != 0 || st.Analyses != 0 || len(st.ByStatus) != 0 || len(st.ByImage) != 0 {
		t.Errorf("stats after reset: %+v", st)
	}
}

func TestAdminStats(t *testing.T) {
	// Admin calls need no key, ignore faults and are not counted.
	h := newHarness(t, &Options{Faults: Faults{BadKey: true}})
	img := solidPNG(t, 60, 60, red)
	wantError(t, h.analyze40("tags", img), 401, "401", "")
	if err := h.srv.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	decode40(t, h.analyze40("tags", img))
	decode40(t, h.do(http.MethodPost, Path40+"?api-version=2023-10-01&features=tags", keyHeader, img))
	decode32(t, h.analyze32("Tags", img))
	decode32(t, h.analyze32("Tags", solidPNG(t, 70, 60, red)))
	wantError(t, h.do(http.MethodPost, Path40+"?features=tags", keyHeader, img), 404, "404", "")
	wantError(t, h.do(http.MethodPost, "/nowhere", keyHeader, img), 404, "404", "")

	r := h.do(http.MethodGet, visionstandin.AdminStatsPath, nil, nil)
	var st Stats
	if r.status != 200 || json.Unmarshal(r.body, &st) != nil {
		t.Fatalf("GET stats: %d %s", r.status, r.body)
	}
	want := Stats{
		Calls:        7,
		ByStatus:     map[string]int64{"200": 4, "401": 1, "404": 2},
		ByAPIVersion: map[string]int64{"2024-02-01": 2, "2023-10-01": 1, "v3.2": 2, "(none)": 1},
		Analyses:     4,
		ByImage:      map[string]int64{visionstandin.ContentKey(img): 3, visionstandin.ContentKey(solidPNG(t, 70, 60, red)): 1},
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("stats\n got %+v\nwant %+v", st, want)
	}
	if st.AnalysedCount(img) != 3 {
		t.Errorf("AnalysedCount %d", st.AnalysedCount(img))
	}
	if !reflect.DeepEqual(h.srv.Stats(), want) {
		t.Errorf("Stats() differs from GET /admin/stats")
	}

	// The snapshot is a copy.
	snap := h.srv.Stats()
	snap.ByStatus["200"] = 1000
	if h.srv.Stats().ByStatus["200"] != 4 {
		t.Error("Stats shares its maps with the server")
	}

	for _, c := range []struct{ method, path string }{
		{http.MethodPost, visionstandin.AdminStatsPath}, {http.MethodDelete, visionstandin.AdminFaultsPath}, {http.MethodGet, visionstandin.AdminResetPath},
	} {
		r := h.do(c.method, c.path, nil, nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") == "" {
			t.Errorf("%s %s: %d, Allow %q", c.method, c.path, r.status, r.header.Get("Allow"))
		}
	}
	if r := h.do(http.MethodGet, "/admin/nothing", nil, nil); r.status != 404 {
		t.Errorf("unknown admin path: %d", r.status)
	}
}

func TestStartAndClose(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run, err := Start(ctx, "127.0.0.1:0", &Options{Keys: []string{"k"}})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, run.URL+path40("tags"), bytes.NewReader(solidPNG(t, 60, 60, red)))
	req.Header.Set("Ocp-Apim-Subscription-Key", "k")
	req.Header.Set("Content-Type", "image/png")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || run.Server.Stats().Analyses != 1 {
		t.Fatalf("status %d, stats %+v", resp.StatusCode, run.Server.Stats())
	}
	if err := run.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := run.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := client.Get(run.URL + visionstandin.AdminStatsPath); err == nil {
		t.Error("still serving after Close")
	}

	// Cancelling the context stops it too.
	ctx2, cancel2 := context.WithCancel(context.Background())
	run2, err := Start(ctx2, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel2()
	<-run2.Done()
	if _, err := client.Get(run2.URL + visionstandin.AdminStatsPath); err == nil {
		t.Error("still serving after its context ended")
	}
	if err := run2.Close(); err != nil {
		t.Errorf("Close after cancel: %v", err)
	}

	if _, err := Start(context.Background(), "127.0.0.1:0", &Options{Faults: Faults{Transient: Transient{Rate: 3}}}); err == nil {
		t.Error("Start accepted invalid faults")
	}
	if _, err := Start(context.Background(), "not an address", nil); err == nil {
		t.Error("Start accepted a bad address")
	}
}

// A stand-in on a manual clock runs its rate limit and outage windows on the time the
// product's client (visionstandin.Client.PutClock) sets; one on the real clock refuses to be
// set.
func TestAdminClock(t *testing.T) {
	img := solidPNG(t, 80, 60, color.RGBA{R: 200, A: 255})
	if r := newHarness(t, nil).do(http.MethodPut, visionstandin.AdminClockPath, nil, `{"now":"2030-01-01T00:00:00Z"}`); r.status != http.StatusConflict {
		t.Errorf("real clock set: %d %s, want 409", r.status, r.body)
	}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	h := newHarness(t, &Options{ManualClock: start, Faults: Faults{
		RateLimit: RateLimit{PerSecond: 1, Burst: 1},
		Outages:   []Outage{{From: Duration(time.Hour), Until: Duration(2 * time.Hour)}},
	}})
	c := visionstandin.NewClient(h.http.URL, h.client)
	ctx := context.Background()
	if r := h.analyze40("tags", img); r.status != 200 {
		t.Fatalf("first call: %d %s", r.status, r.body)
	}
	// However long the test takes, the clock has not moved: the bucket is empty.
	if r := h.analyze40("tags", img); r.status != http.StatusTooManyRequests {
		t.Fatalf("second call at the same instant: %d, want 429", r.status)
	}
	if err := c.PutClock(ctx, start.Add(1500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if r := h.analyze40("tags", img); r.status != 200 {
		t.Fatalf("a refill later: %d %s", r.status, r.body)
	}
	if err := c.PutClock(ctx, start.Add(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if r := h.analyze40("tags", img); r.status != http.StatusServiceUnavailable {
		t.Fatalf("inside the outage window: %d, want 503", r.status)
	}
	for _, bad := range []string{`{"now":"tomorrow"}`, `{}`, `not json`} {
		if r := h.do(http.MethodPut, visionstandin.AdminClockPath, nil, bad); r.status != http.StatusBadRequest {
			t.Errorf("PUT %s: %d, want 400", bad, r.status)
		}
	}
	if r := h.do(http.MethodGet, visionstandin.AdminClockPath, nil, nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET clock: %d, want 405", r.status)
	}
}
