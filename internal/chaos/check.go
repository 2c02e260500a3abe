package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/firestore/apiv1/firestorepb"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/dlq-replay/replay"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/queue/sqsqueue"
	"imgpipe/pkg/record"
	"imgpipe/pkg/s3event"
)

// Quiet is how the pipeline came to rest after the last fault.
type Quiet struct {
	// Complete: every good image had a document when it stopped; otherwise it waited until
	// nothing changed for QuietFor (or MaxWait passed: TimedOut).
	Complete, TimedOut bool
	// QueueEmpty and LastWrite are from the end of the last fault to the first poll that
	// saw the queue empty for good, and to the newest document's indexedAt.
	QueueEmpty, LastWrite time.Duration
	Waited                time.Duration
}

// expected is what the check compares with: the last uploaded version of each key.
type expected struct {
	byKey    map[string]Item
	versions map[string][]Item // every uploaded version of a key, oldest first
	good     int
}

func (r *run) expected() expected {
	e := expected{byKey: map[string]Item{}, versions: map[string][]Item{}}
	keys := map[int]map[string]string{}
	for _, b := range r.batches {
		keys[b.Batch] = b.keys
	}
	items := append([]Item(nil), r.corpus.Items...)
	sort.SliceStable(items, func(i, j int) bool { return items[i].Version < items[j].Version })
	for _, it := range items {
		key, ok := keys[it.Batch][it.Rel]
		if !ok {
			continue // not uploaded: reported with its batch
		}
		e.versions[key] = append(e.versions[key], it)
		e.byKey[key] = it
	}
	for _, it := range e.byKey {
		if it.Good {
			e.good++
		}
	}
	return e
}

func (r *run) firestore(ctx context.Context) (*firestore.Client, error) {
	return firestore.NewClient(ctx, r.envMap["GOOGLE_CLOUD_PROJECT"])
}

// queueDepth is the queue's messages visible, in flight and delayed.
func queueDepth(ctx context.Context, client *sqs.Client, url string) (int, error) {
	q, err := sqsqueue.New(client, url, nil)
	if err != nil {
		return 0, err
	}
	d, err := q.Depth(ctx)
	return d.Visible + d.NotVisible + d.Delayed, err
}

func countDocs(ctx context.Context, fs *firestore.Client, collection string) (int64, error) {
	res, err := fs.Collection(collection).NewAggregationQuery().WithCount("n").Get(ctx)
	if err != nil {
		return 0, err
	}
	v, ok := res["n"].(*firestorepb.Value)
	if !ok {
		return 0, fmt.Errorf("count of %s: unexpected result %T", collection, res["n"])
	}
	return v.GetIntegerValue(), nil
}

// waitQuiet polls the queue and the index every 2 s until every good image has a document
// and the queue is empty (then 10 s more without change), or nothing changed for QuietFor,
// or MaxWait passed.
func (r *run) waitQuiet(ctx context.Context, from time.Time) (Quiet, error) {
	var q Quiet
	fs, err := r.firestore(ctx)
	if err != nil {
		return q, err
	}
	defer fs.Close()
	sqsClient := r.st.NewSQSClient()
	want := int64(r.expected().good)
	start := time.Now()
	var emptySince time.Time
	lastState, lastChange := "", time.Now()
	for {
		depth, derr := queueDepth(ctx, sqsClient, r.res.QueueURL)
		dlq, _ := queueDepth(ctx, sqsClient, r.res.DLQURL)
		docs, ferr := countDocs(ctx, fs, r.res.Collection)
		now := time.Now()
		if derr == nil && ferr == nil {
			if depth == 0 {
				if emptySince.IsZero() {
					emptySince = now
				}
			} else {
				emptySince = time.Time{}
			}
			state := fmt.Sprintf("queue %d, DLQ %d, documents %d of %d", depth, dlq, docs, want)
			if state != lastState {
				lastState, lastChange = state, now
				r.logf("chaos: %8v  %s", now.Sub(r.t0).Round(time.Second), state)
			}
			settled := now.Sub(lastChange)
			if depth == 0 && docs >= want && settled >= 10*time.Second {
				q.Complete = true
				break
			}
			if depth == 0 && settled >= r.cfg.QuietFor {
				break
			}
		}
		if now.Sub(start) > r.cfg.MaxWait {
			q.TimedOut = true
			break
		}
		select {
		case <-ctx.Done():
			return q, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	q.Waited = time.Since(start)
	if !emptySince.IsZero() {
		q.QueueEmpty = max(0, emptySince.Sub(from))
	}
	docs, err := indexstore.New(fs, r.res.Collection, nil).List(ctx, r.res.Bucket, len(r.corpus.Items)+1000)
	if err != nil {
		return q, err
	}
	var last time.Time
	for _, d := range docs {
		if d.IndexedAt.After(last) {
			last = d.IndexedAt
		}
	}
	if !last.IsZero() {
		q.LastWrite = last.Sub(from)
	}
	return q, nil
}

// Check is what one check found.
type Check struct {
	Documents int // in the collection
	Indexed   int // good images with exactly their last version's document
	// Lost: good images with neither a document nor a DLQ entry; bad files in no DLQ.
	Lost []string
	// Duplicate: a document overwritten by an older version of its object, a bad file in
	// the DLQ more than once.
	Duplicate []string
	// Wrong: a document whose dimensions, ETag or size differ from the object; a bad file
	// dead-lettered with another reason; a document for a bad file; a document or DLQ entry
	// for a key never uploaded.
	Wrong []string
	// GoodDeadLettered: good images in a DLQ (SQS or Pub/Sub), by key; some may also be
	// indexed (a copy that failed after another succeeded).
	GoodDeadLettered map[string]int
	// GoodInDLQAndIndexed counts those that are also indexed; GoodOnlyInDLQ lists the
	// others (not lost before a replay; lost if still so after it).
	GoodInDLQAndIndexed int
	GoodOnlyInDLQ       []string
	// DeadLettered counts the DLQ entries by queue and reason.
	DeadLettered map[string]int
	// GoodInSQSDLQ and GoodInPubSubDLQ count the good images' DLQ entries by queue.
	GoodInSQSDLQ, GoodInPubSubDLQ int
	// LostPublished counts the lost good images whose record was published (seen by the
	// suite's own subscription): lost between Pub/Sub and Firestore.
	LostPublished int
	// BadDeadLettered: bad files once in the DLQ with their reason.
	BadDeadLettered   int
	SQSDLQ, PubSubDLQ int // entries
}

// check compares the index and the DLQs, read through the real clients and dlq-replay's own
// export (which leaves every message in place), with what was uploaded.
func (r *run) check(ctx context.Context, rep *Report, c *Check) error {
	exp := r.expected()
	rep.Sent, rep.SentGood, rep.SentBad, rep.Overwrites = 0, 0, 0, 0
	for _, vs := range exp.versions {
		rep.Sent += len(vs)
		if vs[0].Good {
			rep.SentGood++
			rep.Overwrites += len(vs) - 1
		} else {
			rep.SentBad++
		}
	}
	fs, err := r.firestore(ctx)
	if err != nil {
		return err
	}
	defer fs.Close()
	docs, err := indexstore.New(fs, r.res.Collection, nil).List(ctx, r.res.Bucket, len(r.corpus.Items)+1000)
	if err != nil {
		return fmt.Errorf("list documents: %w", err)
	}
	c.Documents = len(docs)
	etags, err := r.headAll(ctx, exp)
	if err != nil {
		return err
	}
	sqsDL, err := r.exportDLQ(ctx, "sqs")
	if err != nil {
		return err
	}
	psDL, err := r.exportDLQ(ctx, "pubsub")
	if err != nil {
		return err
	}
	c.SQSDLQ, c.PubSubDLQ = len(sqsDL), len(psDL)
	c.DeadLettered = map[string]int{}
	c.GoodDeadLettered = map[string]int{}
	inDLQ := map[string][]deadLetter{}
	for _, d := range append(sqsDL, psDL...) {
		c.DeadLettered[d.queue+": "+d.reason]++
		inDLQ[d.key] = append(inDLQ[d.key], d)
		if _, ok := exp.byKey[d.key]; !ok {
			c.Wrong = append(c.Wrong, fmt.Sprintf("%s DLQ entry for a key never uploaded: %q", d.queue, d.key))
		}
	}
	byKey := map[string]indexstore.Document{}
	for _, d := range docs {
		byKey[d.Key] = d
		if _, ok := exp.byKey[d.Key]; !ok {
			c.Wrong = append(c.Wrong, fmt.Sprintf("document for a key never uploaded: %q", d.Key))
		}
	}
	keys := make([]string, 0, len(exp.byKey))
	for k := range exp.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		it := exp.byKey[key]
		doc, indexed := byKey[key]
		dls := inDLQ[key]
		if !it.Good {
			switch {
			case indexed:
				c.Wrong = append(c.Wrong, fmt.Sprintf("bad file %q (%s) has a document", key, it.Reason))
			case len(dls) == 0:
				c.Lost = append(c.Lost, fmt.Sprintf("bad file %q (%s) in no DLQ", key, it.Reason))
			case len(dls) > 1:
				c.Duplicate = append(c.Duplicate, fmt.Sprintf("bad file %q in the DLQ %d times", key, len(dls)))
			case dls[0].queue != "sqs" || dls[0].reason != it.Reason || dls[0].class != failure.Permanent.String():
				c.Wrong = append(c.Wrong, fmt.Sprintf("bad file %q dead-lettered in %s as %s %q, want permanent %q", key, dls[0].queue, dls[0].class, dls[0].reason, it.Reason))
			default:
				c.BadDeadLettered++
			}
			continue
		}
		for _, d := range dls {
			if d.queue == "sqs" {
				c.GoodInSQSDLQ++
			} else {
				c.GoodInPubSubDLQ++
			}
		}
		if len(dls) > 0 {
			c.GoodDeadLettered[key] = len(dls)
			if indexed {
				c.GoodInDLQAndIndexed++
			}
		}
		if !indexed {
			if len(dls) == 0 {
				if pub, _, ok := r.audit.newest(key); ok {
					c.LostPublished++
					c.Lost = append(c.Lost, fmt.Sprintf("%q: no document, in no DLQ; its record was published (sequencer %s) and not indexed", key, pub.sequencer))
				} else {
					c.Lost = append(c.Lost, fmt.Sprintf("%q: no document, in no DLQ, and no record of it seen by the suite's subscription", key))
				}
			} else {
				c.GoodOnlyInDLQ = append(c.GoodOnlyInDLQ, fmt.Sprintf("%q: no document, in the %s DLQ (%s)", key, dls[0].queue, dls[0].reason))
			}
			continue
		}
		if pub, _, ok := r.audit.newest(key); ok && pub.sequencer != doc.Sequencer {
			if cmp, err := s3event.CompareSequencer(doc.Sequencer, pub.sequencer); err != nil || cmp < 0 {
				c.Duplicate = append(c.Duplicate, fmt.Sprintf("%q: the document has sequencer %s, older than the newest record published for the key (%s, %s): an older event overwrote it, or the newest was never indexed",
					key, doc.Sequencer, pub.sequencer, pub.event))
				continue
			}
		}
		etag := strings.Trim(doc.ETag, `"`)
		if vs := exp.versions[key]; len(vs) > 1 && etag != etags[key] {
			// Is it an older version's document? Its dimensions say.
			for _, old := range vs[:len(vs)-1] {
				if doc.Width == old.Width && doc.Height == old.Height {
					c.Duplicate = append(c.Duplicate, fmt.Sprintf("%q: the document is of version %d (%dx%d), not of the object's last (%dx%d): an older event overwrote it, or the last one was lost",
						key, old.Version, old.Width, old.Height, it.Width, it.Height))
					etag = ""
					break
				}
			}
			if etag == "" {
				continue
			}
		}
		if doc.Width != it.Width || doc.Height != it.Height || etag != etags[key] || doc.Size != it.Size ||
			doc.Event != record.Created || doc.Sequencer == "" || len(doc.Tags) == 0 {
			c.Wrong = append(c.Wrong, fmt.Sprintf("%q: document %dx%d, %d bytes, etag %s, event %s, sequencer %q, %d tags; object %dx%d, %d bytes, etag %s",
				key, doc.Width, doc.Height, doc.Size, etag, doc.Event, doc.Sequencer, len(doc.Tags), it.Width, it.Height, it.Size, etags[key]))
			continue
		}
		c.Indexed++
	}
	return nil
}

// headAll reads the current ETag of every good key through the S3 client.
func (r *run) headAll(ctx context.Context, exp expected) (map[string]string, error) {
	client := r.st.NewS3Client()
	out := map[string]string{}
	var mu sync.Mutex
	var firstErr error
	keys := make(chan string)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for k := range keys {
				h, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.res.Bucket), Key: aws.String(k)})
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("head %q: %w", k, err)
				} else if err == nil {
					out[k] = strings.Trim(aws.ToString(h.ETag), `"`)
				}
				mu.Unlock()
			}
		})
	}
	for k, it := range exp.byKey {
		if it.Good {
			keys <- k
		}
	}
	close(keys)
	wg.Wait()
	return out, firstErr
}

// deadLetter is one DLQ entry.
type deadLetter struct {
	queue, key, reason, class string
}

// exportDLQ reads a DLQ with `dlq-replay export` (which releases every message it looked
// at, consuming nothing) and returns its entries.
func (r *run) exportDLQ(ctx context.Context, source string) ([]deadLetter, error) {
	file := filepath.Join(r.dir, fmt.Sprintf("dlq-%s-%d.jsonl", source, time.Now().UnixNano()))
	if _, err := r.dlqReplay(ctx, "export", "--source", source, "--json", file); err != nil {
		return nil, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []deadLetter
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var rec replay.Line
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s export: %w", source, err)
		}
		attrs := map[string]string{}
		for k, v := range rec.Attributes {
			if v.StringValue != nil {
				attrs[k] = *v.StringValue
			}
		}
		body := rec.BodyBase64
		if rec.Body != nil {
			body = []byte(*rec.Body)
		}
		det := failure.ParseDetails(attrs)
		reason := det.Reason
		if reason == "" {
			reason = "(no reason: redriven by the queue)"
		}
		class := ""
		if det.Class != 0 || attrs[failure.AttrClass] != "" {
			class = det.Class.String()
		}
		switch source {
		case "sqs":
			msg, err := s3event.Parse(body)
			if err != nil {
				out = append(out, deadLetter{queue: source, key: "(unparsable body)", reason: reason, class: class})
				continue
			}
			for _, rr := range msg.Records {
				out = append(out, deadLetter{queue: source, key: rr.Key, reason: reason, class: class})
			}
		default:
			a, err := record.Unmarshal(body)
			key := "(unparsable record)"
			if err == nil {
				key = a.Key
			}
			out = append(out, deadLetter{queue: source, key: key, reason: reason, class: class})
		}
	}
	return out, sc.Err()
}

// dlqReplay runs the dlq-replay binary and returns its standard output.
func (r *run) dlqReplay(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "dlq-replay"), args...)
	cmd.Env = r.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("dlq-replay %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// Replayed is what the replays of good images did.
type Replayed struct {
	SQS, PubSub replaySummary
}

type replaySummary struct {
	Ran       bool
	Seen      int `json:"seen"`
	Moved     int `json:"moved"`
	Skipped   int `json:"skipped_filter"`
	CameBack  int `json:"came_back"`
	Failed    int `json:"failed"`
	TooMany   int `json:"too_many_replays"`
	DeleteErr int `json:"delete_failed"`
}

// replay moves the good images a DLQ holds back with `dlq-replay replay` (SQS: those under
// the good images' folder; Pub/Sub: every record, each one a good image's), waits for quiet
// and checks again.
func (r *run) replay(ctx context.Context, rep *Report) error {
	sqsGood, psGood := rep.First.GoodInSQSDLQ, rep.First.PubSubDLQ
	if sqsGood == 0 && psGood == 0 {
		return nil
	}
	if sqsGood > 0 {
		out, err := r.dlqReplay(ctx, "replay", "--json", "--prefix", r.res.Prefix+GoodFolder)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(lastJSON(out), &rep.Replayed.SQS); err != nil {
			return fmt.Errorf("dlq-replay replay output: %w", err)
		}
		rep.Replayed.SQS.Ran = true
	}
	if psGood > 0 {
		out, err := r.dlqReplay(ctx, "replay", "--source", "pubsub", "--json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal(lastJSON(out), &rep.Replayed.PubSub); err != nil {
			return fmt.Errorf("dlq-replay replay output: %w", err)
		}
		rep.Replayed.PubSub.Ran = true
	}
	r.logf("chaos: replayed %d (SQS) and %d (Pub/Sub) good images; waiting for quiet", rep.Replayed.SQS.Moved, rep.Replayed.PubSub.Moved)
	q, err := r.waitQuiet(ctx, time.Now())
	if err != nil {
		return err
	}
	rep.AfterQuiet = q
	rep.After = &Check{}
	return r.check(ctx, rep, rep.After)
}

// lastJSON is the JSON document of a --json output.
func lastJSON(b []byte) []byte { return bytes.TrimSpace(b) }
