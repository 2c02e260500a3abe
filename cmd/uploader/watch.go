package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"imgpipe/pkg/config"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/uploader"
)

type watchSettings struct {
	common
	sending
	settle, poll time.Duration
	stateFile    string
	batch        int
}

var watchBools = map[string]bool{"s3-path-style": true, "json": true, "include-non-images": true}

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	s := &watchSettings{}
	set := config.NewSet("uploader watch", header)
	s.common.declare(set)
	s.sending.declare(set, uploader.KeysHash, true)
	set.Duration(&s.settle, "settle", "IMGPIPE_UPLOAD_SETTLE", 2*time.Second, "a file is sent once its size and time have not changed for this long",
		config.Validate(config.PositiveDuration(&s.settle)))
	set.Duration(&s.poll, "poll", "IMGPIPE_UPLOAD_POLL", time.Second, "time between two scans of the folder", config.Validate(config.PositiveDuration(&s.poll)))
	set.String(&s.stateFile, "state-file", "IMGPIPE_UPLOAD_STATE_FILE", "", "state file that makes restarts send nothing twice (default DIR/"+uploader.DefaultStateFile+")")
	set.Int(&s.batch, "batch", "IMGPIPE_UPLOAD_BATCH", 1000, "most files sent per scan", config.Validate(config.Between(&s.batch, 1, 100000)))
	if err := parse(set, args, watchBools, stdout); err != nil {
		return 0, err
	}
	if len(set.Args()) != 1 {
		return 0, usageError{errors.New("watch takes one DIR (see watch --help)")}
	}
	log, stopTracing, err := s.logger(ctx)
	if err != nil {
		return 0, err
	}
	defer log.Sync()
	defer stopTracing()
	up, err := s.newUploader(ctx, &s.common, log)
	if err != nil {
		return 0, err
	}
	enc := json.NewEncoder(stdout)
	w, err := uploader.NewWatcher(up, set.Args()[0], &uploader.WatchOptions{
		Settle: s.settle, Poll: s.poll, StateFile: s.stateFile, Batch: s.batch,
		OnResult: func(r uploader.WatchResult) {
			if s.json {
				_ = enc.Encode(r)
				return
			}
			switch r.Status {
			case uploader.StatusUploaded:
				fmt.Fprintf(stdout, "uploaded  %s -> %s\n", r.Path, r.Key)
			default:
				fmt.Fprintf(stdout, "failed    %s: %s (%s) -> %s\n", r.Path, r.Reason, r.Class, r.MovedTo)
			}
		},
	})
	if err != nil {
		return 0, usageError{err}
	}
	log.Info("uploader watch starting", obs.Settings(set.Describe()))
	fmt.Fprintf(stderr, "uploader: watching %s (Ctrl-C to stop)\n", set.Args()[0])
	if err := w.Run(ctx); err != nil {
		return 0, err
	}
	return 0, nil
}
