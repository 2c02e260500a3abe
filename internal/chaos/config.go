// Package chaos is the pipeline's chaos suite: it runs the analyzer, indexer, uploader and
// dlq-replay binaries built from the tree as black boxes on the local stack, injects a seeded
// schedule of faults (SIGKILLed analyzers and indexers, restarted; Vision's transient errors,
// quota and an outage; Firestore restarted with its data, Pub/Sub cut off), uploads good images, bad files and odd
// keys, and then checks through the real clients that every good image is exactly one correct
// document and every bad file exactly one DLQ entry with its reason, replays the good images a
// DLQ holds with dlq-replay, and reports what it found (see docs/chaos.md).
//
// cmd/chaos runs it (make chaos); TestChaos runs a small version in make test.
package chaos

import (
	"fmt"
	"io"
	"math"
	"time"
)

// Config is one run of the suite.
type Config struct {
	N    int   // files of the first upload, bad ones included
	Seed int64 // the fault schedule, the corpus and Vision's random faults
	// BadRate is the share of bad files; Overwrite the share of good images uploaded again,
	// different, later (the index must show the last version).
	BadRate, Overwrite float64
	// Rate is the planned upload rate (files/s); the fault window is N / Rate.
	Rate float64
	// Timing is the fault timing; its Window is set from N and Rate when zero.
	Timing Timing
	// TimingScale shortens the full timing (1: the suite's own 20-60 s kills and 30 s outage).
	TimingScale float64
	Batches     int     // upload batches, spread over the window
	Quota       float64 // Vision calls/s the stand-in serves before 429
	Transient   float64 // share of Vision calls that fail with 500/503
	Analyzers   int
	Indexers    int
	// MaxReceiveCount is the queue's redrive count (0: the local stack's default, 5); a
	// lower one sends more good images to the DLQ, to exercise the replay.
	MaxReceiveCount int
	// QuietFor is how long nothing may change before the run counts as quiet without every
	// image accounted for (longer than the subscription's 60 s ack deadline and the queue's
	// 30 s visibility timeout); MaxWait bounds the wait for quiet.
	QuietFor, MaxWait time.Duration
	WorkDir           string    // empty: a new temporary folder, removed unless Keep
	Keep              bool      // keep the work folder (binaries, corpus, logs)
	Out               io.Writer // progress and the report
}

// Full is the suite's configuration for n files: 25 uploads/s, Vision's quota 40 calls/s
// with 5% transient errors, kills every 20-60 s, a 30 s Vision outage.
func Full(n int, seed int64) Config {
	return Config{
		N: n, Seed: seed, BadRate: 0.01, Overwrite: 0.01, Rate: 25, TimingScale: 1,
		Quota: 40, Transient: 0.05, Analyzers: 2, Indexers: 2,
		QuietFor: 90 * time.Second, MaxWait: 15 * time.Minute,
	}
}

// Small is the version of make test: 8 uploads/s (500 files: about a minute of faults),
// quota 6 calls/s (below the upload rate, so that the quota is met whatever the machine's
// load), the fault timing scaled to a quarter (kills every 5-15 s, a 7.5 s Vision
// outage) so that each process is still killed more than once.
func Small(n int, seed int64) Config {
	c := Full(n, seed)
	c.Rate, c.Quota, c.TimingScale = 8, 6, 0.25
	c.MaxWait = 8 * time.Minute
	return c
}

func (c *Config) withDefaults() error {
	if c.N <= 0 || c.Rate <= 0 || c.Quota <= 0 || c.Analyzers <= 0 || c.Indexers <= 0 {
		return fmt.Errorf("chaos: N, Rate, Quota, Analyzers and Indexers must be positive")
	}
	if c.BadRate < 0 || c.BadRate >= 1 || c.Overwrite < 0 || c.Overwrite >= 1 || c.Transient < 0 || c.Transient >= 1 {
		return fmt.Errorf("chaos: BadRate, Overwrite and Transient must be in [0, 1)")
	}
	if c.Timing.Window == 0 {
		if c.TimingScale <= 0 || c.TimingScale > 1 {
			return fmt.Errorf("chaos: TimingScale %v: want 0 < scale <= 1", c.TimingScale)
		}
		w := time.Duration(math.Ceil(float64(c.N)/c.Rate)) * time.Second
		c.Timing = FullTiming(w)
		if c.TimingScale != 1 {
			c.Timing = c.Timing.Scaled(c.TimingScale)
		}
	}
	if c.Batches == 0 {
		c.Batches = max(2, int(c.Timing.Window/(8*time.Second)))
	}
	if c.QuietFor == 0 {
		c.QuietFor = 90 * time.Second
	}
	if c.MaxWait == 0 {
		c.MaxWait = 15 * time.Minute
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return c.Timing.Validate()
}
