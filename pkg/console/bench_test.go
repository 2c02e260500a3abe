package console_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"imgpipe/pkg/console"
)

// post sends one JSON request and fails the benchmark on anything but want.
func post(b *testing.B, url string, body []byte, want int) {
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s: %d", url, resp.StatusCode)
	}
}

func get(b *testing.B, url string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("%s: %d", url, resp.StatusCode)
	}
}

// BenchmarkUploadSign is one browser upload's signing: the request, the key, the presigned PUT
// (no cloud call: SigV4 is computed locally).
func BenchmarkUploadSign(b *testing.B) {
	e := newEnv(b, func(o *console.Options) { o.RatePerSecond, o.RateBurst, o.Logger = 1e9, 1e9, zap.NewNop() })
	body, _ := json.Marshal(console.UploadRequest{Name: "holiday photo.jpg", Size: 3 << 20, Type: "image/jpeg"})
	b.ReportAllocs()
	for b.Loop() {
		post(b, e.ts.URL+"/api/v1/uploads", body, 201)
	}
}

// BenchmarkImagesPage is one gallery page of 24 images from an index of 200 (Firestore
// emulator query and 24 presigned GETs).
func BenchmarkImagesPage(b *testing.B) {
	e := newEnv(b, func(o *console.Options) { o.RatePerSecond, o.RateBurst, o.Logger = 1e9, 1e9, zap.NewNop() })
	t0 := time.Now().Add(-time.Hour)
	for i := range 200 {
		e.indexed(b, fmt.Sprintf("%simg/%03d.png", e.res.Prefix, i), t0.Add(time.Duration(i)*time.Second), "cat")
	}
	b.ResetTimer()
	for b.Loop() {
		get(b, e.ts.URL+"/api/v1/images?limit=24&tag=cat")
	}
}

// BenchmarkDeadLetterScan is one pipeline status whose dead-letter view is always stale: a
// scan of every message of a DLQ holding 500 (receive, statistics, release), plus the depths
// and the throughput counts. It says what --dlq-refresh and --dlq-scan cost.
func BenchmarkDeadLetterScan(b *testing.B) {
	e := newEnv(b, func(o *console.Options) {
		o.RatePerSecond, o.RateBurst, o.DLQRefresh, o.DeadLetterSubscription, o.Logger = 1e9, 1e9, time.Nanosecond, "", zap.NewNop()
	})
	const messages = 500
	for i := range messages {
		e.deadLetter(b, fmt.Sprintf("%sbad/%03d.jpg", e.res.Prefix, i), []string{"NotAnImage", "CorruptImage", "InvalidImageSize"}[i%3])
	}
	var p console.Pipeline
	resp, err := http.Get(e.ts.URL + "/api/v1/pipeline")
	if err != nil {
		b.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if len(p.DeadLetters) != 1 || p.DeadLetters[0].Messages != messages || !p.DeadLetters[0].Complete {
		b.Fatalf("the scan saw %+v", p.DeadLetters)
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		get(b, e.ts.URL+"/api/v1/pipeline")
	}
	b.ReportMetric(float64(b.N*messages)/time.Since(start).Seconds(), "msgs/s")
}
