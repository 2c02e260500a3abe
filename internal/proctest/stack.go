// Package proctest runs the pipeline's binaries as processes of their own against the local
// stack, itself started as a child process (`devstack up`), for the benchmarks (bench/) and
// the scale-out tests (e2e/scaleout). Every process runs in its own process group and dies
// with the test binary; the kernel's accounting of a process (CPU time, peak memory) is then
// the binary's alone.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { proctest.Main(m, "sqs,s3,pubsub,vision") }
//
// and in each test or benchmark st := proctest.Get(tb): the stack starts on first use, is
// shared by the package's tests and stops when they end. A missing prerequisite (node, Java,
// an emulator) skips the caller outside CI and fails it with CI=true.
package proctest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/internal/visionstandin"
)

// Stack is the local stack running as a child process and the binaries built for the run.
type Stack struct {
	Root string // module root
	Tmp  string // temp dir: binaries, state dir, logs
	Bin  string // folder with the analyzer, indexer and devstack binaries

	// Env is the stack's env file: what the binaries need to reach it.
	Env map[string]string

	S3   *s3.Client
	SQS  *sqs.Client
	HTTP *http.Client

	parts   string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the devstack process has exited
	waitErr error         // its exit status, valid once exited is closed
	stderr  *lineLog

	mu  sync.Mutex
	seq int // distinguishes the object keys of successive seedings
}

// missingError is `devstack up` failing on a missing prerequisite (node, Java, an emulator).
type missingError struct{ line string }

func (e *missingError) Error() string { return e.line }

// shared is the one stack of the test binary, started on first use and stopped by Main.
var shared struct {
	parts string
	once  sync.Once
	st    *Stack
	err   error
}

// Main runs the package's tests with a stack of the given parts (`devstack up --parts`),
// started by the first Get, stops it and exits with the tests' status.
func Main(m *testing.M, parts string) {
	shared.parts = parts
	code := m.Run()
	if shared.st != nil {
		if err := shared.st.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "proctest: stop the local stack: %v\n", err)
		}
		_ = os.RemoveAll(shared.st.Tmp)
	}
	os.Exit(code)
}

// Get returns the shared stack, starting it on first use. A missing prerequisite skips the
// caller outside CI and fails it in CI (CI=true).
func Get(tb testing.TB) *Stack {
	tb.Helper()
	if shared.parts == "" {
		tb.Fatal("proctest.Get called without proctest.Main in TestMain")
	}
	shared.once.Do(func() { shared.st, shared.err = start(shared.parts) })
	if err := shared.err; err != nil {
		var me *missingError
		if errors.As(err, &me) && !stacktest.InCI() {
			tb.Skipf("local stack unavailable (set CI=true to make this a failure): %v", err)
		}
		tb.Fatalf("start the local stack: %v", err)
	}
	return shared.st
}

func start(parts string) (*Stack, error) {
	root, err := devstack.RepoRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "imgpipe-proc-")
	if err != nil {
		return nil, err
	}
	st := &Stack{Root: root, Tmp: tmp, Bin: filepath.Join(tmp, "bin"), parts: parts, stderr: &lineLog{}}
	if err := st.build(); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	if err := st.up(); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	return st, nil
}

// Builds are the analyzer builds named by BENCH_ANALYZERS ("name=path,name=path,..."), in
// the order given: the benchmarks run each of their analyzer scenarios once per entry, one
// after the other on the one stack. A name may come again (with the same path), so that
// "a=X,b=Y,a=X,b=Y" measures two builds alternately in one run. Nil when it is not set.
func Builds() ([]Build, error) {
	v := os.Getenv("BENCH_ANALYZERS")
	if v == "" {
		return nil, nil
	}
	var out []Build
	paths := map[string]string{}
	for _, part := range strings.Split(v, ",") {
		name, path, ok := strings.Cut(part, "=")
		if !ok || name == "" || path == "" || strings.ContainsAny(name, "/ ") {
			return nil, fmt.Errorf("BENCH_ANALYZERS: %q is not name=path (a name without / or spaces)", part)
		}
		if p, seen := paths[name]; seen && p != path {
			return nil, fmt.Errorf("BENCH_ANALYZERS: %s names both %s and %s", name, p, path)
		}
		paths[name] = path
		out = append(out, Build{Name: name, Path: path})
	}
	return out, nil
}

// Build is an analyzer binary to run under a name (see Builds).
type Build struct {
	Name, Path string
}

// analyzerBinary is the file name in st.Bin of the analyzer build named build ("": the default one).
func analyzerBinary(build string) string {
	if build == "" {
		return "analyzer"
	}
	return "analyzer-" + build
}

// build compiles the analyzer, indexer and devstack commands into st.Bin. With
// BENCH_ANALYZER set, the analyzer binary it names is run instead of one built from this tree;
// BENCH_ANALYZERS adds the builds it names (see Builds).
func (st *Stack) build() error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build the binaries: %w", err)
	}
	if err := os.MkdirAll(st.Bin, 0o755); err != nil {
		return err
	}
	pkgs := []string{"./cmd/analyzer", "./cmd/indexer", "./cmd/devstack"}
	given := os.Getenv("BENCH_ANALYZER")
	if given != "" {
		pkgs = pkgs[1:]
	}
	cmd := exec.Command(goTool, append([]string{"build", "-o", st.Bin + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = st.Root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	if given != "" {
		abs, err := filepath.Abs(given)
		if err != nil {
			return err
		}
		if err := os.Symlink(abs, filepath.Join(st.Bin, "analyzer")); err != nil {
			return fmt.Errorf("BENCH_ANALYZER: %w", err)
		}
	}
	builds, err := Builds()
	if err != nil {
		return err
	}
	linked := map[string]bool{}
	for _, b := range builds {
		if linked[b.Name] {
			continue
		}
		linked[b.Name] = true
		abs, err := filepath.Abs(b.Path)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("BENCH_ANALYZERS: %w", err)
		}
		if err := os.Symlink(abs, filepath.Join(st.Bin, analyzerBinary(b.Name))); err != nil {
			return fmt.Errorf("BENCH_ANALYZERS: %w", err)
		}
	}
	return nil
}

// lineLog keeps a child's stderr lines.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// up starts `devstack up` in its own process group and waits until it reports readiness:
// `up` writes the env file, then the pid file, then prints "devstack: up" on stderr. The
// env file is read only after that line, so it is never read half-written.
func (st *Stack) up() error {
	stateDir := filepath.Join(st.Tmp, "state")
	cmd := exec.Command(filepath.Join(st.Bin, "devstack"), "up", "--parts", st.parts, "--state-dir", stateDir)
	cmd.Dir = st.Root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := os.Create(filepath.Join(st.Tmp, "devstack.stdout"))
	if err != nil {
		return err
	}
	defer stdout.Close() // the child holds its own copy
	cmd.Stdout = stdout
	pr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start devstack: %w", err)
	}
	st.cmd = cmd
	st.exited = make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			st.stderr.add(line)
			if !signalled && strings.HasPrefix(line, "devstack: up") {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
		st.waitErr = cmd.Wait()
		close(st.exited)
	}()

	select {
	case <-ready:
	case <-st.exited:
		out := st.stderr.String()
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "missing prerequisite:") {
				return &missingError{line: line}
			}
		}
		return fmt.Errorf("devstack up exited (%v) before it was ready:\n%s", st.waitErr, out)
	case <-time.After(3 * time.Minute):
		_ = st.stop()
		return fmt.Errorf("devstack up not ready after 3m:\n%s", st.stderr.String())
	}
	raw, err := os.ReadFile(filepath.Join(stateDir, "env"))
	if err != nil {
		_ = st.stop()
		return fmt.Errorf("read the stack's env file: %w", err)
	}
	st.Env, err = devstack.ParseEnv(raw)
	if err != nil {
		_ = st.stop()
		return err
	}
	want := []string{"AWS_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS", "AZURE_VISION_ENDPOINT",
		"IMGPIPE_BUCKET", "IMGPIPE_PREFIX", "IMGPIPE_QUEUE_URL", "IMGPIPE_DLQ_URL", "IMGPIPE_TOPIC"}
	if strings.Contains(st.parts, "firestore") || st.parts == "all" {
		want = append(want, "FIRESTORE_EMULATOR_HOST")
	}
	for _, name := range want {
		if st.Env[name] == "" {
			_ = st.stop()
			return fmt.Errorf("the stack's env file has no %s", name)
		}
	}
	// The test process's own Google clients (Firestore checks, Pub/Sub subscriptions) find
	// the emulators the way the binaries do.
	for _, name := range []string{"PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"} {
		if v := st.Env[name]; v != "" {
			if err := os.Setenv(name, v); err != nil {
				_ = st.stop()
				return err
			}
		}
	}
	creds := credentials.NewStaticCredentialsProvider(st.Env["AWS_ACCESS_KEY_ID"], st.Env["AWS_SECRET_ACCESS_KEY"], "")
	cfg := aws.Config{Region: st.Env["AWS_REGION"], Credentials: creds}
	st.S3 = s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(st.Env["AWS_ENDPOINT_URL_S3"])
		o.UsePathStyle = true
	})
	st.SQS = sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(st.Env["AWS_ENDPOINT_URL_SQS"]) })
	st.HTTP = &http.Client{Timeout: 10 * time.Second}
	// The bucket's notification configuration was validated with an s3:TestEvent sent to
	// the queue: remove it so that every scenario starts from an empty queue.
	if _, err := st.Drain(context.Background(), 3*time.Second); err != nil {
		_ = st.stop()
		return fmt.Errorf("drain the queue: %w", err)
	}
	return nil
}

// stop sends SIGTERM to the stack's process group, and SIGKILL after 10 s.
func (st *Stack) stop() error {
	if st.cmd == nil || st.cmd.Process == nil {
		return nil
	}
	pgid := st.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-st.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-st.exited
	return fmt.Errorf("devstack did not stop within 10s of SIGTERM; killed:\n%s", st.stderr.String())
}

// childEnv is this process's environment without any setting the binaries read from the
// environment, plus the stack's env file.
func (st *Stack) childEnv() []string { return ChildEnv(st.Env) }

// ChildEnv is this process's environment without any setting the pipeline's binaries read
// from the environment (IMGPIPE_, AWS_, AZURE_, GOOGLE_, OTEL_, PUBSUB_, FIRESTORE_,
// DLQ_REPLAY_), plus env.
func ChildEnv(env map[string]string) []string {
	vars := make([]devstack.EnvVar, 0, len(env))
	for k, v := range env {
		vars = append(vars, devstack.EnvVar{Name: k, Value: v})
	}
	return stacktest.ChildEnv(vars)
}

// QueueDepth returns the visible and in-flight message counts of the pipeline's queue.
func (st *Stack) QueueDepth(ctx context.Context) (visible, inFlight int, err error) {
	return st.depthOf(ctx, st.Env["IMGPIPE_QUEUE_URL"])
}

// DLQDepth returns the visible and in-flight message counts of the queue's DLQ.
func (st *Stack) DLQDepth(ctx context.Context) (visible, inFlight int, err error) {
	return st.depthOf(ctx, st.Env["IMGPIPE_DLQ_URL"])
}

func (st *Stack) depthOf(ctx context.Context, url string) (visible, inFlight int, err error) {
	out, err := st.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return 0, 0, err
	}
	visible, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	inFlight, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, inFlight, nil
}

// Drain receives and deletes messages until a receive of quiet finds none; it returns how
// many it removed.
func (st *Stack) Drain(ctx context.Context, quiet time.Duration) (int, error) {
	n := 0
	url := aws.String(st.Env["IMGPIPE_QUEUE_URL"])
	for {
		out, err := st.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: int32(quiet / time.Second), VisibilityTimeout: 30,
		})
		if err != nil {
			return n, err
		}
		if len(out.Messages) == 0 {
			return n, nil
		}
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(out.Messages))
		for i, m := range out.Messages {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		if _, err := st.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: url, Entries: entries}); err != nil {
			return n, err
		}
		n += len(out.Messages)
	}
}

// Object is one object Seed put into the bucket.
type Object struct {
	Key  string
	ETag string // as S3 answered the put, quotes removed
	Size int64
	// ContentKey identifies its bytes in the Vision stand-in's per-image statistics.
	ContentKey string
}

// Seed puts n objects made by body(i) under distinct keys below the drop prefix, in folder
// (one subfolder per call), with 16 concurrent puts, then waits until the queue holds exactly
// n messages. The queue must be empty before. It returns the objects in the order of i.
func (st *Stack) Seed(tb testing.TB, folder string, n int, ext string, body func(i int) ([]byte, error)) []Object {
	tb.Helper()
	return st.SeedMeta(tb, folder, n, ext, body, nil)
}

// SeedMeta is Seed with user metadata for each object (meta nil: none).
func (st *Stack) SeedMeta(tb testing.TB, folder string, n int, ext string, body func(i int) ([]byte, error), meta func(i int) map[string]string) []Object {
	tb.Helper()
	ctx := context.Background()
	if v, f, err := st.QueueDepth(ctx); err != nil || v+f != 0 {
		tb.Fatalf("queue not empty before seeding: visible=%d in flight=%d err=%v", v, f, err)
	}
	st.mu.Lock()
	st.seq++
	run := st.seq
	st.mu.Unlock()
	objs := make([]Object, n)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	idx := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range idx {
				key := fmt.Sprintf("%s%s/run%03d/%06d.%s", st.Env["IMGPIPE_PREFIX"], folder, run, i, ext)
				b, err := body(i)
				if err == nil {
					var out *s3.PutObjectOutput
					in := &s3.PutObjectInput{Bucket: aws.String(st.Env["IMGPIPE_BUCKET"]), Key: aws.String(key), Body: bytes.NewReader(b)}
					if meta != nil {
						in.Metadata = meta(i)
					}
					out, err = st.S3.PutObject(ctx, in)
					if err == nil {
						objs[i] = Object{Key: key, ETag: strings.Trim(aws.ToString(out.ETag), `"`), Size: int64(len(b)),
							ContentKey: visionstandin.ContentKey(b)}
					}
				}
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("put object %d: %w", i, err)
					}
					errMu.Unlock()
				}
			}
		})
	}
	for i := range n {
		idx <- i
	}
	close(idx)
	wg.Wait()
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		v, f, err := st.QueueDepth(ctx)
		if err == nil && v == n && f == 0 {
			return objs
		}
		if err == nil && v+f > n {
			tb.Fatalf("queue holds %d visible + %d in flight, more than the %d objects put", v, f, n)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("queue holds %d visible + %d in flight after 2m, want %d (err %v)", v, f, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
