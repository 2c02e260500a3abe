package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/replaytest"
	"imgpipe/dlq-replay/sqsdlq"
	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
)

func TestMain(m *testing.M) {
	if os.Getenv("DLQ_REPLAY_TEST_AS_CLI") == "1" { // the test binary re-run as the command
		main()
		return
	}
	stacktest.Main(m, devstack.SQS|devstack.PubSub)
}

// TestCLIInterrupt runs the command as a process, interrupts a rate-limited replay with
// SIGINT once its first batch arrived, and checks that it stops after the current batch,
// prints the summary with exit status 1, and loses nothing.
func TestCLIInterrupt(t *testing.T) {
	vars, b, st := stack(t)
	const n = 30
	var msgs []*replay.Message
	for i := range n {
		msgs = append(msgs, replaytest.Msg(t, "upload/int/"+strconv.Itoa(i)+".jpg", "VisionUnavailable", failure.Transient, 0))
	}
	seedSQS(t, st, b.DLQURL, msgs...)
	cmd := exec.Command(os.Args[0], "replay", "--rate", "5", "--batch", "5")
	cmd.Env = append(os.Environ(), "DLQ_REPLAY_TEST_AS_CLI=1")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for depth(t, st, b.QueueURL) == 0 {
		select {
		case err := <-done:
			t.Fatalf("replay ended before the interrupt: %v\n%s%s", err, out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := <-done
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitPartial {
		t.Fatalf("exit %v, want status %d\n%s%s", err, exitPartial, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "interrupted") {
		t.Fatalf("no summary after the interrupt:\n%s", out.String())
	}
	d, q := depth(t, st, b.DLQURL), depth(t, st, b.QueueURL)
	if d+q != n || q == n {
		t.Fatalf("after the interrupt: DLQ %d + queue %d, want %d in all and the replay stopped early", d, q, n)
	}
	var moved int
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "moved" {
			moved, _ = strconv.Atoi(f[1])
		}
	}
	if moved != q {
		t.Fatalf("summary says %d moved, the queue holds %d:\n%s", moved, q, out.String())
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// wrapper is how a test wraps a replay's source and sink (replaytest.Crash).
type wrapper = func(replay.Source, replay.Sink) (replay.Source, replay.Sink)

// crashing wraps a replay in a replaytest.Crash with after (nil: crash after the first send).
func crashing(after func(sent []*replay.Message) error) wrapper {
	return func(src replay.Source, dst replay.Sink) (replay.Source, replay.Sink) {
		c := replaytest.NewCrash(src, dst, after)
		return c.Source(), c.Sink()
	}
}

func runCLI(t *testing.T, vars map[string]string, wrap wrapper, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &env{stdout: &out, stderr: &errb, wrap: wrap,
		lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }})
	return result{code, out.String(), errb.String()}
}

func TestUsage(t *testing.T) {
	vars := map[string]string{"IMGPIPE_DLQ_URL": "http://127.0.0.1:1/000000000000/dlq"}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "missing command"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"--json"}, exitUsage, "missing command"},
		{[]string{"--source", "pubsub", "stats"}, exitUsage, "--project"},
		{[]string{"--help"}, exitOK, "Exit status"},
		{[]string{"replay", "--help"}, exitOK, "--max-replays"},
		{[]string{"replay", "--bogus"}, exitUsage, "bogus"},
		{[]string{"replay", "--batch", "11"}, exitUsage, "--batch"},
		{[]string{"replay", "--native", "--reason", "X"}, exitUsage, "no filter"},
		{[]string{"replay", "--glob", "[a-"}, exitUsage, "glob"},
		{[]string{"replay", "--class", "fatal"}, exitUsage, "class"},
		{[]string{"replay", "--rate", "-1"}, exitUsage, "--rate"},
		{[]string{"export"}, exitUsage, "FILE"},
		{[]string{"peek", "zero"}, exitUsage, "positive"},
		{[]string{"stats", "--source", "pubsub"}, exitUsage, "--project"},
		{[]string{"tasks", "--source", "pubsub", "--project", "p", "--dead-letter-subscription", "s"}, exitUsage, "SQS only"},
		// Every duration that reaches SQS as seconds is checked against what SQS takes.
		{[]string{"stats", "--hold", "500ms"}, exitUsage, "--hold"},
		{[]string{"stats", "--hold", "1500ms"}, exitUsage, "--hold"},
		{[]string{"replay", "--hold", "13h"}, exitUsage, "--hold"},
		{[]string{"peek", "--wait", "500ms"}, exitUsage, "--wait"},
		{[]string{"peek", "--wait", "21s"}, exitUsage, "--wait"},
		{[]string{"stats", "--source", "pubsub", "--project", "p", "--dead-letter-subscription", "s", "--hold", "11m"}, exitUsage, "--hold"},
	} {
		r := runCLI(t, vars, nil, c.args...)
		if r.code != c.code || !strings.Contains(r.stdout+r.stderr, c.want) {
			t.Errorf("dlq-replay %q: exit %d, output %q; want exit %d mentioning %q", c.args, r.code, r.stdout+r.stderr, c.code, c.want)
		}
	}
	if r := runCLI(t, map[string]string{}, nil, "stats"); r.code != exitUsage || !strings.Contains(r.stderr, "--dlq-url") {
		t.Errorf("stats without a DLQ: %+v", r)
	}
}

// The command line as cobra and pkg/config read it. Every case ends on a setting error, so
// none reaches a queue.
func TestCommandLine(t *testing.T) {
	dlq := map[string]string{"IMGPIPE_DLQ_URL": "http://127.0.0.1:1/000000000000/dlq"}
	with := func(k, v string) map[string]string { m := maps.Clone(dlq); m[k] = v; return m }
	for _, c := range []struct {
		name string
		vars map[string]string
		args []string
		want string // in stderr; exit status 2
	}{
		{"flag after the argument", dlq, []string{"export", "out.jsonl", "--hold", "500ms"}, "invalid setting --hold (DLQ_REPLAY_HOLD)"},
		{"flag after N", dlq, []string{"peek", "5", "--wait", "21s"}, "invalid setting --wait (DLQ_REPLAY_WAIT)"},
		{"boolean before the argument", dlq, []string{"export", "--delete", "out.jsonl", "--hold", "500ms"}, "invalid setting --hold"},
		{"settings before the command", dlq, []string{"--json", "--hold", "500ms", "stats"}, "invalid setting --hold"},
		{"after --", dlq, []string{"peek", "--", "--wait"}, `N must be a positive number, got "--wait"`},
		{"environment", with("DLQ_REPLAY_HOLD", "1500ms"), []string{"stats"}, "invalid setting --hold (DLQ_REPLAY_HOLD): must be whole seconds"},
		{"flag beats environment", with("DLQ_REPLAY_HOLD", "500ms"), []string{"stats", "--hold", "2s", "--wait", "21s"}, "invalid setting --wait"},
		{"bad environment value", with("DLQ_REPLAY_HOLD", "soon"), []string{"stats"}, `invalid DLQ_REPLAY_HOLD="soon": not a duration`},
		{"bad flag value", dlq, []string{"replay", "--batch", "many"}, `invalid argument "many" for "--batch" flag: not an integer (see dlq-replay replay --help)`},
		{"unknown flag", dlq, []string{"replay", "--dry-run", "--bogus"}, "unknown flag: --bogus (see dlq-replay replay --help)"},
		{"flag of another command", dlq, []string{"stats", "--delete"}, "unknown flag: --delete (see dlq-replay stats --help)"},
		{"one dash", dlq, []string{"export", "-delete", "out.jsonl"}, "flags take two dashes"},
		{"unknown command", dlq, []string{"frobnicate", "--json"}, `unknown command "frobnicate" for "dlq-replay" (see dlq-replay --help)`},
		{"too many arguments", dlq, []string{"export", "a", "b", "--delete"}, "export takes one argument, FILE (see dlq-replay export --help)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runCLI(t, c.vars, nil, c.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Fatalf("dlq-replay %q: exit %d, stderr %q; want exit 2 and one line with %q", c.args, r.code, r.stderr, c.want)
			}
		})
	}
}

// Each command's --help lists the shared settings and its own, on stdout, exit 0.
func TestHelpOfEachCommand(t *testing.T) {
	own := map[string]string{"stats": "--prefix-depth", "replay": "--max-replays", "export": "--delete", "import": "--to-topic", "purge": "--yes"}
	for name := range commands {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}} {
			r := runCLI(t, map[string]string{}, nil, args...)
			if r.code != exitOK || r.stderr != "" || !strings.HasPrefix(r.stdout, "dlq-replay "+name+": ") {
				t.Fatalf("%q: %+v", args, r)
			}
			for _, want := range []string{"Settings (flag, environment variable, default):", "--source", "DLQ_REPLAY_SOURCE", "--dlq-url", "IMGPIPE_DLQ_URL", "--window", own[name]} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("%q lacks %q", args, want)
				}
			}
		}
	}
}

// stack bootstraps fresh resources and returns the settings the CLI would read from the
// local stack's env file.
func stack(t *testing.T) (map[string]string, *devstack.Bootstrapped, *devstack.Stack) {
	st := stacktest.Get(t)
	b := stacktest.Bootstrap(t, st, devstack.Resources{})
	vars := map[string]string{}
	for _, e := range st.Env(b) {
		vars[e.Name] = e.Value
		if strings.HasPrefix(e.Name, "AWS_") {
			t.Setenv(e.Name, e.Value) // the AWS SDK reads its own settings
		}
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return vars, b, st
}

func seedSQS(t *testing.T, st *devstack.Stack, url string, msgs ...*replay.Message) {
	t.Helper()
	if n, err := replay.Send(context.Background(), sqsdlq.New(st.NewSQSClient(), url, nil), msgs, 10); err != nil || n != len(msgs) {
		t.Fatalf("seed: %d %v", n, err)
	}
}

func depth(t *testing.T, st *devstack.Stack, url string) int {
	t.Helper()
	d, err := sqsdlq.New(st.NewSQSClient(), url, nil).Depth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d.Visible + d.NotVisible
}

func TestCLIPurgeRefusesWithoutYes(t *testing.T) {
	vars, b, st := stack(t)
	seedSQS(t, st, b.DLQURL, replaytest.Msg(t, "upload/p1.jpg", "InvalidImageFormat", failure.Permanent, 0), replaytest.Msg(t, "upload/p2.jpg", "InvalidImageFormat", failure.Permanent, 0))
	r := runCLI(t, vars, nil, "purge")
	if r.code != exitUsage || !strings.Contains(r.stderr, "refused") || !strings.Contains(r.stderr, "2 now") {
		t.Fatalf("purge without --yes: %+v", r)
	}
	if d := depth(t, st, b.DLQURL); d != 2 {
		t.Fatalf("DLQ depth %d after a refused purge, want 2", d)
	}
	r = runCLI(t, vars, nil, "purge", "--yes")
	if r.code != exitOK || !strings.Contains(r.stdout, "deleted 2 message(s)") || !strings.Contains(r.stdout, "InvalidImageFormat 2") {
		t.Fatalf("purge --yes: %+v", r)
	}
	if d := depth(t, st, b.DLQURL); d != 0 {
		t.Fatalf("DLQ depth %d after purge", d)
	}
}

func TestCLIExportDeleteThenImport(t *testing.T) {
	vars, b, st := stack(t)
	seedSQS(t, st, b.DLQURL, replaytest.Msg(t, "upload/e1.jpg", "VisionUnavailable", failure.Transient, 0), replaytest.Msg(t, "upload/e2.jpg", "VisionUnavailable", failure.Transient, 1))
	file := filepath.Join(t.TempDir(), "dlq.jsonl")
	r := runCLI(t, vars, nil, "export", file, "--delete", "--json")
	if r.code != exitOK {
		t.Fatalf("export: %+v", r)
	}
	var out struct{ Written, Deleted int }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Written != 2 || out.Deleted != 2 {
		t.Fatalf("export output %q (%v)", r.stdout, err)
	}
	if d := depth(t, st, b.DLQURL); d != 0 {
		t.Fatalf("DLQ depth %d after export --delete", d)
	}
	if r := runCLI(t, vars, nil, "export", file); r.code == exitOK || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("export over an existing file: %+v", r)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	f.Close()
	if len(lines) != 2 || !strings.Contains(lines[0], `"data_type":"String"`) {
		t.Fatalf("export file:\n%s", strings.Join(lines, "\n"))
	}
	if r := runCLI(t, vars, nil, "import", file); r.code != exitUsage || !strings.Contains(r.stderr, "--to") {
		t.Fatalf("import without --to: %+v", r)
	}
	if r := runCLI(t, vars, nil, "import", file, "--to", b.QueueURL); r.code != exitOK || !strings.Contains(r.stdout, "sent 2 of 2") {
		t.Fatalf("import: %+v", r)
	}
	if d := depth(t, st, b.QueueURL); d != 2 {
		t.Fatalf("queue depth %d after import, want 2", d)
	}
}

func TestCLIReplayDryRunThenReplay(t *testing.T) {
	vars, b, st := stack(t)
	seedSQS(t, st, b.DLQURL,
		replaytest.Msg(t, "upload/r1.jpg", "VisionUnavailable", failure.Transient, 0),
		replaytest.Msg(t, "upload/r2.jpg", "InvalidImageFormat", failure.Permanent, 0),
		replaytest.Msg(t, "upload/r3.jpg", "VisionUnavailable", failure.Transient, 5))
	r := runCLI(t, vars, nil, "peek", "2")
	if r.code != exitOK || strings.Count(r.stdout, "upload/r") != 2 || !strings.Contains(r.stdout, "2 message(s) shown and released") {
		t.Fatalf("peek 2: %+v", r)
	}
	r = runCLI(t, vars, nil, "stats", "--json")
	var s replay.Stats
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.Messages != 3 || len(s.ByReason) != 2 || s.ByReason[0] != (replay.Count{Value: "VisionUnavailable", Count: 2}) {
		t.Fatalf("stats: %+v (%v)", r, err)
	}
	if d := depth(t, st, b.DLQURL); d != 3 {
		t.Fatalf("DLQ depth %d after peek and stats, want 3", d)
	}
	r = runCLI(t, vars, nil, "replay", "--dry-run", "--json", "--reason", "VisionUnavailable")
	if r.code != exitOK {
		t.Fatalf("dry run: %+v", r)
	}
	var out struct {
		Destination    string
		Moved          int
		TooManyReplays int `json:"too_many_replays"`
		Messages       []struct{ Key, Decision string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Moved != 1 || out.TooManyReplays != 1 || len(out.Messages) != 2 || !strings.HasPrefix(out.Destination, b.QueueURL) {
		t.Fatalf("dry run output %s", r.stdout)
	}
	if d, q := depth(t, st, b.DLQURL), depth(t, st, b.QueueURL); d != 3 || q != 0 {
		t.Fatalf("after dry run DLQ %d queue %d, want 3 and 0", d, q)
	}
	// The real run: the redrive policy names the queue, which gets the message.
	r = runCLI(t, vars, nil, "replay", "--reason", "VisionUnavailable")
	if r.code != exitOK || !strings.Contains(r.stdout, "left: replayed 5 times already") {
		t.Fatalf("replay: %+v", r)
	}
	if d, q := depth(t, st, b.DLQURL), depth(t, st, b.QueueURL); d != 2 || q != 1 {
		t.Fatalf("after replay DLQ %d queue %d, want 2 and 1", d, q)
	}
	// A crash between send and delete: exit 1, nothing deleted.
	r = runCLI(t, vars, crashing(nil), "replay", "--hold", "1s")
	if r.code != exitPartial || !strings.Contains(r.stderr, replaytest.ErrCrash.Error()) {
		t.Fatalf("crashed replay: %+v", r)
	}
	if d := depth(t, st, b.DLQURL); d != 2 {
		t.Fatalf("DLQ depth %d after a crash, want 2 (nothing deleted)", d)
	}
}

func TestCLIPubSubStatsAndReplay(t *testing.T) {
	vars, b, st := stack(t)
	_ = st
	ps := runCLI(t, vars, nil, "stats", "--source", "pubsub")
	if ps.code != exitOK || !strings.Contains(ps.stdout, "messages  0") {
		t.Fatalf("stats of an empty dead-letter subscription: %+v", ps)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "in.jsonl")
	var buf bytes.Buffer
	for _, m := range []*replay.Message{replaytest.Msg(t, "upload/ps1.jpg", "IndexUnavailable", failure.Transient, 0), replaytest.Msg(t, "upload/ps2.jpg", "IndexUnavailable", failure.Transient, 0)} {
		if err := replay.WriteLine(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	// Import into the dead-letter topic stands in for Pub/Sub dead-lettering them.
	if r := runCLI(t, vars, nil, "import", file, "--source", "pubsub", "--to-topic", b.DeadLetterTopic); r.code != exitOK {
		t.Fatalf("import: %+v", r)
	}
	r := runCLI(t, vars, nil, "--source", "pubsub", "stats", "--json")
	var s replay.Stats
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || r.code != exitOK || s.Messages != 2 || s.ByReason[0].Value != "IndexUnavailable" {
		t.Fatalf("stats: %+v (%v)", r, err)
	}
	if r := runCLI(t, vars, nil, "replay", "--source", "pubsub", "--json"); r.code != exitOK || !strings.Contains(r.stdout, `"moved": 2`) {
		t.Fatalf("replay: %+v", r)
	}
	r = runCLI(t, vars, nil, "stats", "--source", "pubsub", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.Messages != 0 {
		t.Fatalf("stats after replay: %+v (%v)", r, err)
	}
}

// TestCLIReplayCountsWhatCameBack: the pipeline sends every replayed message straight back to
// the DLQ (a permanently bad image, as the analyzer does), here between the send and the delete
// of each batch. One run moves each message once and reports what came back, in text and JSON.
func TestCLIReplayCountsWhatCameBack(t *testing.T) {
	vars, b, st := stack(t)
	c := st.NewSQSClient()
	queue, dlq := sqsdlq.New(c, b.QueueURL, nil), sqsdlq.New(c, b.DLQURL, nil)
	analyzer := crashing(func(sent []*replay.Message) error {
		// Take what arrived on the queue and dead-letter it again with its attributes.
		_, _, err := replay.Drain(context.Background(), queue, nil, false, func(ms []*replay.Message) error {
			_, err := replay.Send(context.Background(), dlq, ms, 10)
			return err
		})
		return err
	})
	seedSQS(t, st, b.DLQURL,
		replaytest.Msg(t, "upload/bad1.jpg", "InvalidImageFormat", failure.Permanent, 0),
		replaytest.Msg(t, "upload/bad2.jpg", "InvalidImageFormat", failure.Permanent, 0),
		replaytest.Msg(t, "upload/bad3.jpg", "InvalidImageFormat", failure.Permanent, 0))
	r := runCLI(t, vars, analyzer, "replay", "--json")
	var out struct {
		Moved          int
		CameBack       int `json:"came_back"`
		TooManyReplays int `json:"too_many_replays"`
		Messages       []struct{ Key, Decision string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != exitOK {
		t.Fatalf("replay: %+v (%v)", r, err)
	}
	if out.Moved != 3 || out.CameBack != 3 || out.TooManyReplays != 0 {
		t.Fatalf("replay moved %d, came back %d, too many replays %d; want 3, 3, 0:\n%s", out.Moved, out.CameBack, out.TooManyReplays, r.stdout)
	}
	listed := 0
	for _, m := range out.Messages {
		if m.Decision == "came-back" {
			listed++
		}
	}
	if listed != 3 {
		t.Fatalf("%d messages listed as came-back, want 3:\n%s", listed, r.stdout)
	}
	if d, q := depth(t, st, b.DLQURL), depth(t, st, b.QueueURL); d != 3 || q != 0 {
		t.Fatalf("after the run DLQ %d queue %d, want the 3 that came back and 0", d, q)
	}
	// The next run moves them once more (their second replay), and says so in text.
	r = runCLI(t, vars, analyzer, "replay")
	if r.code != exitOK || !regexp.MustCompile(`(?m)^moved\s+3$`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^came back during the run \(left in the DLQ\)\s+3$`).MatchString(r.stdout) {
		t.Fatalf("second replay: %+v", r)
	}
}

// An import file with a bad line sends nothing: the file is checked line by line before the
// first send (import streams the file twice rather than holding it).
func TestCLIImportChecksTheWholeFileFirst(t *testing.T) {
	vars, b, st := stack(t)
	var buf bytes.Buffer
	for i := range 25 {
		if err := replay.WriteLine(&buf, replaytest.Msg(t, "upload/imp"+strconv.Itoa(i)+".jpg", "VisionUnavailable", failure.Transient, 0)); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString("{\"message_id\":\"broken\"\n")
	file := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, vars, nil, "import", file, "--to", b.QueueURL)
	if r.code != exitUsage || !strings.Contains(r.stderr, "line 26") {
		t.Fatalf("import of a file with a bad line 26: %+v", r)
	}
	if q := depth(t, st, b.QueueURL); q != 0 {
		t.Fatalf("%d messages sent from a file with a bad line, want 0", q)
	}
}
