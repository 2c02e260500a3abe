package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/imagemeta"
	"imgpipe/pkg/samples"
)

// LoadOptions describes a load run. Rate and one of Count or Duration are required.
type LoadOptions struct {
	// Rate is the target uploads per second.
	Rate float64
	// Count stops the run after this many uploads; Duration after this long. With both, the
	// first reached ends the run.
	Count    int
	Duration time.Duration
	// Files are images to upload, in turn; without them images are generated with
	// samples.Image (a new seed for every upload, so every upload is a distinct image).
	Files []string
	// Width, Height and Format of generated images; default 320x240 "jpeg".
	Width, Height int
	Format        string
	// Seed is the seed of the first generated image; default: from the clock, so that
	// successive runs make new images.
	Seed int64
}

// LoadReport is the outcome of a load run.
type LoadReport struct {
	Sent   int   `json:"sent"`
	Failed int   `json:"failed"`
	Bytes  int64 `json:"bytes"`
	// Errors counts the failed uploads by reason.
	Errors       map[string]int `json:"errors"`
	Elapsed      time.Duration  `json:"-"`
	TargetRate   float64        `json:"targetRate"`
	AchievedRate float64        `json:"achievedRate"` // successful uploads per second
	// Latency of successful uploads: percentiles and maximum.
	P50, P95, P99, Max time.Duration `json:"-"`
	// Keys of the uploaded objects, in completion order.
	Keys []string `json:"-"`
}

// MarshalJSON writes durations in seconds.
func (r *LoadReport) MarshalJSON() ([]byte, error) {
	type plain LoadReport
	return json.Marshal(struct {
		*plain
		ElapsedSeconds float64 `json:"elapsedSeconds"`
		P50Seconds     float64 `json:"p50Seconds"`
		P95Seconds     float64 `json:"p95Seconds"`
		P99Seconds     float64 `json:"p99Seconds"`
		MaxSeconds     float64 `json:"maxSeconds"`
	}{(*plain)(r), r.Elapsed.Seconds(), r.P50.Seconds(), r.P95.Seconds(), r.P99.Seconds(), r.Max.Seconds()})
}

// WriteText writes the report for people.
func (r *LoadReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Sent %d uploads (%s) in %s: %.1f/s achieved, %.1f/s target\n",
		r.Sent, FormatBytes(r.Bytes), r.Elapsed.Round(time.Millisecond), r.AchievedRate, r.TargetRate)
	if r.Sent > 0 {
		fmt.Fprintf(&b, "Latency: p50 %s, p95 %s, p99 %s, max %s\n", r.P50.Round(time.Millisecond/10),
			r.P95.Round(time.Millisecond/10), r.P99.Round(time.Millisecond/10), r.Max.Round(time.Millisecond/10))
	}
	if r.Failed > 0 {
		reasons := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			reasons = append(reasons, k)
		}
		sort.Strings(reasons)
		var parts []string
		for _, k := range reasons {
			parts = append(parts, fmt.Sprintf("%d %s", r.Errors[k], k))
		}
		fmt.Fprintf(&b, "Failed %d: %s\n", r.Failed, strings.Join(parts, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ExitCode is ExitFailed when an upload failed, else ExitOK.
func (r *LoadReport) ExitCode() int {
	if r.Failed > 0 {
		return ExitFailed
	}
	return ExitOK
}

// Load uploads images at a target rate and reports the rate achieved, the latencies and the
// errors. It is open-loop: upload n is due at start + n/Rate whatever happened before; when
// every worker (Options.Concurrency) is busy, uploads start late and the achieved rate shows
// it. Each upload is one PutObject (no retries beyond the SDK's, no duplicate check), under
// the Uploader's key scheme. When ctx ends the run stops and reports what was done.
func (u *Uploader) Load(ctx context.Context, opts *LoadOptions) (*LoadReport, error) {
	o := LoadOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Rate <= 0 {
		return nil, errors.New("load: rate must be positive")
	}
	if o.Count <= 0 && o.Duration <= 0 {
		return nil, errors.New("load: give a count or a duration")
	}
	if o.Width <= 0 || o.Height <= 0 {
		o.Width, o.Height = 320, 240
	}
	if o.Format == "" {
		o.Format = "jpeg"
	}
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano() % 1_000_000_000_000
	}
	var given [][]byte
	for _, p := range o.Files {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		given = append(given, b)
	}
	if len(given) == 0 {
		if _, err := samples.Image(o.Seed, o.Width, o.Height, o.Format); err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
	}

	rep := &LoadReport{Errors: map[string]int{}, TargetRate: o.Rate}
	var mu sync.Mutex
	var lat []time.Duration
	start := time.Now()
	var end time.Time
	if o.Duration > 0 {
		end = start.Add(o.Duration)
	}
	items := make(chan int)
	var wg sync.WaitGroup
	for range u.o.Concurrency {
		wg.Go(func() {
			for n := range items {
				name, data, err := loadImage(n, o, given)
				var key string
				var took time.Duration
				if err == nil {
					t0 := time.Now()
					key, err = u.putBytes(ctx, name, data)
					took = time.Since(t0)
				}
				mu.Lock()
				if err != nil {
					rep.Failed++
					rep.Errors[failure.ReasonOf(err)]++
				} else {
					rep.Sent++
					rep.Bytes += int64(len(data))
					rep.Keys = append(rep.Keys, key)
					lat = append(lat, took)
				}
				mu.Unlock()
			}
		})
	}
	interval := time.Duration(float64(time.Second) / o.Rate)
schedule:
	for n := 0; o.Count <= 0 || n < o.Count; n++ {
		due := start.Add(time.Duration(n) * interval)
		if !end.IsZero() && !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				break schedule
			}
		}
		select {
		case items <- n:
		case <-ctx.Done():
			break schedule
		}
	}
	close(items)
	wg.Wait()
	rep.Elapsed = time.Since(start)
	if rep.Elapsed > 0 {
		rep.AchievedRate = float64(rep.Sent) / rep.Elapsed.Seconds()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		rep.P50, rep.P95, rep.P99, rep.Max = pct(0.50), pct(0.95), pct(0.99), lat[len(lat)-1]
	}
	return rep, nil
}

// loadImage returns the name and bytes of upload n.
func loadImage(n int, o LoadOptions, given [][]byte) (string, []byte, error) {
	if len(given) > 0 {
		i := n % len(given)
		return filepath.Base(o.Files[i]), given[i], nil
	}
	seed := o.Seed + int64(n)
	b, err := samples.Image(seed, o.Width, o.Height, o.Format)
	if err != nil {
		return "", nil, failure.New(failure.Permanent, "GenerateImage", err)
	}
	ext := o.Format
	if ext == "jpeg" {
		ext = "jpg"
	}
	return fmt.Sprintf("load-%d.%s", seed, ext), b, nil
}

// putBytes uploads data under the key the Uploader's scheme gives name, with the usual
// content type and metadata, in one PutObject.
func (u *Uploader) putBytes(ctx context.Context, name string, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	key := KeyFor(u.o.Keys, u.prefix, name, hexSum)
	head := data[:min(len(data), imagemeta.SniffLen)]
	ctype := imagemeta.ContentType(head)
	if err := u.acquire(ctx); err != nil {
		return "", err
	}
	defer u.release()
	_, err := u.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &u.bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ContentType:    &ctype,
		Metadata:       map[string]string{MetaOriginalName: EncodeName(name), MetaSHA256: hexSum, MetaUploader: "imgpipe-uploader/" + Version},
		ChecksumSHA256: aws.String(base64Sum(sum)),
	})
	if err != nil {
		return "", classifyS3("put "+key, err)
	}
	return key, nil
}
