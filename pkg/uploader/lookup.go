package uploader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/sqsdlq"
	"imgpipe/pkg/config"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/s3event"
)

// State is what the pipeline made of one upload.
type State string

// The states of an upload.
const (
	// StateIndexed: the index holds the object's analysis.
	StateIndexed State = "indexed"
	// StateFailed: a message about the object is in the dead-letter queue.
	StateFailed State = "failed"
	// StatePending: neither yet; ObjectStatus.InS3 says whether the object exists at all.
	StatePending State = "pending"
)

// ReasonRedriven is the failure reason shown for a dead-lettered message that carries no
// reason attributes: SQS's redrive policy moved it after too many receives (a worker crashed
// or timed out on it each time).
const ReasonRedriven = "Redriven"

// ObjectStatus is the state of one upload.
type ObjectStatus struct {
	// Input is the KEY or FILE as given to Lookup (empty when given as a key).
	Input string `json:"input,omitempty"`
	Key   string `json:"key"`
	State State  `json:"state"`
	// InS3 reports whether the object exists in the bucket now.
	InS3 bool `json:"inS3"`
	// Document is the index entry of an indexed object.
	Document *indexstore.Document `json:"document,omitempty"`
	// Failure says why a failed object was dead-lettered.
	Failure *FailureInfo `json:"failure,omitempty"`
}

// Final reports whether the state will not change without new action (indexed or failed).
func (s ObjectStatus) Final() bool { return s.State == StateIndexed || s.State == StateFailed }

// FailureInfo is what a dead-lettered message says about an upload.
type FailureInfo struct {
	Reason      string    `json:"reason"`
	Class       string    `json:"class,omitempty"`
	Error       string    `json:"error,omitempty"`
	Attempts    int       `json:"attempts,omitempty"`
	LastFailure time.Time `json:"lastFailure,omitzero"`
	MessageID   string    `json:"messageId"`
}

// LookupOptions tunes a Lookup. A nil *LookupOptions, and every zero field, takes the default.
type LookupOptions struct {
	// Index is the Firestore index; nil skips it (nothing is ever indexed).
	Index *indexstore.Store
	// SQS and DLQURL name the analyzer's dead-letter queue; without both, it is not looked at.
	SQS    *sqs.Client
	DLQURL string
	// DLQScan bounds the messages one check looks at; default 100.
	DLQScan int
	// DLQHold is the visibility timeout of scanned messages: whole seconds from 1s to 12h,
	// as dlq-replay's --hold (NewLookup refuses anything else); zero means 15s. Scanned messages are made visible again as the scan
	// goes (dlq-replay's scan); the hold only matters if that fails (or the process dies),
	// then they reappear after it. Nothing is deleted.
	DLQHold time.Duration
	// Failures, when set, is asked about failures instead of a scan of SQS/DLQURL: a view of
	// the dead-letter queues shared by many lookups (the console keeps one).
	Failures FailureSource
	Logger   *zap.Logger
}

// FailureSource tells what dead-letter queues say about objects.
type FailureSource interface {
	// Failures returns the failures it knows of, by key, among keys of bucket.
	Failures(ctx context.Context, bucket string, keys map[string]bool) (map[string]FailureInfo, error)
}

// Lookup finds out what the pipeline made of uploads to one bucket.
type Lookup struct {
	s3     *s3.Client
	bucket string
	o      LookupOptions
	log    *zap.Logger
	dlq    replay.Source // the SQS dead-letter queue when SQS and DLQURL are set
}

// NewLookup returns a Lookup for objects of bucket, or an error for invalid options.
func NewLookup(client *s3.Client, bucket string, opts *LookupOptions) (*Lookup, error) {
	o := LookupOptions{}
	if opts != nil {
		o = *opts
	}
	if o.DLQScan <= 0 {
		o.DLQScan = 100
	}
	if o.DLQHold == 0 {
		o.DLQHold = 15 * time.Second
	}
	if err := config.Seconds(o.DLQHold, time.Second, sqsdlq.MaxHold); err != nil {
		return nil, fmt.Errorf("uploader: LookupOptions.DLQHold: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	l := &Lookup{s3: client, bucket: bucket, o: o, log: log}
	if o.SQS != nil && o.DLQURL != "" {
		l.dlq = sqsdlq.New(o.SQS, o.DLQURL, nil) // a 1 s long poll; an empty receive ends the scan
	}
	return l, nil
}

// ResolveKey turns a status argument into an object key: a path to a regular file becomes
// the key the hash scheme gives it under prefix (its content is read), anything else is taken
// as a key. fromFile reports which.
func ResolveKey(ctx context.Context, arg, prefix string) (key string, fromFile bool, err error) {
	st, err := os.Stat(arg)
	if err != nil || st.IsDir() {
		if err == nil {
			return "", false, fmt.Errorf("%s is a directory: name files or keys", arg)
		}
		return arg, false, nil
	}
	f, err := os.Open(arg)
	if err != nil {
		return "", false, fmt.Errorf("open %s: %w", arg, err)
	}
	defer f.Close()
	sum, err := hashFile(ctx, f, st.Size())
	if err != nil {
		return "", false, fmt.Errorf("hash %s: %w", arg, err)
	}
	return KeyFor(KeysHash, prefix, filepath.Base(arg), sum), true, nil
}

// Status returns the state of each key, in order: indexed when the index holds it, else failed
// when the dead-letter queue holds a message about it, else pending. The dead-letter queue is
// only peeked at: every message received is made visible again at once and none is deleted.
func (l *Lookup) Status(ctx context.Context, keys []string) ([]ObjectStatus, error) {
	out := make([]ObjectStatus, len(keys))
	open := map[string]bool{}
	for i, k := range keys {
		out[i] = ObjectStatus{Key: k, State: StatePending}
		if l.o.Index != nil {
			doc, err := l.o.Index.Get(ctx, l.bucket, k)
			switch {
			case err == nil:
				out[i].State, out[i].Document = StateIndexed, doc
				continue
			case !errors.Is(err, indexstore.ErrNotFound):
				return nil, fmt.Errorf("index lookup of %s: %w", k, err)
			}
		}
		open[k] = true
	}
	if len(open) > 0 && (l.o.Failures != nil || l.dlq != nil) {
		var failed map[string]FailureInfo
		var err error
		if l.o.Failures != nil {
			failed, err = l.o.Failures.Failures(ctx, l.bucket, open)
		} else {
			failed, err = l.scanDLQ(ctx, open)
		}
		if err != nil {
			return nil, err
		}
		for i := range out {
			if f, ok := failed[out[i].Key]; ok && out[i].State == StatePending {
				out[i].State, out[i].Failure = StateFailed, &f
			}
		}
	}
	for i := range out {
		exists, err := l.exists(ctx, out[i].Key)
		if err != nil {
			return nil, err
		}
		out[i].InS3 = exists
	}
	return out, nil
}

// Wait polls Status every interval until every key is indexed or failed. When ctx ends first
// it returns the last statuses with ctx's error. A check in progress when ctx ends is
// completed (within pollTimeout), so Wait always returns statuses unless a check fails.
func (l *Lookup) Wait(ctx context.Context, keys []string, interval time.Duration) ([]ObjectStatus, error) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	for {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pollTimeout)
		st, err := l.Status(pctx, keys)
		cancel()
		if err != nil {
			return nil, err
		}
		done := true
		for _, s := range st {
			done = done && s.Final()
		}
		if done {
			return st, nil
		}
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return st, ctx.Err()
		}
	}
}

// pollTimeout bounds one check of Wait.
const pollTimeout = 30 * time.Second

func (l *Lookup) exists(ctx context.Context, key string) (bool, error) {
	_, err := l.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &l.bucket, Key: &key})
	if err == nil {
		return true, nil
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	return false, classifyS3("head "+key, err)
}

// errFoundAll ends a scan of the dead-letter queue once every wanted key was found.
var errFoundAll = errors.New("every wanted key found")

// scanDLQ looks at up to DLQScan messages of the dead-letter queue with dlq-replay's scan (one
// pass over the queue as it is; each message released again as the scan goes, none deleted)
// and notes the failures of the wanted keys of this bucket. It stops once all are found.
func (l *Lookup) scanDLQ(ctx context.Context, want map[string]bool) (map[string]FailureInfo, error) {
	found := map[string]FailureInfo{}
	_, err := replay.Scan(ctx, l.dlq, &replay.ScanOptions{Max: l.o.DLQScan, Hold: l.o.DLQHold}, func(m *replay.Message) error {
		msg, err := s3event.Parse(m.Body)
		if err != nil {
			return nil // not an S3 event: not about an upload
		}
		for _, r := range msg.Records {
			if r.Bucket == l.bucket && want[r.Key] {
				found[r.Key] = NewFailureInfo(m.Failure(), m.ID, m.ReceiveCount)
			}
		}
		if len(found) == len(want) {
			return errFoundAll
		}
		return nil
	})
	switch {
	case errors.Is(err, replay.ErrNotReleased):
		l.log.Warn("release dead-letter messages; they reappear after their visibility timeout",
			zap.Duration("hold", l.o.DLQHold), zap.Error(err))
	case err != nil && !errors.Is(err, errFoundAll):
		return nil, fmt.Errorf("peek dead-letter queue: %w", err)
	}
	return found, nil
}

// NewFailureInfo describes a dead-lettered message: what its attributes say (f), its ID and
// how often it was received. A message without a reason was moved by the queue's redrive
// policy (ReasonRedriven), after as many attempts as it was received.
func NewFailureInfo(f failure.Details, messageID string, received int) FailureInfo {
	info := FailureInfo{Reason: f.Reason, Error: f.Error, Attempts: f.Attempts, LastFailure: f.LastFailure, MessageID: messageID}
	if f.Reason == "" {
		info.Reason, info.Attempts = ReasonRedriven, received
	} else {
		info.Class = f.Class.String()
	}
	return info
}
