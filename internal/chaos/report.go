package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"imgpipe/internal/visionstandin"
)

// Report is the outcome of a run.
type Report struct {
	Seed             int64
	N                int
	Window           time.Duration
	Quota, Transient float64
	Schedule         Schedule
	Faults           []FaultRecord
	Batches          []BatchRecord

	Sent, SentGood, SentBad, Overwrites int // uploads confirmed by the uploader

	Quiet      Quiet // after the faults
	First      Check // after the faults
	Replayed   Replayed
	AfterQuiet Quiet  // after the replay
	After      *Check // after the replay; nil when no DLQ held a good image
	Vision     visionstandin.Stats
	// Published counts the records the suite's own subscription received, copies included.
	Published, PublishedKeys int
	// AuditErrors counts the failed receives of that subscription (an emulator outage makes
	// some; they are retried), AuditLastError the last one.
	AuditErrors    int
	AuditLastError string
	Exited         []string // processes that exited by themselves
	Elapsed        time.Duration
	WorkDir        string
}

// Final is the last check: after the replay, or the first when nothing was replayed.
func (r *Report) Final() *Check {
	if r.After != nil {
		return r.After
	}
	return &r.First
}

// Lost counts what the final check found lost: good images neither indexed nor in a DLQ
// (after a replay: not indexed), and bad files in no DLQ.
func (r *Report) Lost() int {
	f := r.Final()
	n := len(f.Lost)
	if r.After != nil {
		n += len(f.GoodOnlyInDLQ)
	}
	return n
}

// Failed reports whether the run found a loss, a duplicate or a wrong result, or could not
// upload everything, or a process exited by itself.
func (r *Report) Failed() bool {
	f := r.Final()
	uploadFailed := false
	for _, b := range r.Batches {
		uploadFailed = uploadFailed || b.Err != "" || b.Failed > 0
	}
	return r.Lost() > 0 || len(f.Duplicate) > 0 || len(f.Wrong) > 0 || uploadFailed || len(r.Exited) > 0
}

// OutageAnswers counts the Vision calls the outage answered (500/503 beyond the injected
// transient errors, and dropped connections).
func (r *Report) OutageAnswers() int64 {
	return r.Vision.ByStatus["500"] + r.Vision.ByStatus["503"] - r.Vision.Transient + r.Vision.Dropped
}

// NotRun lists the scheduled faults that did not happen, with why.
func (r *Report) NotRun() []FaultRecord {
	var out []FaultRecord
	for _, f := range r.Faults {
		if f.Err != "" {
			out = append(out, f)
		}
	}
	return out
}

// Print writes the report.
func (r *Report) Print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("")
	p("chaos report: seed %d, %d files, fault window %v, %v from start to the last check", r.Seed, r.N, r.Window, r.Elapsed.Round(time.Second))
	p("  Vision: %.0f calls/s quota (429 beyond), %.0f%% transient 500/503, one outage; %d calls: %d analysed, %d throttled, %d transient errors, %d answered by the outage; by status %s",
		r.Quota, 100*r.Transient, r.Vision.Calls, r.Vision.Analyses, r.Vision.Throttled, r.Vision.Transient, r.OutageAnswers(), statusText(r.Vision.ByStatus))
	p("  faults (planned, started, over, result):")
	kinds := map[string]int{}
	for _, f := range r.Faults {
		target := f.Target
		if target == "" {
			target = "-"
		}
		p("    %8v %8v %8v  %-18s %-11s %s", f.At.Round(100*time.Millisecond), f.Start.Round(100*time.Millisecond),
			f.End.Round(100*time.Millisecond), f.Kind, target, orOK(f.Err))
		if f.Err == "" {
			kinds[f.Kind+" "+f.Target]++
		}
	}
	var ks []string
	for k, n := range kinds {
		ks = append(ks, fmt.Sprintf("%s x%d", strings.TrimSpace(k), n))
	}
	sort.Strings(ks)
	p("  faults done: %s", strings.Join(ks, ", "))
	for _, b := range r.Batches {
		if b.Err != "" || b.Failed > 0 {
			p("  upload batch %d: %d failed %s %v", b.Batch, b.Failed, b.Err, b.FailedFiles)
		}
	}
	p("  sent: %d uploads (%d good images, %d of them overwritten later by a second version; %d bad files)",
		r.Sent, r.SentGood, r.Overwrites, r.SentBad)
	p("  published: %d records for %d keys seen by the suite's own subscription (copies included)", r.Published, r.PublishedKeys)
	if r.AuditErrors > 0 {
		p("    that subscription's receive failed %d times (retried after 1 s); the last: %s", r.AuditErrors, r.AuditLastError)
	}
	p("  quiet after the last fault: queue empty after %v, last document written %v after; %s",
		r.Quiet.QueueEmpty.Round(time.Second), r.Quiet.LastWrite.Round(time.Second), quietText(r.Quiet))
	printCheck(p, "after the faults", &r.First)
	if r.After != nil {
		p("  replayed with dlq-replay: SQS %s; Pub/Sub %s", replayText(r.Replayed.SQS), replayText(r.Replayed.PubSub))
		p("  quiet after the replay: last document written %v after it; %s", r.AfterQuiet.LastWrite.Round(time.Second), quietText(r.AfterQuiet))
		printCheck(p, "after the replay", r.After)
	} else {
		p("  replayed: nothing (no good image in a DLQ)")
	}
	for _, e := range r.Exited {
		p("  exited by itself: %s", e)
	}
	p("  result: indexed %d of %d good images, lost %d, duplicate %d, wrong %d", r.Final().Indexed, r.SentGood,
		r.Lost(), len(r.Final().Duplicate), len(r.Final().Wrong))
	if nr := r.NotRun(); len(nr) > 0 {
		p("  NOT PROVEN by this run (faults that did not happen):")
		for _, f := range nr {
			p("    %s %s: %s", f.Kind, f.Target, f.Err)
		}
	}
	if r.Failed() {
		p("  FAILED (logs and corpus in %s when kept)", r.WorkDir)
	} else {
		p("  PASSED")
	}
}

func statusText(m map[string]int64) string {
	var parts []string
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func quietText(q Quiet) string {
	switch {
	case q.Complete:
		return fmt.Sprintf("every good image indexed (waited %v)", q.Waited.Round(time.Second))
	case q.TimedOut:
		return fmt.Sprintf("NOT quiet within %v", q.Waited.Round(time.Second))
	default:
		return fmt.Sprintf("nothing changed for the quiet period (waited %v)", q.Waited.Round(time.Second))
	}
}

func replayText(s replaySummary) string {
	if !s.Ran {
		return "not needed"
	}
	return fmt.Sprintf("seen %d, moved %d, skipped %d, came back %d, failed %d", s.Seen, s.Moved, s.Skipped, s.CameBack, s.Failed+s.DeleteErr)
}

func printCheck(p func(string, ...any), when string, c *Check) {
	p("  check %s: %d documents; %d good images indexed exactly once with the right dimensions and ETag; %d bad files once in the DLQ with their reason",
		when, c.Documents, c.Indexed, c.BadDeadLettered)
	p("    dead-lettered (SQS %d, Pub/Sub %d entries): %s", c.SQSDLQ, c.PubSubDLQ, countsText(c.DeadLettered))
	p("    good images in a DLQ: %d (SQS %d, Pub/Sub %d entries; %d of them also indexed)", len(c.GoodDeadLettered),
		c.GoodInSQSDLQ, c.GoodInPubSubDLQ, c.GoodInDLQAndIndexed)
	list := func(name string, xs []string) {
		if len(xs) == 0 {
			return
		}
		p("    %s: %d", name, len(xs))
		for i, x := range xs {
			if i == 20 {
				p("      ... %d more", len(xs)-20)
				break
			}
			p("      %s", x)
		}
	}
	if c.LostPublished > 0 {
		p("    of the lost, %d were published to Pub/Sub and never indexed", c.LostPublished)
	}
	list("LOST", c.Lost)
	list("good images only in a DLQ (lost unless a replay indexes them)", c.GoodOnlyInDLQ)
	list("DUPLICATE", c.Duplicate)
	list("WRONG", c.Wrong)
}

func countsText(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
