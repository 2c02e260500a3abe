// Command chaos runs the pipeline's chaos suite on the local stack (make chaos): see
// internal/chaos and docs/chaos.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"imgpipe/internal/chaos"
)

const usage = `chaos: the pipeline's chaos suite on the local stack.

Usage:
  chaos [-n N] [-seed SEED] [-small] [-keep] [-dir DIR] [-max-receive-count N]

Builds the analyzer, indexer, uploader and dlq-replay from the tree, starts the local stack
in this process (the Google emulators and fauxqs as child processes), two analyzers and two
indexers as processes of their own, and uploads N files with the uploader (1% bad: text
named .jpg, truncated, empty, too small, HEIC; 1% of the good images uploaded again,
different; keys with spaces, '+', unicode and deep folders) in batches spread over a fault
window of N/25 s. Meanwhile Vision fails 5% of calls with 500/503, answers 429 beyond a
quota of 40 calls/s and has one 30 s outage; every analyzer and indexer is SIGKILLed every
20-60 s (process group) and restarted; the Firestore emulator restarts once with its data
and the Pub/Sub emulator is cut off once (its stand-in for a restart). The schedule is drawn from the seed and printed with every fault's
time. After quiet it checks through the real clients that every good image is exactly one
document with its generator's dimensions and the object's ETag, no bad file has one, and
every bad file is once in the SQS DLQ with its reason (read with dlq-replay export); good
images found in a DLQ are replayed with dlq-replay replay and checked again. It prints a
report and exits 1 on any loss, duplicate or wrong result.

-small is the make test version: 8 uploads/s against a Vision quota of 6 calls/s (so that 429s
come whatever the machine's load), the fault timing scaled to a quarter, and at most 8 min
(instead of 15) of waiting for the pipeline to go quiet.

Exit status: 0 passed; 1 a loss, duplicate or wrong result, or the run failed; 2 usage.

Flags:
`

func main() {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	n := fs.Int("n", 10000, "files of the first upload, bad ones included")
	seed := fs.Int64("seed", 0, "seed of the fault schedule and the corpus (0: from the clock; printed)")
	small := fs.Bool("small", false, "the make test version: 8 uploads/s, Vision quota 6 calls/s, fault timing scaled to a quarter, at most 8 min of waiting for quiet")
	keep := fs.Bool("keep", false, "keep the work folder (binaries, corpus, logs, DLQ exports)")
	dir := fs.String("dir", "", "work folder (default: a new temporary folder)")
	maxReceives := fs.Int("max-receive-count", 0, "the queue's redrive count (0: the stack's default, 5); lower sends more good images to the DLQ and exercises the replay")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *n <= 0 || *maxReceives < 0 || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "chaos: -n must be positive, -max-receive-count not negative, and no arguments are taken")
		os.Exit(2)
	}
	if *seed == 0 {
		*seed = time.Now().UnixNano() % 1_000_000_000
	}
	cfg := chaos.Full(*n, *seed)
	if *small {
		cfg = chaos.Small(*n, *seed)
	}
	cfg.Keep, cfg.WorkDir, cfg.Out, cfg.MaxReceiveCount = *keep, *dir, os.Stdout, *maxReceives
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %v (seed %d)\n", err, *seed)
		os.Exit(1)
	}
	rep.Print(os.Stdout)
	if rep.Failed() {
		os.Exit(1)
	}
}
