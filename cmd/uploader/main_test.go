package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/samples"
	"imgpipe/pkg/uploader"
)

func TestMain(m *testing.M) {
	stacktest.Main(m, devstack.S3|devstack.SQS|devstack.Firestore)
}

// The command line as cobra and pkg/config read it: flags after the paths, a boolean flag
// that takes no value (the path after it stays a path), "--", the environment, and a flag
// beating its environment variable. Each case ends on a setting error, so no case reaches S3.
func TestCommandLine(t *testing.T) {
	t.Setenv("IMGPIPE_BUCKET", "")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // in stderr, the whole of the one line after "uploader: "
	}{
		{"flag after a path", nil, []string{"put", "x", "--bucket", "b", "--concurrency", "0"}, "invalid setting --concurrency (IMGPIPE_UPLOAD_CONCURRENCY): must be between 1 and 512, got 0"},
		{"boolean before a path", nil, []string{"put", "--json", "x", "--force", "y", "--bucket=b", "--concurrency", "0"}, "invalid setting --concurrency"},
		// After "--" everything is a path: three DIRs, not a bad --settle.
		{"after --", nil, []string{"watch", "--bucket", "b", "--", "--settle", "0", "dir"}, "watch takes one DIR"},
		{"environment", map[string]string{"IMGPIPE_BUCKET": "b", "IMGPIPE_UPLOAD_CONCURRENCY": "0"}, []string{"put", "x"}, "invalid setting --concurrency (IMGPIPE_UPLOAD_CONCURRENCY)"},
		{"flag beats environment", map[string]string{"IMGPIPE_BUCKET": "b", "IMGPIPE_UPLOAD_CONCURRENCY": "0"}, []string{"put", "x", "--concurrency", "4", "--part-size", "1MiB"}, "invalid setting --part-size (IMGPIPE_UPLOAD_PART_SIZE)"},
		{"bad environment value", map[string]string{"IMGPIPE_UPLOAD_CONCURRENCY": "many"}, []string{"put", "x"}, `invalid IMGPIPE_UPLOAD_CONCURRENCY="many": not an integer`},
		{"bad flag value", nil, []string{"put", "x", "--concurrency", "many"}, `invalid argument "many" for "--concurrency" flag: not an integer (see uploader put --help)`},
		{"unknown flag", nil, []string{"watch", "dir", "--bogus"}, "unknown flag: --bogus (see uploader watch --help)"},
		{"unknown flag before the command", nil, []string{"--bogus", "put"}, "unknown flag: --bogus"},
		{"flag of another command", nil, []string{"load", "--force"}, "unknown flag: --force (see uploader load --help)"},
		{"one dash", nil, []string{"put", "x", "-json"}, "flags take two dashes (--json, not -json) (see uploader put --help)"},
		{"help of no command", nil, []string{"help", "frobnicate"}, `unknown command "frobnicate" (see uploader --help)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errOut)
			if code != uploader.ExitUsage || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("run(%q) = %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.want)
			}
			if n := strings.Count(strings.TrimSpace(errOut.String()), "\n"); n > 0 {
				t.Errorf("run(%q): error is %d lines, want one", tc.args, n+1)
			}
		})
	}
}

func TestWaitExitCode(t *testing.T) {
	st := func(states ...uploader.State) []uploader.ObjectStatus {
		var out []uploader.ObjectStatus
		for _, s := range states {
			out = append(out, uploader.ObjectStatus{State: s})
		}
		return out
	}
	tests := []struct {
		name     string
		statuses []uploader.ObjectStatus
		timedOut bool
		want     int
	}{
		{"all indexed", st(uploader.StateIndexed, uploader.StateIndexed), false, 0},
		{"one failed", st(uploader.StateIndexed, uploader.StateFailed), false, 1},
		{"failed beats timeout", st(uploader.StateFailed, uploader.StatePending), true, 1},
		{"timed out pending", st(uploader.StateIndexed, uploader.StatePending), true, 3},
	}
	for _, tc := range tests {
		if got := waitExitCode(tc.statuses, tc.timedOut); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestProgressBarShowsBytesAndCounts(t *testing.T) {
	var b bytes.Buffer
	show := progressBar(&b)
	show(uploader.Progress{FilesDone: 1, FilesTotal: 4, BytesDone: 25 << 20, BytesTotal: 100 << 20, Failed: 1, Elapsed: time.Second})
	show(uploader.Progress{FilesDone: 4, FilesTotal: 4, BytesDone: 100 << 20, BytesTotal: 100 << 20, Elapsed: time.Second, Final: true})
	out := b.String()
	for _, want := range []string{" 25% |", "25/100 MiB", "1/4 files  1 failed", "100% |", "4/4 files"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q: %q", want, out)
		}
	}
	if !strings.HasPrefix(out, "\r") || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("the bar must redraw one line and end it once: %q", out)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	t.Setenv("IMGPIPE_BUCKET", "")
	t.Setenv("AWS_REGION", "us-east-1")
	tests := []struct {
		args []string
		want string // in stderr
	}{
		{[]string{}, "Usage:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"put", "x"}, "missing setting --bucket (IMGPIPE_BUCKET)"},
		{[]string{"put", "--bucket", "b"}, "put needs at least one PATH (see put --help)"},
		{[]string{"put", "--bucket", "b", "--part-size", "1MiB", "x"}, "invalid setting --part-size (IMGPIPE_UPLOAD_PART_SIZE)"},
		{[]string{"put", "--bucket", "b", "--keys", "random", "x"}, "invalid setting --keys"},
		{[]string{"put", "--bucket", "b", "--exclude", "[", "x"}, "invalid setting --exclude"},
		{[]string{"put", "--bucket", "b", "--prefix", "/abs/", "x"}, "invalid setting --prefix"},
		{[]string{"put", "--bucket", "b", "--concurrency", "0", "x"}, "invalid setting --concurrency"},
		{[]string{"status", "--bucket", "b", "x"}, "missing setting --project (GOOGLE_CLOUD_PROJECT)"},
		{[]string{"wait", "--bucket", "b", "--project", "p", "--timeout", "0s", "x"}, "invalid setting --timeout"},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errOut)
		if code != uploader.ExitUsage || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("run(%q) = %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
		if n := strings.Count(strings.TrimSpace(errOut.String()), "\n"); n > 0 && len(tc.args) > 0 {
			t.Errorf("run(%q): error is %d lines, want one", tc.args, n+1)
		}
	}
}

func TestHelpDocumentsEverySetting(t *testing.T) {
	own := map[string]string{"put": "--force", "status": "--dlq-scan", "wait": "--timeout", "watch": "--settle", "load": "--rate"}
	for cmd, flag := range own {
		for _, args := range [][]string{{cmd, "--help"}, {cmd, "-h"}, {cmd, "x", "--help"}, {"help", cmd}} {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), args, &out, &errOut); code != 0 || errOut.Len() > 0 {
				t.Fatalf("%q: exit %d: %s", args, code, errOut.String())
			}
			for _, want := range []string{"Examples:", "--bucket", "IMGPIPE_BUCKET", "--json", "Exit codes", "Settings (flag, environment variable, default):", flag} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("%q lacks %q", args, want)
				}
			}
		}
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 0 || !strings.Contains(out.String(), "Usage:") || strings.Contains(out.String(), "Settings (flag") {
			t.Errorf("%q: exit %d, stdout %q", args, code, out.String())
		}
	}
	var out bytes.Buffer
	run(context.Background(), []string{"put", "--help"}, &out, &out)
	for _, want := range []string{"--keys", "--concurrency", "--part-size", "--include", "--exclude", "--include-non-images", "--force", "--quiet", "IMGPIPE_UPLOAD_CONCURRENCY"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("put --help lacks %q", want)
		}
	}
}

// stackEnv points the command at a fresh bootstrap of the test stack through the environment,
// as a user's shell would.
func stackEnv(t *testing.T) *devstack.Bootstrapped {
	t.Helper()
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	for _, e := range st.Env(b) {
		t.Setenv(e.Name, e.Value)
	}
	t.Setenv("IMGPIPE_LOG_LEVEL", "error")
	return b
}

func TestPutStatusWaitThroughTheCommand(t *testing.T) {
	stackEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	img, err := samples.Image(61, 80, 60, "jpeg")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"photo one.jpg": img, "notes.txt": []byte("hello")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var out, errOut bytes.Buffer
	code := run(ctx, []string{"put", dir, "--json", "--concurrency", "2"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("put: exit %d: %s", code, errOut.String())
	}
	var sum struct {
		Uploaded, Skipped int
		Files             []uploader.FileResult
	}
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("put --json: %v\n%s", err, out.String())
	}
	if sum.Uploaded != 1 || sum.Skipped != 1 || len(sum.Files) != 2 {
		t.Fatalf("put --json: %+v", sum)
	}
	key := sum.Files[1].Key // notes.txt sorts first
	if !strings.HasSuffix(key, "/photo one.jpg") {
		t.Fatalf("key %q", key)
	}

	// status FILE finds the same key; pending (nothing runs the pipeline here).
	out.Reset()
	code = run(ctx, []string{"status", "--json", filepath.Join(dir, "photo one.jpg")}, &out, &errOut)
	var st []uploader.ObjectStatus
	if err := json.Unmarshal(out.Bytes(), &st); code != 0 || err != nil {
		t.Fatalf("status: exit %d, %v: %s %s", code, err, out.String(), errOut.String())
	}
	if len(st) != 1 || st[0].Key != key || st[0].State != uploader.StatePending || !st[0].InS3 {
		t.Errorf("status: %+v", st)
	}

	// wait gives up with exit 3.
	out.Reset()
	code = run(ctx, []string{"wait", "--timeout", "1s", "--interval", "200ms", key}, &out, &errOut)
	if code != uploader.ExitTimeout || !strings.Contains(out.String(), "pending (the object is in S3") {
		t.Errorf("wait: exit %d, output %q, stderr %q", code, out.String(), errOut.String())
	}

	// A failed file makes put exit 1.
	t.Setenv("IMGPIPE_BUCKET", "no-such-bucket")
	out.Reset()
	if code := run(ctx, []string{"put", "--retries", "0", dir}, &out, &errOut); code != uploader.ExitFailed || !strings.Contains(out.String(), "NoSuchBucket") {
		t.Errorf("put to a missing bucket: exit %d, output %q", code, out.String())
	}
}

func TestWatchAndLoadThroughTheCommand(t *testing.T) {
	stackEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// load: a count at a rate, report on stdout.
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"load", "--rate", "100", "--count", "5", "--width", "64", "--height", "48", "--json"}, &out, &errOut)
	var rep struct{ Sent, Failed int }
	if err := json.Unmarshal(out.Bytes(), &rep); code != 0 || err != nil || rep.Sent != 5 || rep.Failed != 0 {
		t.Fatalf("load: exit %d, %v, %s %s", code, err, out.String(), errOut.String())
	}
	if code := run(ctx, []string{"load", "--rate", "5"}, &out, &errOut); code != uploader.ExitUsage {
		t.Errorf("load without count or duration: exit %d", code)
	}

	// watch: a dropped image is sent and moved to done/; the command ends cleanly when
	// its context does (as on SIGINT).
	dir := t.TempDir()
	img, err := samples.Image(71, 64, 48, "png")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "drop.png"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wout, werr bytes.Buffer
	result := make(chan int, 1)
	go func() {
		result <- run(wctx, []string{"watch", "--settle", "100ms", "--poll", "50ms", "--json", dir}, &wout, &werr)
	}()
	deadline := time.After(time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(dir, "done", "drop.png")); err == nil {
			break
		}
		select {
		case <-deadline:
			stop()
			<-result
			t.Fatalf("drop.png never reached done/: %s %s", wout.String(), werr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	stop()
	if code := <-result; code != 0 {
		t.Errorf("watch: exit %d: %s", code, werr.String())
	}
	var r uploader.WatchResult
	if err := json.Unmarshal(wout.Bytes(), &r); err != nil || r.Status != uploader.StatusUploaded || !strings.HasSuffix(r.Key, "/drop.png") {
		t.Errorf("watch output %q: %v", wout.String(), err)
	}
	if code := run(ctx, []string{"watch", dir, "other"}, &out, &errOut); code != uploader.ExitUsage {
		t.Errorf("watch with two dirs: exit %d", code)
	}
}

// TestStderrIsJSON runs the uploader binary at debug level (put of a small image and a
// multipart one, status, a put to a missing bucket) and checks that every line it writes on
// stderr is JSON: the SDKs' own log lines go through zap or nowhere.
func TestStderrIsJSON(t *testing.T) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	bin := filepath.Join(t.TempDir(), "uploader")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := stacktest.ChildEnv(st.Env(b))
	dir := t.TempDir()
	small, err := samples.Image(71, 80, 60, "jpeg")
	if err != nil {
		t.Fatal(err)
	}
	large, err := samples.Image(72, 1400, 1000, "bmp") // over the 5 MiB part size below
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"small.jpg": small, "large.bmp": large} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lines := 0
	for _, args := range [][]string{
		{"put", "--log-level", "debug", "--part-size", "5MiB", "--quiet", dir},
		{"status", "--log-level", "debug", filepath.Join(dir, "small.jpg"), filepath.Join(dir, "large.bmp")},
		{"put", "--log-level", "debug", "--bucket", "no-such-bucket", "--force", "--quiet", dir},
	} {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		cmd.Stderr = &stderr
		out, _ := cmd.Output() // exit codes vary (pending, failed): only the logs matter here
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			lines++
			if !json.Valid([]byte(line)) {
				t.Errorf("%s: not a JSON line on stderr: %q", args[0], line)
			}
		}
		if len(out) == 0 {
			t.Errorf("%q printed nothing on stdout: the command did not run", args)
		}
	}
	if lines == 0 {
		t.Error("no log line at debug level: the test saw nothing")
	}
}
