package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"go.uber.org/zap"

	"imgpipe/pkg/awsclient"
	"imgpipe/pkg/cli"
	"imgpipe/pkg/config"
	"imgpipe/pkg/gcpauth"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/uploader"
)

type statusSettings struct {
	common
	project, database, collection, dlqURL string
	dlqScan                               int
	timeout, interval                     time.Duration
}

// runStatus runs "status" or, with wait set, "wait".
func statusCommand(stdout, stderr io.Writer, code *int, wait bool) cli.Command {
	name := "status"
	if wait {
		name = "wait"
	}
	s := &statusSettings{}
	set := config.NewSet("uploader "+name, header)
	s.common.declare(set)
	set.String(&s.project, "project", "GOOGLE_CLOUD_PROJECT", "", "Google Cloud project of the Firestore index", config.Required())
	set.String(&s.database, "database", "IMGPIPE_FIRESTORE_DATABASE", firestore.DefaultDatabaseID, "Firestore database ID")
	set.String(&s.collection, "collection", "IMGPIPE_COLLECTION", "images", "Firestore collection of the index")
	set.String(&s.dlqURL, "dlq-url", "IMGPIPE_DLQ_URL", "", "URL of the analyzer's dead-letter queue, peeked at (never consumed) for failures; empty: not checked",
		config.Validate(config.HTTPURL(&s.dlqURL)))
	set.Int(&s.dlqScan, "dlq-scan", "IMGPIPE_UPLOAD_DLQ_SCAN", 100, "most dead-letter messages looked at per check",
		config.Validate(config.Between(&s.dlqScan, 1, 10000)))
	if wait {
		set.Duration(&s.timeout, "timeout", "IMGPIPE_UPLOAD_WAIT_TIMEOUT", 2*time.Minute, "give up (exit 3) after this long", config.Validate(config.PositiveDuration(&s.timeout)))
		set.Duration(&s.interval, "interval", "IMGPIPE_UPLOAD_WAIT_INTERVAL", 2*time.Second, "time between checks", config.Validate(config.PositiveDuration(&s.interval)))
	}
	return command(name, set, atLeastOne(name, "KEY or FILE"), code, func(ctx context.Context, pos []string) (int, error) {
		log, stopTracing, err := s.logger(ctx)
		if err != nil {
			return 0, err
		}
		defer log.Sync()
		defer stopTracing()

		cfg, err := awsclient.Config(ctx, &awsclient.Options{Logger: log})
		if err != nil {
			return 0, usageError{Err: err}
		}
		gcreds, err := gcpauth.Load(ctx, nil)
		if err != nil {
			return 0, usageError{Err: err}
		}
		log.Debug("google credentials", zap.Stringer("credential", gcreds))
		fs, err := firestore.NewClientWithDatabase(ctx, s.project, s.database, gcreds.ClientOptions("FIRESTORE_EMULATOR_HOST")...)
		if err != nil {
			return 0, fmt.Errorf("firestore client: %w", err)
		}
		defer fs.Close()
		opts := &uploader.LookupOptions{Index: indexstore.New(fs, s.collection, nil), DLQScan: s.dlqScan, Logger: log}
		if s.dlqURL != "" {
			opts.SQS, opts.DLQURL = awsclient.SQS(cfg), s.dlqURL
		}
		lookup, err := uploader.NewLookup(awsclient.S3(cfg, &awsclient.Options{S3PathStyle: s.pathStyle}), s.bucket, opts)
		if err != nil {
			return 0, err
		}

		var keys, inputs []string
		for _, arg := range pos {
			key, fromFile, err := uploader.ResolveKey(ctx, arg, s.prefix)
			if err != nil {
				return 0, usageError{Err: err}
			}
			keys = append(keys, key)
			if fromFile {
				inputs = append(inputs, arg)
			} else {
				inputs = append(inputs, "")
			}
		}

		var statuses []uploader.ObjectStatus
		timedOut := false
		if wait {
			wctx, cancel := context.WithTimeout(ctx, s.timeout)
			statuses, err = lookup.Wait(wctx, keys, s.interval)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && statuses != nil {
				timedOut, err = true, nil
			}
		} else {
			statuses, err = lookup.Status(ctx, keys)
		}
		if err != nil {
			return 0, err
		}
		for i := range statuses {
			statuses[i].Input = inputs[i]
		}
		if s.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			err = enc.Encode(statuses)
		} else {
			err = writeStatuses(stdout, statuses, s.dlqURL != "")
		}
		if err != nil {
			return 0, fmt.Errorf("write status: %w", err)
		}
		if !wait {
			return 0, nil
		}
		return waitExitCode(statuses, timedOut), nil
	})
}

// waitExitCode: 1 when an upload failed, else 3 when the wait timed out with uploads pending,
// else 0 (all indexed).
func waitExitCode(statuses []uploader.ObjectStatus, timedOut bool) int {
	pending := false
	for _, s := range statuses {
		switch s.State {
		case uploader.StateFailed:
			return uploader.ExitFailed
		case uploader.StatePending:
			pending = true
		}
	}
	if pending || timedOut {
		return uploader.ExitTimeout
	}
	return uploader.ExitOK
}

// writeStatuses prints one block per upload.
func writeStatuses(w io.Writer, statuses []uploader.ObjectStatus, dlqChecked bool) error {
	var b strings.Builder
	for i, s := range statuses {
		if i > 0 {
			b.WriteByte('\n')
		}
		if s.Input != "" {
			fmt.Fprintf(&b, "%s\n  key        %s\n", s.Input, s.Key)
		} else {
			fmt.Fprintf(&b, "%s\n", s.Key)
		}
		switch s.State {
		case uploader.StateIndexed:
			d := s.Document
			fmt.Fprintf(&b, "  state      indexed (%s)\n", d.IndexedAt.UTC().Format(time.RFC3339))
			fmt.Fprintf(&b, "  image      %dx%d %s, %s\n", d.Width, d.Height, d.Format, uploader.FormatBytes(d.Size))
			var tags []string
			for _, t := range d.Tags {
				tags = append(tags, fmt.Sprintf("%s (%.2f)", t.Name, t.Confidence))
			}
			fmt.Fprintf(&b, "  tags       %s\n", orNone(strings.Join(tags, ", ")))
			fmt.Fprintf(&b, "  caption    %s\n", orNone(d.Caption))
		case uploader.StateFailed:
			f := s.Failure
			fmt.Fprintf(&b, "  state      failed: %s", f.Reason)
			if f.Class != "" {
				fmt.Fprintf(&b, " (%s)", f.Class)
			}
			b.WriteByte('\n')
			if f.Error != "" {
				fmt.Fprintf(&b, "  error      %s\n", f.Error)
			}
			if f.Attempts > 0 {
				fmt.Fprintf(&b, "  attempts   %d\n", f.Attempts)
			}
		default:
			where := "the object is in S3, not indexed yet"
			if !s.InS3 {
				where = "no such object in S3"
			}
			if !dlqChecked {
				where += "; dead-letter queue not checked (set --dlq-url)"
			}
			fmt.Fprintf(&b, "  state      pending (%s)\n", where)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
