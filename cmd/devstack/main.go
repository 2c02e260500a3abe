// Command devstack brings up the local stand-ins for AWS, Google Cloud and Azure on
// loopback, creates the pipeline's resources on them and prints the environment the pipeline's
// binaries need.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"imgpipe/internal/devstack"
	"imgpipe/internal/visionstandin"
)

const usage = `devstack: the pipeline's three clouds on one machine, on 127.0.0.1.

Usage:
  devstack up   [flags]   start the stand-ins, create the resources, print the environment,
                            and run until Ctrl-C, SIGTERM or 'devstack down'
  devstack down [flags]   stop a stack started by 'up' (from another shell)
  devstack env  [flags]   print the environment of the running stack as shell exports

Stand-ins: SQS = fauxqs (npm, pinned in devstack/fauxqs), S3 = the project's S3 stand-in
with event notifications to SQS (bucket lifecycle expiration runs only on demand, at
POST $AWS_ENDPOINT_URL_S3/_standin/lifecycle?at=TIME; POST .../_standin/flush waits for the
events sent so far), Pub/Sub and Firestore = Google's emulators
(Debian packages google-cloud-cli-pubsub-emulator and -firestore-emulator) behind the project's
gRPC fronts (a call whose client went away is half-closed, not cancelled: the Pub/Sub emulator
mishandles cancelled calls and would keep handing messages to a dead subscriber), Azure AI
Vision = the project's Vision stand-in with fault injection at {vision}/admin/faults. The
project's two stand-ins are built from standins/ (their own Go module) on first use and run as
child processes (DEVSTACK_STANDINS=PATH: a prebuilt binary of standins/cmd/standins).

In another shell:  eval "$(go run ./cmd/devstack env)"

Flags:
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		printFlags(os.Stderr)
		os.Exit(2)
	}
	var err error
	switch cmd := os.Args[1]; cmd {
	case "up":
		err = up(os.Args[2:])
	case "down":
		err = down(os.Args[2:])
	case "env":
		err = env(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
		printFlags(os.Stdout)
		return
	default:
		err = fmt.Errorf("unknown command %q (want up, down or env)", cmd)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "devstack: %v\n", err)
		os.Exit(1)
	}
}

type settings struct {
	stateDir string
	parts    string
	ports    devstack.Ports
	timeout  time.Duration

	// Vision stand-in faults, as text for the stand-in's own parsers.
	latency, rateLimit, retryAfter, outage string
	transientRate                          float64
	badKey                                 bool

	noFronts bool
}

// faults turns the fault flags into the stand-in's Faults.
func (s *settings) faults() (visionstandin.Faults, error) {
	var f visionstandin.Faults
	var err error
	if s.latency != "" {
		if f.Latency, err = visionstandin.ParseLatency(s.latency); err != nil {
			return f, fmt.Errorf("invalid --vision-latency: %w", err)
		}
	}
	if s.rateLimit != "" {
		if f.RateLimit, err = visionstandin.ParseRateLimit(s.rateLimit); err != nil {
			return f, fmt.Errorf("invalid --vision-rate-limit: %w", err)
		}
	}
	if s.retryAfter != "" {
		if f.RetryAfter, err = visionstandin.ParseRetryAfterMode(s.retryAfter); err != nil {
			return f, fmt.Errorf("invalid --vision-retry-after: %w", err)
		}
	}
	if s.outage != "" {
		o, err := visionstandin.ParseOutage(s.outage)
		if err != nil {
			return f, fmt.Errorf("invalid --vision-outage: %w", err)
		}
		f.Outages = []visionstandin.Outage{o}
	}
	f.Transient.Rate = s.transientRate
	f.BadKey = s.badKey
	if err := f.Validate(); err != nil {
		return f, fmt.Errorf("invalid Vision faults: %w", err)
	}
	return f, nil
}

func newFlags(name string, s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&s.stateDir, "state-dir", envOr("DEVSTACK_STATE_DIR", ".stack"),
		"folder for the running stack's pid, env file and logs (env DEVSTACK_STATE_DIR)")
	fs.StringVar(&s.parts, "parts", "all", "parts to start: all, or a comma list of sqs,s3,pubsub,firestore,vision")
	fs.IntVar(&s.ports.SQS, "sqs-port", 0, "SQS port (0 = free port)")
	fs.IntVar(&s.ports.S3, "s3-port", 0, "S3 port (0 = free port)")
	fs.IntVar(&s.ports.PubSub, "pubsub-port", 0, "Pub/Sub port clients use, its front's (0 = free port)")
	fs.IntVar(&s.ports.Firestore, "firestore-port", 0, "Firestore port clients use, its front's (0 = free port)")
	fs.BoolVar(&s.noFronts, "no-fronts", false, "clients talk to the Pub/Sub and Firestore emulators directly, without their gRPC fronts (the Pub/Sub emulator then strands messages of subscribers that die)")
	fs.IntVar(&s.ports.Vision, "vision-port", 0, "Vision stand-in port (0 = free port)")
	fs.DurationVar(&s.timeout, "timeout", 2*time.Minute, "how long 'up' waits for every part to answer, and 'down' for the stack to stop")
	fs.StringVar(&s.latency, "vision-latency", "", `Vision stand-in latency: "100ms", "uniform:50ms-200ms", "normal:100ms,20ms"`)
	fs.Float64Var(&s.transientRate, "vision-transient-rate", 0, "fraction (0..1) of Vision calls failing with 500 or 503")
	fs.StringVar(&s.rateLimit, "vision-rate-limit", "", `Vision token bucket answering 429 beyond it: "10/s", "20/m,burst=3"`)
	fs.StringVar(&s.retryAfter, "vision-retry-after", "", "header on 429s: none, seconds, http-date, retry-after-ms, x-ms-retry-after-ms")
	fs.StringVar(&s.outage, "vision-outage", "", `Vision outage window from start: "30s", "10s-40s", "drop:5s" (connections dropped)`)
	fs.BoolVar(&s.badKey, "vision-bad-key", false, "Vision answers 401 to every call")
	return fs
}

func printFlags(w io.Writer) {
	fs := newFlags("devstack", &settings{})
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func parse(name string, args []string) (*settings, error) {
	s := &settings{}
	fs := newFlags(name, s)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return s, nil
}

func up(args []string) error {
	s, err := parse("up", args)
	if err != nil {
		return err
	}
	parts, err := devstack.ParseParts(s.parts)
	if err != nil {
		return err
	}
	if pid, alive := runningPID(s.stateDir); alive {
		return fmt.Errorf("a stack is already running (pid %d, state in %s); stop it with 'devstack down'", pid, s.stateDir)
	}
	if err := os.MkdirAll(s.stateDir, 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	startCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	logDir := filepath.Join(s.stateDir, "logs")
	fmt.Fprintf(os.Stderr, "devstack: starting %s (logs in %s)\n", parts, logDir)
	faults, err := s.faults()
	if err != nil {
		return err
	}
	st, err := devstack.Start(startCtx, &devstack.Options{Parts: parts, Ports: s.ports, LogDir: logDir, VisionFaults: faults, NoFronts: s.noFronts})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "devstack: stopping")
		closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = st.Close(closeCtx)
		_ = os.Remove(filepath.Join(s.stateDir, "pid"))
		_ = os.Remove(filepath.Join(s.stateDir, "env"))
	}()
	boot, err := st.Bootstrap(startCtx, devstack.Resources{})
	if err != nil {
		return err
	}
	var b strings.Builder
	if err := devstack.WriteEnv(&b, st.Env(boot)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.stateDir, "env"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.stateDir, "pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	fmt.Print(b.String())
	fmt.Fprintf(os.Stderr, "devstack: up; Vision fault injection at %s/admin/faults; Ctrl-C or 'devstack down' stops it\n", st.VisionEndpoint)
	<-ctx.Done()
	return nil
}

// runningPID reads the pid file and reports whether that process is alive.
func runningPID(stateDir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(stateDir, "pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}

func down(args []string) error {
	s, err := parse("down", args)
	if err != nil {
		return err
	}
	pid, alive := runningPID(s.stateDir)
	if !alive {
		fmt.Fprintf(os.Stderr, "devstack: no stack is running (no live pid in %s)\n", s.stateDir)
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(s.timeout)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			fmt.Fprintf(os.Stderr, "devstack: stopped (pid %d)\n", pid)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("stack (pid %d) still running after %s", pid, s.timeout)
}

func env(args []string) error {
	s, err := parse("env", args)
	if err != nil {
		return err
	}
	if _, alive := runningPID(s.stateDir); !alive {
		return errors.New("no stack is running; start one with 'devstack up'")
	}
	b, err := os.ReadFile(filepath.Join(s.stateDir, "env"))
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}
