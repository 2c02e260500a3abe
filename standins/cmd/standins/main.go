// Command standins serves one of the project's own stand-ins on 127.0.0.1, for the local
// stack (internal/devstack starts it as a child process):
//
//	standins s3 [flags]      S3 with event notifications into SQS (package s3server)
//	standins vision [flags]  Azure AI Vision with fault injection (package visionserver)
//
// -h or --help after a stand-in's name prints its flags on standard output and exits 0; a bad
// command line exits 2.
//
// Once it listens it prints one line, "<name> stand-in listening on http://127.0.0.1:PORT", on
// standard output; its log goes to standard error as JSON. SIGTERM or SIGINT stops it (obs.ShutdownSignals): the
// S3 stand-in first delivers the event messages it holds.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"imgpipe/internal/visionstandin"
	"imgpipe/pkg/obs"
	"imgpipe/standins/s3server"
	"imgpipe/standins/visionserver"
)

// stopGrace bounds the stop after a signal; devstack waits 5 s before it kills.
const stopGrace = 4 * time.Second

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	if code := exitCode(err); code != 0 {
		fmt.Fprintln(os.Stderr, "standins:", err)
		os.Exit(code)
	}
}

// exitCode is the status run's outcome exits with: 0 once served or when -h or --help asked
// for a stand-in's usage (flag.ErrHelp), 2 for anything else.
func exitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// parseFlags parses args into fs. The usage that -h or --help asks for goes to stdout, and
// fs's messages about a bad command line to stderr.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var msg bytes.Buffer
	fs.SetOutput(&msg)
	err := fs.Parse(args)
	out := stderr
	if errors.Is(err, flag.ErrHelp) {
		out = stdout
	}
	_, _ = msg.WriteTo(out)
	fs.SetOutput(stderr)
	return err
}

const usage = `usage: standins s3 [flags] | standins vision [flags] (-h for the flags of each)`

// run serves the stand-in args name until a signal or the end of parent.
func run(parent context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	var serve func(context.Context, *zap.Logger, []string, io.Writer, io.Writer) error
	switch args[0] {
	case "s3":
		serve = runS3
	case "vision":
		serve = runVision
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown stand-in %q; %s", args[0], usage)
	}
	log, err := obs.NewLogger(args[0]+"-standin", "info")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	sig, stop := obs.ShutdownSignals(log)
	defer stop()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	defer context.AfterFunc(sig, cancel)()
	return serve(ctx, log, args[1:], stdout, stderr)
}

// list is a repeatable flag that also takes comma-separated values.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }
func (l *list) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*l = append(*l, x)
		}
	}
	return nil
}

func runS3(ctx context.Context, log *zap.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("standins s3", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on (port 0: a free port)")
	region := fs.String("region", "us-east-1", "awsRegion of event records")
	account := fs.String("account", "000000000000", "bucket owner account in event records")
	sqsEndpoint := fs.String("sqs-endpoint", "", "base URL of the SQS service events go to (none: notification configurations are refused)")
	var creds list
	fs.Var(&creds, "credential", "ACCESS_KEY_ID=SECRET whose presigned URLs are verified (repeatable; none: presigned URLs are not checked)")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("s3: unexpected arguments %q", fs.Args())
	}
	credentials := map[string]string{}
	for _, c := range creds {
		id, secret, ok := strings.Cut(c, "=")
		if !ok || id == "" || secret == "" {
			return fmt.Errorf("s3: -credential %q: want ACCESS_KEY_ID=SECRET", c)
		}
		credentials[id] = secret
	}
	run, err := s3server.Start(ctx, *addr, &s3server.Options{
		Region: *region, AccountID: *account, SQSEndpoint: *sqsEndpoint,
		Credentials: credentials, Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "s3 stand-in listening on %s\n", run.URL())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	return run.Close(sctx)
}

func runVision(ctx context.Context, _ *zap.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("standins vision", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on (port 0: a free port)")
	var keys, tokens list
	fs.Var(&keys, "key", "accepted Ocp-Apim-Subscription-Key (repeatable; default "+visionstandin.DefaultKey+")")
	fs.Var(&tokens, "token", `accepted "Authorization: Bearer" token (repeatable; default none)`)
	faults := fs.String("faults", "", "faults in force from the start and after a reset, as the JSON document of PUT "+visionstandin.AdminFaultsPath)
	clock := fs.String("manual-clock", "", "RFC 3339 time: run rate limits and outage windows on a clock that starts there and moves only by PUT "+visionstandin.AdminClockPath)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("vision: unexpected arguments %q", fs.Args())
	}
	opts := &visionserver.Options{Keys: keys, Tokens: tokens}
	if *faults != "" {
		dec := json.NewDecoder(strings.NewReader(*faults))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&opts.Faults); err != nil {
			return fmt.Errorf("vision: -faults: %w", err)
		}
	}
	if *clock != "" {
		t, err := time.Parse(time.RFC3339Nano, *clock)
		if err != nil {
			return fmt.Errorf("vision: -manual-clock: %w", err)
		}
		opts.ManualClock = t
	}
	// The server stops when its context ends; the signal ends it through Shutdown below.
	run, err := visionserver.Start(context.Background(), *addr, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "vision stand-in listening on %s\n", run.URL)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	return run.Shutdown(sctx)
}
