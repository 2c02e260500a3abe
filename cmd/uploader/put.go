package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"imgpipe/pkg/awsclient"
	"imgpipe/pkg/cli"
	"imgpipe/pkg/config"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/uploader"
)

// common are the settings every command shares.
type common struct {
	bucket, prefix, logLevel string
	pathStyle, json          bool
}

func (c *common) declare(set *config.Set) {
	set.String(&c.bucket, "bucket", "IMGPIPE_BUCKET", "", "S3 bucket of the drop folder", config.Required())
	set.String(&c.prefix, "prefix", "IMGPIPE_PREFIX", uploader.DefaultPrefix, "key prefix the pipeline watches", config.Validate(func() error { return uploader.CheckPrefix(c.prefix) }))
	set.Bool(&c.pathStyle, "s3-path-style", "IMGPIPE_S3_PATH_STYLE", false, "address S3 path-style (stand-ins, some S3-compatible stores)")
	set.String(&c.logLevel, "log-level", "IMGPIPE_LOG_LEVEL", "warn", "log level of the JSON logs on stderr: debug, info (a line per file), warn, error",
		config.Validate(config.OneOf(&c.logLevel, "debug", "info", "warn", "error")))
	set.Bool(&c.json, "json", "", false, "print a JSON document on stdout instead of text")
}

// sending are the settings of the commands that upload (put, watch, load).
type sending struct {
	keys, partSize, include, exclude string
	concurrency, retries             int
	nonImages                        bool
}

func (s *sending) declare(set *config.Set, defaultKeys uploader.KeyScheme, filters bool) {
	set.String(&s.keys, "keys", "IMGPIPE_UPLOAD_KEYS", string(defaultKeys), "key scheme: hash (content hash + name), path (relative path), uuid (new ID + name)",
		config.Validate(config.OneOf(&s.keys, "hash", "path", "uuid")))
	set.Int(&s.concurrency, "concurrency", "IMGPIPE_UPLOAD_CONCURRENCY", uploader.DefaultConcurrency, "files and S3 requests in flight",
		config.Validate(config.Between(&s.concurrency, 1, 512)))
	set.String(&s.partSize, "part-size", "IMGPIPE_UPLOAD_PART_SIZE", "8MiB", "multipart part size (5MiB to 5GiB); larger files are sent in parts",
		config.Validate(func() error {
			n, err := uploader.ParseSize(s.partSize)
			if err == nil && (n < uploader.MinPartSize || n > uploader.MaxPartSize) {
				err = fmt.Errorf("must be between 5MiB and 5GiB, got %s", s.partSize)
			}
			return err
		}))
	set.Int(&s.retries, "retries", "IMGPIPE_UPLOAD_RETRIES", uploader.DefaultRetries, "retries of a failed file after the SDK's own (0: none)",
		config.Validate(config.Between(&s.retries, 0, 100)))
	if !filters {
		return
	}
	set.String(&s.include, "include", "IMGPIPE_UPLOAD_INCLUDE", "", `comma-separated globs; only files in directories matching one are sent ("*.jpg", "2024/**")`,
		config.Validate(func() error { _, err := uploader.NewFilter(config.List(s.include), nil); return err }))
	set.String(&s.exclude, "exclude", "IMGPIPE_UPLOAD_EXCLUDE", "", `comma-separated globs of files in directories to leave out ("**/raw/**")`,
		config.Validate(func() error { _, err := uploader.NewFilter(nil, config.List(s.exclude)); return err }))
	set.Bool(&s.nonImages, "include-non-images", "IMGPIPE_UPLOAD_INCLUDE_NON_IMAGES", false, "also upload files that are not images")
}

// options returns the uploader options of s.
func (s *sending) options() *uploader.Options {
	partSize, _ := uploader.ParseSize(s.partSize)
	retries := s.retries
	if retries == 0 {
		retries = -1 // Options: negative means none
	}
	return &uploader.Options{
		Keys: uploader.KeyScheme(s.keys), Concurrency: s.concurrency, PartSize: partSize,
		Include: config.List(s.include), Exclude: config.List(s.exclude),
		IncludeNonImages: s.nonImages, Retries: retries,
	}
}

// newUploader builds the S3 client from the SDK's chain and an Uploader over it.
// logger opens the command's JSON logger on stderr and its trace export (off unless the
// OTEL_* variables turn it on); the command defers the stop, which flushes the spans.
func (c *common) logger(ctx context.Context) (*zap.Logger, func(), error) {
	log, err := obs.NewLogger("uploader", c.logLevel)
	if err != nil {
		return nil, nil, usageError{Err: err}
	}
	stop, err := obs.StartTracing(ctx, "imgpipe-uploader", log)
	if err != nil {
		return nil, nil, usageError{Err: err}
	}
	return log, stop, nil
}

// start opens the command's logger and trace export (c.logger) and the uploader with the
// sending settings; done stops the export and flushes the log.
func (s *sending) start(ctx context.Context, c *common) (log *zap.Logger, up *uploader.Uploader, done func(), err error) {
	log, stopTracing, err := c.logger(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	done = func() { stopTracing(); _ = log.Sync() }
	opts := s.options()
	opts.Logger = log
	if up, err = newUploader(ctx, c, opts); err != nil {
		done()
		return nil, nil, nil, err
	}
	return log, up, done, nil
}

func newUploader(ctx context.Context, c *common, opts *uploader.Options) (*uploader.Uploader, error) {
	cfg, err := awsclient.Config(ctx, &awsclient.Options{MaxAttempts: 3, Logger: opts.Logger})
	if err != nil {
		return nil, usageError{Err: err}
	}
	up, err := uploader.New(awsclient.S3(cfg, &awsclient.Options{S3PathStyle: c.pathStyle}), c.bucket, c.prefix, opts)
	if err != nil {
		return nil, usageError{Err: err}
	}
	return up, nil
}

type putSettings struct {
	common
	sending
	force, quiet bool
	drain        time.Duration
}

func putCommand(stdout, stderr io.Writer, code *int) cli.Command {
	s := &putSettings{}
	set := config.NewSet("uploader put", header)
	s.common.declare(set)
	s.sending.declare(set, uploader.KeysHash, true)
	set.Bool(&s.force, "force", "", false, "upload even when the bucket holds the same content under the key")
	set.Duration(&s.drain, "drain-timeout", "IMGPIPE_UPLOAD_DRAIN_TIMEOUT", uploader.DefaultDrainTimeout, "on interrupt, how long files in flight may finish",
		config.Validate(config.PositiveDuration(&s.drain)))
	set.Bool(&s.quiet, "quiet", "", false, "no progress bar")
	return command("put", set, atLeastOne("put", "PATH"), code, func(ctx context.Context, pos []string) (int, error) {
		log, stopTracing, err := s.logger(ctx)
		if err != nil {
			return 0, err
		}
		defer log.Sync()
		defer stopTracing()

		opts := s.sending.options()
		opts.Force, opts.DrainTimeout, opts.Logger = s.force, s.drain, log
		if !s.quiet && cli.Terminal(stderr) {
			opts.Progress = progressBar(stderr)
		}
		up, err := newUploader(ctx, &s.common, opts)
		if err != nil {
			return 0, err
		}
		log.Info("uploader put starting", obs.Settings(set.Describe()))
		sum, err := up.Put(ctx, pos)
		if err != nil {
			return 0, err
		}
		if s.json {
			err = sum.WriteJSON(stdout)
		} else {
			err = sum.WriteText(stdout)
		}
		if err != nil {
			return 0, fmt.Errorf("write summary: %w", err)
		}
		return sum.ExitCode(), nil
	})
}

// progressBar returns a Progress callback that draws a bar over the bytes on w, the counts
// beside it. Put calls it from one goroutine.
func progressBar(w io.Writer) func(uploader.Progress) {
	var bar *cli.Progress
	return func(pr uploader.Progress) {
		if bar == nil {
			bar = cli.NewProgress(w, pr.BytesTotal, true)
		}
		bar.Show(pr.BytesDone, pr.String())
		if pr.Final {
			bar.End()
		}
	}
}
