package devstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"sync"
	"time"

	"imgpipe/internal/visionstandin"
)

// The project's own stand-ins, S3 with event notifications and Azure AI Vision, live in a
// module of their own (standins/, module imgpipe/standins) so that what only they need
// (gofakes3 and its dependencies) never becomes a requirement of the product's module. They
// run as child processes of one binary, standins/cmd/standins, which StandinsBinary builds
// once per process with `go build` (the Go build cache keeps that cheap after the first time).
const envStandinsBin = "DEVSTACK_STANDINS" // a prebuilt standins binary to use instead

var standinsBuild struct {
	mu   sync.Mutex
	path string // set once a build succeeded
}

// StandinsBinary returns the path of the stand-ins' binary: $DEVSTACK_STANDINS if set, else
// the standins module of this checkout built into the user's cache folder (one per checkout).
// The first call builds it (a failed build is tried again by the next call); ctx bounds the
// build.
func StandinsBinary(ctx context.Context) (string, error) {
	if p := os.Getenv(envStandinsBin); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", &MissingError{What: "the stand-ins' binary", Hint: envStandinsBin + "=" + p + ": " + err.Error()}
		}
		return p, nil
	}
	standinsBuild.mu.Lock()
	defer standinsBuild.mu.Unlock()
	if standinsBuild.path == "" {
		p, err := buildStandins(ctx)
		if err != nil {
			return "", err
		}
		standinsBuild.path = p
	}
	return standinsBuild.path, nil
}

func buildStandins(ctx context.Context) (string, error) {
	dir, err := standinsDir()
	if err != nil {
		return "", err
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, serr := os.Stat(goCmd); serr != nil {
			return "", &MissingError{What: "go", Hint: "the stand-ins are built from source: install Go and put it on PATH"}
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	sum := sha256.Sum256([]byte(dir))
	out := filepath.Join(cache, "imgpipe-standins", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", fmt.Errorf("build the stand-ins: %w", err)
	}
	// Several test processes build at once: each into a file of its own, renamed into place
	// (a rename over a binary another process runs is safe).
	tmp := filepath.Join(out, fmt.Sprintf("standins.%d.tmp", os.Getpid()))
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", tmp, "./cmd/standins")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("build the stand-ins (go build ./cmd/standins in %s): %w\n%s", dir, err, b)
	}
	bin := filepath.Join(out, "standins")
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("build the stand-ins: %w", err)
	}
	return bin, nil
}

// standinsDir finds the standins module of the checkout the working directory is in.
func standinsDir() (string, error) {
	root, err := RepoRoot()
	if err == nil {
		dir := filepath.Join(root, "standins")
		if _, err = os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
	}
	return "", &MissingError{What: "the stand-ins' source (standins/go.mod)",
		Hint: "run from inside the project checkout, or set " + envStandinsBin + " to a binary built from standins/cmd/standins"}
}

// Standin is one of the project's own stand-ins running as a child process.
type Standin struct {
	URL string // http://127.0.0.1:PORT
	p   *process
	tmp string // the log folder StartS3/StartVision made, removed by Close
}

// Close stops the stand-in: SIGTERM to its process group (the S3 stand-in then delivers the
// event messages it holds), SIGKILL after 5 s; then it removes the log folder it made when
// none was given. Safe to call more than once.
func (s *Standin) Close() {
	s.p.stop(stopGrace)
	if s.tmp != "" {
		_ = os.RemoveAll(s.tmp)
	}
}

// PID is the stand-in's process ID (it leads its own process group).
func (s *Standin) PID() int { return s.p.cmd.Process.Pid }

// S3Options configures StartS3. A nil *S3Options is a stand-in on a free port without
// notifications and without presigned URL checks.
type S3Options struct {
	Port        int               // zero: a free port
	Region      string            // awsRegion of event records; default us-east-1
	AccountID   string            // bucket owner of event records; default 000000000000
	SQSEndpoint string            // where events go; none: notification configurations are refused
	Credentials map[string]string // access key ID -> secret whose presigned URLs are verified
	LogDir      string            // where its log goes; default a new temporary folder
}

// VisionOptions configures StartVision. A nil *VisionOptions is a stand-in on a free port
// accepting visionstandin.DefaultKey, without faults.
type VisionOptions struct {
	Port   int
	Keys   []string // accepted subscription keys; default visionstandin.DefaultKey
	Tokens []string // accepted bearer tokens; default none
	Faults visionstandin.Faults
	// ManualClock, when not zero, runs rate limits and outage windows on a clock that starts
	// there and moves only through visionstandin.Client.PutClock.
	ManualClock time.Time
	LogDir      string
}

var standinListening = regexp.MustCompile(`stand-in listening on (http://127\.0\.0\.1:\d+)`)

// StartS3 starts the S3 stand-in (with event notifications into SQS) as a child process.
func StartS3(ctx context.Context, opts *S3Options) (*Standin, error) {
	o := S3Options{}
	if opts != nil {
		o = *opts
	}
	args := []string{"s3", "-addr", fmt.Sprintf("127.0.0.1:%d", o.Port)}
	if o.Region != "" {
		args = append(args, "-region", o.Region)
	}
	if o.AccountID != "" {
		args = append(args, "-account", o.AccountID)
	}
	if o.SQSEndpoint != "" {
		args = append(args, "-sqs-endpoint", o.SQSEndpoint)
	}
	ids := make([]string, 0, len(o.Credentials))
	for id := range o.Credentials {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		args = append(args, "-credential", id+"="+o.Credentials[id])
	}
	return startStandin(ctx, "S3 stand-in", o.LogDir, "s3.log", args)
}

// StartVision starts the Azure AI Vision stand-in as a child process.
func StartVision(ctx context.Context, opts *VisionOptions) (*Standin, error) {
	o := VisionOptions{}
	if opts != nil {
		o = *opts
	}
	if err := o.Faults.Validate(); err != nil {
		return nil, fmt.Errorf("vision stand-in faults: %w", err)
	}
	args := []string{"vision", "-addr", fmt.Sprintf("127.0.0.1:%d", o.Port)}
	for _, k := range o.Keys {
		args = append(args, "-key", k)
	}
	for _, t := range o.Tokens {
		args = append(args, "-token", t)
	}
	b, err := json.Marshal(o.Faults)
	if err != nil {
		return nil, fmt.Errorf("vision stand-in faults: %w", err)
	}
	if string(b) != "{}" {
		args = append(args, "-faults", string(b))
	}
	if !o.ManualClock.IsZero() {
		args = append(args, "-manual-clock", o.ManualClock.UTC().Format(time.RFC3339Nano))
	}
	return startStandin(ctx, "Vision stand-in", o.LogDir, "vision.log", args)
}

func startStandin(ctx context.Context, name, logDir, logName string, args []string) (*Standin, error) {
	bin, err := StandinsBinary(ctx)
	if err != nil {
		return nil, err
	}
	tmp := ""
	if logDir == "" {
		if logDir, err = os.MkdirTemp("", "imgpipe-standin-"); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		tmp = logDir
	}
	p, err := startProcess(name, filepath.Join(logDir, logName), nil, append([]string{bin}, args...)...)
	if err != nil {
		return nil, err
	}
	url, err := waitLogLine(ctx, p, standinListening)
	if err != nil {
		p.stop(stopGrace) // its log stays: the error names it
		return nil, err
	}
	return &Standin{URL: url, p: p, tmp: tmp}, nil
}
