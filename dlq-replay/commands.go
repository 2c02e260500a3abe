package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"imgpipe/dlq-replay/pubsubdlq"
	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/sqsdlq"
	"imgpipe/pkg/awsclient"
	"imgpipe/pkg/cli"
	"imgpipe/pkg/config"
	"imgpipe/pkg/gcpauth"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/queue/pubsubqueue"
)

// conn holds the clients of one command and the DLQ they reach.
type conn struct {
	s       *settings
	log     *zap.Logger
	sqs     *sqs.Client
	ps      *pubsub.Client
	src     replay.Source
	srcDesc string
}

// Close closes the clients; safe to call twice.
func (c *conn) Close() {
	if c.ps != nil {
		c.ps.Close()
		c.ps = nil
	}
	_ = c.log.Sync()
}

func connect(ctx context.Context, s *settings) (*conn, error) {
	log, err := obs.NewLogger("dlq-replay", s.logLevel)
	if err != nil {
		return nil, usageError{Err: err}
	}
	c := &conn{s: s, log: log}
	log.Info("dlq-replay starting", zap.String("command", s.command), obs.Settings(s.described))
	switch s.source {
	case "sqs":
		cfg, err := awsclient.Config(ctx, &awsclient.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		c.sqs = awsclient.SQS(cfg)
		if s.dlqURL != "" {
			c.src = sqsdlq.New(c.sqs, s.dlqURL, &sqsdlq.Options{Wait: s.wait})
			c.srcDesc = s.dlqURL
		}
	case "pubsub":
		gcreds, err := gcpauth.Load(ctx, nil)
		if err != nil {
			return nil, err
		}
		log.Debug("google credentials", zap.Stringer("credential", gcreds))
		c.ps, err = pubsub.NewClient(ctx, s.project, gcreds.ClientOptions("PUBSUB_EMULATOR_HOST")...)
		if err != nil {
			return nil, fmt.Errorf("pubsub client: %w", err)
		}
		if s.deadLetterSub != "" {
			name := pubsubqueue.FullName(s.project, "subscriptions", s.deadLetterSub)
			c.src = pubsubdlq.NewSubscription(c.ps.SubscriptionAdminClient, name, &pubsubqueue.Options{Wait: max(s.wait, 2*time.Second)})
			c.srcDesc = name
		}
	}
	return c, nil
}

// sink returns where replays and imports go, and how to say it.
func (c *conn) sink(ctx context.Context, discover bool) (replay.Sink, string, error) {
	if c.s.source == "pubsub" {
		if c.s.toTopic == "" {
			return nil, "", usagef("missing setting --to-topic (IMGPIPE_TOPIC): the topic to send to")
		}
		name := pubsubqueue.FullName(c.s.project, "topics", c.s.toTopic)
		return pubsubqueue.NewTopic(c.ps.TopicAdminClient, name), name, nil
	}
	opts := &sqsdlq.Options{Wait: c.s.wait}
	if c.s.to != "" {
		return sqsdlq.NewRouter(c.sqs, c.s.to, opts), c.s.to, nil
	}
	if !discover {
		return nil, "", usagef("missing setting --to: the queue URL to send to")
	}
	urls, err := sqsdlq.SourceQueues(ctx, c.sqs, c.s.dlqURL)
	if err != nil {
		return nil, "", err
	}
	if len(urls) == 1 {
		return sqsdlq.NewRouter(c.sqs, urls[0], opts), urls[0] + " (its redrive policy names the DLQ)", nil
	}
	desc := "each message's " + "imgpipe.source-queue attribute"
	if len(urls) > 1 {
		desc += fmt.Sprintf(" (%d queues name this DLQ: %s; give --to to pick one)", len(urls), strings.Join(urls, ", "))
	}
	return sqsdlq.NewRouter(c.sqs, "", opts), desc, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 2, 4, 2, ' ', 0) }

func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func excerpt(b []byte, n int) string {
	s := string(b)
	if !utf8.ValidString(s) {
		return fmt.Sprintf("(%d bytes, not text)", len(b))
	}
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > n {
		r := []rune(s)
		s = string(r[:n]) + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (s *settings) scanOptions(max int) *replay.ScanOptions {
	return &replay.ScanOptions{Max: max, Hold: s.hold, Window: s.window}
}

func runStats(ctx context.Context, e *env, s *settings, _ []string) error {
	c, err := connect(ctx, s)
	if err != nil {
		return err
	}
	defer c.Close()
	b := &replay.StatsBuilder{PrefixDepth: s.prefixDepth}
	p, err := replay.Scan(ctx, c.src, s.scanOptions(0), func(m *replay.Message) error { b.Add(m); return nil })
	if err != nil {
		return err
	}
	st := b.Stats()
	if s.json {
		return printJSON(e.stdout, struct {
			Source string `json:"source"`
			replay.Stats
			Scan replay.Pass `json:"scan"`
		}{c.srcDesc, st, p})
	}
	now := time.Now()
	w := table(e.stdout)
	fmt.Fprintf(w, "DLQ\t%s\n", c.srcDesc)
	fmt.Fprintf(w, "messages\t%d\n", st.Messages)
	passLines(w, p, "scan")
	if st.Messages > 0 {
		fmt.Fprintf(w, "oldest\t%s\t(%s ago)\n", st.Oldest.UTC().Format(time.RFC3339), age(now, st.Oldest))
		fmt.Fprintf(w, "newest\t%s\t(%s ago)\n", st.Newest.UTC().Format(time.RFC3339), age(now, st.Newest))
	}
	for _, g := range []struct {
		title string
		rows  []replay.Count
	}{{"by reason", st.ByReason}, {"by class", st.ByClass}, {"by key prefix", st.ByPrefix}, {"by receive count", st.ByReceiveCount}, {"by replay count", st.ByReplayCount}} {
		if len(g.rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\tcount\n", strings.ToUpper(g.title))
		for _, r := range g.rows {
			fmt.Fprintf(w, "  %s\t%d\n", r.Value, r.Count)
		}
	}
	return w.Flush()
}

// passLines prints what a pass over the DLQ says beyond its counts: what came in meanwhile,
// then coverLines.
func passLines(w io.Writer, p replay.Pass, what string) {
	if n := p.Arrived + p.CameBack; n > 0 {
		fmt.Fprintf(w, "came in during the %s (left, not counted)\t%d\n", what, n)
	}
	coverLines(w, p, what)
}

// coverLines prints the service's own count at the start, receives that failed (a lost answer
// hides its batch) and, for a pass that went round short of the count (a service that hands
// released messages straight back: see --window), a note.
func coverLines(w io.Writer, p replay.Pass, what string) {
	if p.AtStart > 0 {
		fmt.Fprintf(w, "at start (the service's approximate count)\t%d\n", p.AtStart)
	}
	if p.FailedReceives > 0 {
		fmt.Fprintf(w, "receives that failed and were retried\t%d\t(each may hide up to a batch until --hold ends)\n", p.FailedReceives)
	}
	if p.HiddenWaits > 0 {
		fmt.Fprintf(w, "waits for a failed receive's hold to end\t%d\t(the %s found the DLQ empty before it had seen the count at start)\n", p.HiddenWaits, what)
	}
	if p.Ended == replay.EndRound && p.AtStart > p.Seen {
		fmt.Fprintf(w, "note\tthe %s went round after %d messages of about %d: the service handed released messages back first; a larger --window reaches further\n", what, p.Seen, p.AtStart)
	}
}

// peekRow is one message as peek shows it.
type peekRow struct {
	ID           string            `json:"message_id"`
	Key          string            `json:"key"`
	Reason       string            `json:"reason"`
	Class        string            `json:"class"`
	Attempts     int               `json:"attempts"`
	ReceiveCount int               `json:"receive_count"`
	ReplayCount  int               `json:"replay_count"`
	FailedAt     time.Time         `json:"failed_at,omitzero"`
	Error        string            `json:"error,omitempty"`
	Body         string            `json:"body_excerpt"`
	Attributes   map[string]string `json:"attributes,omitempty"`
}

func rowOf(m *replay.Message) peekRow {
	f := m.Failure()
	a := m.StringAttributes()
	class := ""
	if _, ok := a["imgpipe.class"]; ok {
		class = f.Class.String()
	}
	return peekRow{ID: m.ID, Key: replay.Key(m), Reason: f.Reason, Class: class, Attempts: f.Attempts, ReceiveCount: m.ReceiveCount,
		ReplayCount: f.ReplayCount, FailedAt: m.FailedAt(), Error: f.Error, Body: excerpt(m.Body, 200), Attributes: a}
}

func runPeek(ctx context.Context, e *env, s *settings, args []string) error {
	n := 10
	if len(args) == 1 {
		var err error
		if n, err = atoiArg("N", args[0]); err != nil {
			return err
		}
	}
	c, err := connect(ctx, s)
	if err != nil {
		return err
	}
	defer c.Close()
	rows := []peekRow{}
	if _, err := replay.Scan(ctx, c.src, s.scanOptions(n), func(m *replay.Message) error {
		rows = append(rows, rowOf(m))
		return nil
	}); err != nil {
		return err
	}
	if s.json {
		return printJSON(e.stdout, rows)
	}
	now := time.Now()
	w := table(e.stdout)
	fmt.Fprintln(w, "KEY\tREASON\tCLASS\tATTEMPTS\tRECEIVES\tREPLAYS\tAGE\tBODY")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", orDash(r.Key), orDash(r.Reason), orDash(r.Class), r.Attempts, r.ReceiveCount, r.ReplayCount, age(now, r.FailedAt), excerpt([]byte(r.Body), 60))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d message(s) shown and released\n", len(rows))
	return nil
}

func runReplay(ctx context.Context, e *env, s *settings, _ []string) error {
	f := replay.Filter{Reasons: config.List(s.reasons), Classes: config.List(s.classes), Prefix: s.prefix, Glob: s.glob, OlderThan: s.olderThan, NewerThan: s.newerThan}
	if err := f.Validate(); err != nil {
		return usagef("filter: %v", err)
	}
	c, err := connect(ctx, s)
	if err != nil {
		return err
	}
	defer c.Close()
	if s.native {
		return runNative(ctx, e, c)
	}
	dst, destDesc, err := c.sink(ctx, true)
	if err != nil {
		return err
	}
	verb := "replaying"
	if s.dryRun {
		verb = "dry run: would replay"
	}
	fmt.Fprintf(e.stderr, "%s from %s to %s; filter: %s; max %s; rate %s; messages replayed %d times stay; at most %d leased at once\n",
		verb, c.srcDesc, destDesc, describeFilter(f), orAll(s.max), rateText(s.rate), s.maxReplays, s.window)
	progress := e.terminal && !s.json
	list := newListing(e, s, c.srcDesc, destDesc)
	opts := &replay.Options{
		Filter: f, MaxReplays: s.maxReplays, Max: s.max, Batch: s.batch, Rate: s.rate, DryRun: s.dryRun, Hold: s.hold, Window: s.window,
		OnDecision: func(m *replay.Message, d replay.Decision) {
			if d == replay.Move && s.dryRun || d == replay.SkipReplays || d == replay.SkipCameBack {
				list.add(listed{Key: replay.Key(m), ID: m.ID, Reason: m.Failure().Reason, Decision: d.String()})
			}
		},
		OnFailure: func(m *replay.Message, err error) {
			d := "failed"
			if errors.Is(err, replay.ErrSentNotDeleted) {
				d = "not-deleted"
			}
			list.add(listed{Key: replay.Key(m), ID: m.ID, Reason: m.Failure().Reason, Decision: d, Error: err.Error()})
		},
		OnProgress: func(p replay.Summary) {
			list.flush()
			if progress {
				if list.bar == nil {
					list.bar = cli.NewProgress(e.stderr, int64(p.AtStart), false)
				}
				list.bar.Show(int64(p.Seen), fmt.Sprintf("%s: %d moved, %d skipped, %d too many replays, %d came back, %d failed", verb, p.Moved, p.SkippedFilter, p.TooManyReplays, p.CameBack, p.Failed))
			}
		},
	}
	src := c.src
	if e.wrap != nil {
		src, dst = e.wrap(src, dst)
	}
	sum, runErr := replay.Run(ctx, src, dst, opts)
	if list.bar != nil {
		list.bar.End()
	}
	if err := list.end(sum, runErr); err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	if sum.Partial() || sum.Interrupted {
		return errPartial
	}
	return nil
}

// listed is one message a replay reports: a dry run's moves, messages left for too many
// replays or because they came back during the run, and failed sends and deletes.
type listed struct {
	Key      string `json:"key"`
	ID       string `json:"message_id"`
	Reason   string `json:"reason,omitempty"`
	Decision string `json:"decision"`
	Error    string `json:"error,omitempty"`
}

// listing prints a replay's report as the run goes, so that a run over a large DLQ keeps no
// list in memory: --json streams one JSON document whose "messages" array is written element
// by element and whose summary fields follow it; text prints table rows, aligned batch by
// batch, then the summary table.
type listing struct {
	e    *env
	s    *settings
	bar  *cli.Progress // on stderr (a terminal), cleared before rows are printed
	tw   *tabwriter.Writer
	rows int
	err  error // the first write error
}

func newListing(e *env, s *settings, src, dest string) *listing {
	l := &listing{e: e, s: s}
	if s.json {
		field := func(k, v string) string { b, _ := json.Marshal(v); return fmt.Sprintf("  %q: %s,\n", k, b) }
		l.write("{\n" + field("source", src) + field("destination", dest) + `  "messages": [`)
	} else {
		l.tw = table(e.stdout)
	}
	return l
}

func (l *listing) write(text string) {
	if _, err := io.WriteString(l.e.stdout, text); err != nil && l.err == nil {
		l.err = err
	}
}

func (l *listing) add(it listed) {
	if l.s.json {
		b, _ := json.Marshal(it)
		sep := "\n    "
		if l.rows > 0 {
			sep = ",\n    "
		}
		l.write(sep + string(b))
		l.rows++
		return
	}
	if l.rows == 0 {
		fmt.Fprintln(l.tw, "KEY\tMESSAGE ID\tREASON\tACTION")
	}
	action := "would move"
	switch it.Decision {
	case replay.SkipReplays.String():
		action = fmt.Sprintf("left: replayed %d times already", l.s.maxReplays)
	case replay.SkipCameBack.String():
		action = "left: came back during the run"
	case "failed":
		action = "failed, left in the DLQ: " + it.Error
	case "not-deleted":
		action = "sent, not deleted (a duplicate): " + it.Error
	}
	fmt.Fprintf(l.tw, "%s\t%s\t%s\t%s\n", orDash(it.Key), it.ID, orDash(it.Reason), action)
	l.rows++
}

// flush prints the rows added since the last flush.
func (l *listing) flush() {
	if l.tw == nil || l.rows == 0 {
		return
	}
	if l.bar != nil {
		l.bar.Clear()
	}
	if err := l.tw.Flush(); err != nil && l.err == nil {
		l.err = err
	}
}

// end prints the summary after the list.
func (l *listing) end(sum replay.Summary, runErr error) error {
	if l.s.json {
		tail, err := json.MarshalIndent(struct {
			replay.Summary
			Error string `json:"error,omitempty"`
		}{sum, errText(runErr)}, "", "  ")
		if err != nil {
			return err
		}
		l.write("\n  ],\n" + strings.TrimPrefix(string(tail), "{\n") + "\n")
		return l.err
	}
	l.flush()
	w := table(l.e.stdout)
	if l.rows > 0 {
		fmt.Fprintln(w)
	}
	moved := "moved"
	if sum.DryRun {
		moved = "would move"
	}
	fmt.Fprintf(w, "seen\t%d\n%s\t%d\nskipped by filter\t%d\nleft: too many replays\t%d\nfailed (left in DLQ)\t%d\n", sum.Seen, moved, sum.Moved, sum.SkippedFilter, sum.TooManyReplays, sum.Failed)
	fmt.Fprintf(w, "came back during the run (left in the DLQ)\t%d\n", sum.CameBack)
	if sum.Arrived > 0 {
		fmt.Fprintf(w, "arrived during the run (left for another run)\t%d\n", sum.Arrived)
	}
	if sum.DeleteFailed > 0 {
		fmt.Fprintf(w, "sent but not deleted (will be duplicates)\t%d\n", sum.DeleteFailed)
	}
	if sum.Trimmed > 0 {
		fmt.Fprintf(w, "attributes trimmed to the 10-attribute limit\t%d\n", sum.Trimmed)
	}
	coverLines(w, sum.Pass, "run")
	if sum.Interrupted {
		fmt.Fprintln(w, "interrupted\tyes: stopped after the current batch")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return l.err
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func orAll(n int) string {
	if n <= 0 {
		return "all"
	}
	return fmt.Sprint(n)
}

func rateText(r float64) string {
	if r <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g/s", r)
}

func describeFilter(f replay.Filter) string {
	var p []string
	if len(f.Reasons) > 0 {
		p = append(p, "reason in "+strings.Join(f.Reasons, ","))
	}
	if len(f.Classes) > 0 {
		p = append(p, "class in "+strings.Join(f.Classes, ","))
	}
	if f.Prefix != "" {
		p = append(p, "key prefix "+f.Prefix)
	}
	if f.Glob != "" {
		p = append(p, "key glob "+f.Glob)
	}
	if f.OlderThan > 0 {
		p = append(p, "failed over "+f.OlderThan.String()+" ago")
	}
	if f.NewerThan > 0 {
		p = append(p, "failed within "+f.NewerThan.String())
	}
	if len(p) == 0 {
		return "none (every message)"
	}
	return strings.Join(p, ", ")
}

func runNative(ctx context.Context, e *env, c *conn) error {
	dlqARN, err := sqsdlq.ARN(ctx, c.sqs, c.s.dlqURL)
	if err != nil {
		return err
	}
	destARN, destDesc := "", "each message's original source queue"
	if c.s.to != "" {
		if destARN, err = sqsdlq.ARN(ctx, c.sqs, c.s.to); err != nil {
			return err
		}
		destDesc = c.s.to
	}
	fmt.Fprintf(e.stderr, "native redrive: SQS moves EVERY message of %s to %s (no filter, no replay count), rate %s\n", c.s.dlqURL, destDesc, rateText(c.s.rate))
	handle, err := sqsdlq.StartMove(ctx, c.sqs, dlqARN, destARN, int(c.s.rate))
	if err != nil {
		return err
	}
	if c.s.json {
		return printJSON(e.stdout, map[string]string{"task_handle": handle, "source_arn": dlqARN, "destination_arn": destARN})
	}
	fmt.Fprintf(e.stdout, "started task %s\nfollow it with: dlq-replay tasks; stop it with: dlq-replay cancel %s\n", handle, handle)
	return nil
}

func runTasks(ctx context.Context, e *env, s *settings, _ []string) error {
	c, err := connect(ctx, s)
	if err != nil {
		return err
	}
	defer c.Close()
	arn, err := sqsdlq.ARN(ctx, c.sqs, s.dlqURL)
	if err != nil {
		return err
	}
	tasks, err := sqsdlq.ListMoves(ctx, c.sqs, arn)
	if err != nil {
		return err
	}
	if s.json {
		return printJSON(e.stdout, tasks)
	}
	w := table(e.stdout)
	fmt.Fprintln(w, "STATUS\tMOVED\tTO MOVE\tSTARTED\tDESTINATION\tHANDLE\tFAILURE")
	for _, t := range tasks {
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", t.Status, t.Moved, t.ToMove, t.Started.Format(time.RFC3339), orDash(t.Destination), orDash(t.Handle), orDash(t.Failure))
	}
	return w.Flush()
}

func runCancel(ctx context.Context, e *env, s *settings, args []string) error {
	c, err := connect(ctx, s)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(e.stderr, "cancelling native redrive task %s (messages already moved stay moved)\n", args[0])
	moved, err := sqsdlq.CancelMove(ctx, c.sqs, args[0])
	if err != nil {
		return err
	}
	if s.json {
		return printJSON(e.stdout, map[string]any{"task_handle": args[0], "moved": moved})
	}
	fmt.Fprintf(e.stdout, "cancelled; %d message(s) had been moved\n", moved)
	return nil
}

func runExport(ctx context.Context, e *env, s *settings, args []string) (err error) {
	c, err := connect(ctx, s)
	if err != nil {
		return err
	}
	defer c.Close()
	path := args[0]
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("export file: %w", err) // never overwrite an earlier export
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
	}()
	if err := syncDir(filepath.Dir(path)); err != nil { // the new file's name is durable too
		return err
	}
	if s.del {
		fmt.Fprintf(e.stderr, "exporting every message of %s to %s and DELETING each batch once it is fsynced\n", c.srcDesc, path)
	} else {
		fmt.Fprintf(e.stderr, "exporting every message of %s to %s (the DLQ is left as it is)\n", c.srcDesc, path)
	}
	written := 0
	deleted, p, derr := replay.Drain(ctx, c.src, s.scanOptions(0), !s.del, func(ms []*replay.Message) error {
		for _, m := range ms {
			if err := replay.WriteLine(f, m); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
		}
		if err := f.Sync(); err != nil { // on disk before anything is deleted
			return fmt.Errorf("fsync %s: %w", path, err)
		}
		written += len(ms)
		return nil
	})
	if s.json {
		if err := printJSON(e.stdout, map[string]any{"file": path, "written": written, "deleted": deleted, "scan": p, "error": errText(derr)}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "wrote %d message(s) to %s; deleted %d from the DLQ\n", written, path, deleted)
		w := table(e.stdout)
		passLines(w, p, "export")
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if errors.Is(derr, context.Canceled) {
		return errPartial
	}
	return derr
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

func runImport(ctx context.Context, e *env, s *settings, args []string) error {
	c, err := connect(ctx, s)
	if err != nil {
		return err
	}
	defer c.Close()
	dst, destDesc, err := c.sink(ctx, false)
	if err != nil {
		return err
	}
	// Two passes over the file, each holding one line (then one batch) at a time: the first
	// checks every line, so that a file with a bad line sends nothing; the second sends.
	read := 0
	if err := eachRecord(args[0], func(*replay.Message) error { read++; return nil }); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "importing %d message(s) from %s to %s\n", read, args[0], destDesc)
	f, err := os.Open(args[0])
	if err != nil {
		return fmt.Errorf("import file: %w", err)
	}
	defer f.Close()
	sent, serr := replay.SendAll(ctx, dst, replay.Lines(f), s.batch)
	if s.json {
		if err := printJSON(e.stdout, map[string]any{"file": args[0], "destination": destDesc, "read": read, "sent": sent, "error": errText(serr)}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "sent %d of %d message(s) to %s\n", sent, read, destDesc)
	}
	return serr
}

// eachRecord calls fn with each message of the export file at path, reading it line by line;
// an unreadable line is the operator's to fix (a usage error naming it).
func eachRecord(path string, fn func(*replay.Message) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import file: %w", err)
	}
	defer f.Close()
	if err := replay.ReadLines(f, fn); err != nil {
		return usagef("%s: %v", path, err)
	}
	return nil
}

func runPurge(ctx context.Context, e *env, s *settings, _ []string) error {
	c, err := connect(ctx, s)
	if err != nil {
		return err
	}
	defer c.Close()
	b := &replay.StatsBuilder{PrefixDepth: 2}
	if _, err := replay.Scan(ctx, c.src, s.scanOptions(0), func(m *replay.Message) error { b.Add(m); return nil }); err != nil {
		return err
	}
	st := b.Stats()
	fmt.Fprintf(e.stderr, "purge would delete every message of %s: %d now, by reason: %s\n", c.srcDesc, st.Messages, counts(st.ByReason))
	if !s.yes {
		return usagef("purge refused: add --yes to delete these messages (consider dlq-replay export FILE --delete instead)")
	}
	removed := replay.StatsBuilder{PrefixDepth: 2}
	n, p, derr := replay.Drain(ctx, c.src, s.scanOptions(0), false, func(ms []*replay.Message) error {
		for _, m := range ms {
			removed.Add(m)
		}
		return nil
	})
	rs := removed.Stats()
	if s.json {
		if err := printJSON(e.stdout, map[string]any{"deleted": n, "by_reason": rs.ByReason, "scan": p, "error": errText(derr)}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "deleted %d message(s) from %s; by reason: %s\n", n, c.srcDesc, counts(rs.ByReason))
		w := table(e.stdout)
		passLines(w, p, "purge")
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if errors.Is(derr, context.Canceled) {
		return errPartial
	}
	return derr
}

func counts(cs []replay.Count) string {
	if len(cs) == 0 {
		return "-"
	}
	p := make([]string, len(cs))
	for i, c := range cs {
		p[i] = fmt.Sprintf("%s %d", c.Value, c.Count)
	}
	return strings.Join(p, ", ")
}
