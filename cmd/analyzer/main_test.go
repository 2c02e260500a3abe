package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/internal/visionstandin"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/samples"
)

func TestMain(m *testing.M) {
	stacktest.Main(m, devstack.SQS|devstack.S3|devstack.PubSub|devstack.Vision)
}

// required are the settings without defaults, so that a test can vary one other setting.
var required = []string{
	"--queue-url", "http://127.0.0.1:1/000000000000/q", "--dlq-url", "http://127.0.0.1:1/000000000000/dlq",
	"--project", "p", "--topic", "t", "--vision-endpoint", "http://127.0.0.1:2", "--vision-key", "k",
}

func parse(args ...string) error {
	set := newSet(&settings{})
	set.SetLookup(func(string) (string, bool) { return "", false })
	return set.Parse(append(append([]string{}, required...), args...))
}

// TestDurationsSQSTakes: every duration that reaches SQS is checked at start against what SQS
// takes (whole seconds; a visibility timeout from 1 s to 12 h, a long-poll wait up to 20 s),
// so that a sub-second visibility timeout never makes every heartbeat release its message.
func TestDurationsSQSTakes(t *testing.T) {
	checkSettings(t, []settingCase{
		{[]string{"--visibility-timeout", "500ms"}, "--visibility-timeout"},
		{[]string{"--visibility-timeout", "0s"}, "--visibility-timeout"},
		{[]string{"--visibility-timeout", "1500ms"}, "--visibility-timeout"},
		{[]string{"--visibility-timeout", "12h0m1s"}, "--visibility-timeout"},
		{[]string{"--visibility-timeout", "1s"}, ""},
		{[]string{"--visibility-timeout", "12h"}, ""},
		{[]string{"--wait-time", "21s"}, "--wait-time"},
		{[]string{"--wait-time", "-1s"}, "--wait-time"},
		{[]string{"--wait-time", "2500ms"}, "--wait-time"},
		{[]string{"--wait-time", "0s"}, ""},
		{[]string{"--breaker-cooldown", "13h"}, "--breaker-cooldown"},
		{[]string{"--breaker-cooldown", "300ms"}, ""}, // the breaker's own clock; at least 1 s reaches SQS
		{[]string{"--s3-timeout", "0s"}, "--s3-timeout"},
	})
}

// syncBuffer is a bytes.Buffer safe for a child's output and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// build compiles this command into a temporary folder.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "analyzer")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startBinary starts bin in its own process group; exited closes when it has exited, and
// *waitErr is then its exit. The test's cleanup kills it if it is still running.
func startBinary(t *testing.T, bin string, env []string, stdout, stderr io.Writer, args ...string) (cmd *exec.Cmd, exited chan struct{}, waitErr *error) {
	t.Helper()
	cmd = exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitErr, exited = new(error), make(chan struct{})
	go func() { *waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	return cmd, exited, waitErr
}

// TestStderrIsJSON runs the analyzer binary at debug level on a small image, a large one
// (two ranged S3 reads) and a non-image, and checks that every line it writes is JSON: the
// SDKs' own log lines go through zap or nowhere.
func TestStderrIsJSON(t *testing.T) {
	st := stacktest.Get(t)
	res := stacktest.Bootstrap(t, st, devstack.Resources{VisibilityTimeout: 30 * time.Second})
	bin := build(t)
	ctx := context.Background()
	s3c, sqsc := st.NewS3Client(), st.NewSQSClient()
	small, err := samples.Image(31000, 120, 90, "png")
	if err != nil {
		t.Fatal(err)
	}
	large, err := samples.Image(31001, 400, 300, "bmp")
	if err != nil {
		t.Fatal(err)
	}
	for key, body := range map[string][]byte{"small.png": small, "large.bmp": large, "notes.jpg": []byte("not an image")} {
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(res.Bucket), Key: aws.String(res.Prefix + key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr syncBuffer
	cmd, exited, waitErr := startBinary(t, bin, stacktest.ChildEnv(st.Env(res)), &stdout, &stderr,
		"--log-level", "debug", "--metrics-addr", "127.0.0.1:0", "--wait-time", "1s", "--workers", "2")
	// Four messages: the bucket's test event and three objects. Done once the queue is empty
	// and the non-image is in the DLQ.
	stacktest.WaitFor(t, "the queue drained", 90*time.Second, func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("analyzer exited early: %v\n%s", *waitErr, stderr.String())
		default:
		}
		n, err := depth(ctx, sqsc, res.QueueURL)
		if err != nil {
			return false, err.Error()
		}
		d, err := depth(ctx, sqsc, res.DLQURL)
		if err != nil {
			return false, err.Error()
		}
		return n == 0 && d == 1, fmt.Sprintf("%d on the queue, %d on the DLQ", n, d)
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if *waitErr != nil {
			t.Errorf("analyzer exit: %v", *waitErr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("analyzer did not stop within 60 s of SIGTERM")
	}
	lines := 0
	published := 0
	for _, line := range strings.Split(stderr.String()+stdout.String(), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		lines++
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		if entry["msg"] == "published" && entry["analysis_event"] == "created" { // the non-image publishes its key's removal
			published++
		}
	}
	if published != 2 {
		t.Errorf("%d lines say published, want 2 (small.png and large.bmp): the run did not do its work", published)
	}
	t.Logf("%d log lines, all JSON", lines)
}

// depth is the number of messages on the queue, visible or in flight.
func depth(ctx context.Context, c *sqs.Client, url string) (int, error) {
	out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	}})
	if err != nil {
		return 0, err
	}
	total := 0
	for _, v := range out.Attributes {
		n, _ := strconv.Atoi(v)
		total += n
	}
	return total, nil
}

// TestREADMEDocumentsEverySetting keeps the README's settings table true to the flags.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if missing := newSet(&settings{}).Undocumented(string(readme)); len(missing) > 0 {
		t.Errorf("README.md does not mention %v", missing)
	}
}

func TestCredentialChoice(t *testing.T) {
	fed := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(fed, []byte("eyJ.federated.sig"), 0o600); err != nil {
		t.Fatal(err)
	}
	wi := func(s *settings) { s.federatedFile, s.azureTenant, s.azureClient = fed, "tenant-1", "client-1" }
	cases := []struct {
		name    string
		set     func(*settings)
		want    string // in the credential's description
		wantErr string
	}{
		{"key", func(s *settings) { s.visionKey = "k3y-secret" }, "KeyCredential", ""},
		{"workload identity", wi, "workload identity federation, tenant tenant-1, client client-1", ""},
		{"workload identity without tenant", func(s *settings) { wi(s); s.azureTenant = "" }, "", "--azure-tenant-id (AZURE_TENANT_ID)"},
		{"workload identity without client", func(s *settings) { wi(s); s.azureClient = "" }, "", "--azure-client-id (AZURE_CLIENT_ID)"},
		{"workload identity and a key", func(s *settings) { wi(s); s.visionKey = "k" }, "", "give exactly one"},
		{"workload identity, plain-http authority", func(s *settings) { wi(s); s.authority = "http://login.example" }, "", "https"},
		{"none", func(*settings) {}, "", "give exactly one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &settings{}
			tc.set(s)
			c, err := credential(s)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(c); !strings.Contains(got, tc.want) || strings.Contains(got, "k3y-secret") || strings.Contains(got, "federated.sig") {
				t.Fatalf("credential %q, want one saying %q and no secret", got, tc.want)
			}
		})
	}
}

// TestSecondSIGTERMIgnored runs the analyzer binary with an image in its Vision call and
// sends SIGTERM again and again until it exits: the first starts the drain, every later one is
// logged and ignored, so the in-flight image is still published, the drain and the closes run
// to their end (the profiles written at exit included) and the exit code is 0.
func TestSecondSIGTERMIgnored(t *testing.T) {
	st := stacktest.Get(t)
	res := stacktest.Bootstrap(t, st, devstack.Resources{VisibilityTimeout: 30 * time.Second})
	if err := st.VisionServer.SetFaults(visionstandin.Faults{Latency: visionstandin.Latency{Fixed: visionstandin.Duration(3 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.VisionServer.SetFaults(visionstandin.Faults{}) })
	bin := build(t)
	ctx := context.Background()
	s3c, sqsc := st.NewS3Client(), st.NewSQSClient()
	img, err := samples.Image(31100, 120, 90, "png")
	if err != nil {
		t.Fatal(err)
	}
	profiles := t.TempDir()
	var stderr syncBuffer
	cmd, exited, waitErr := startBinary(t, bin, stacktest.ChildEnv(st.Env(res)), &stderr, &stderr,
		"--metrics-addr", "127.0.0.1:0", "--wait-time", "1s", "--workers", "1", "--profile-dir", profiles)
	// The bucket's test event first, so that the image's message is the one left in flight.
	stacktest.WaitFor(t, "the analyzer ready, its queue empty", 60*time.Second, func() (bool, string) {
		n, err := depth(ctx, sqsc, res.QueueURL)
		if err != nil {
			return false, err.Error()
		}
		return n == 0 && strings.Contains(stderr.String(), "analyzer starting"), fmt.Sprintf("%d on the queue", n)
	})
	key := res.Prefix + "slow.png"
	calls0 := st.VisionServer.Stats().Calls
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(res.Bucket), Key: aws.String(key), Body: bytes.NewReader(img)}); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, "the image in its Vision call", 60*time.Second, func() (bool, string) {
		return st.VisionServer.Stats().Calls > calls0, "no Vision call yet" // counted as it arrives, before the latency
	})
	// SIGTERM every 5 ms until the process exits (bounded by the drain's 25 s and the closes).
	stopAt := time.After(90 * time.Second)
	sent := 0
signals:
	for {
		select {
		case <-exited:
			break signals
		case <-stopAt:
			t.Fatalf("analyzer did not exit within 90 s; %d SIGTERMs sent\n%s", sent, stderr.String())
		case <-time.After(5 * time.Millisecond):
			if err := cmd.Process.Signal(syscall.SIGTERM); err == nil {
				sent++
			}
		}
	}
	logs := stderr.String()
	if *waitErr != nil {
		t.Fatalf("analyzer exit after %d SIGTERMs: %v (killed mid-shutdown?)\n%s", sent, *waitErr, logs)
	}
	for _, want := range []string{`"signal received; shutting down"`, `"signal received again during shutdown; ignored`, `"msg":"published"`, `"msg":"drained"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("no log line %s after %d SIGTERMs\n%s", want, sent, logs)
		}
	}
	for _, f := range []string{obs.CPUProfile, obs.AllocsProfile} {
		matches, _ := filepath.Glob(filepath.Join(profiles, "*", f))
		direct, _ := filepath.Glob(filepath.Join(profiles, f))
		if len(matches)+len(direct) == 0 {
			t.Errorf("no %s written at exit", f)
		}
	}
	t.Logf("%d SIGTERMs sent during the shutdown", sent)
}
