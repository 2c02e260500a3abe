package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"imgpipe/pkg/cli"
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

func watchCommand(stdout, stderr io.Writer, code *int) cli.Command {
	s := &watchSettings{}
	set := config.NewSet("uploader watch", header)
	s.common.declare(set)
	s.sending.declare(set, uploader.KeysHash, true)
	set.Duration(&s.settle, "settle", "IMGPIPE_UPLOAD_SETTLE", 2*time.Second, "a file is sent once its size and time have not changed for this long",
		config.Validate(config.PositiveDuration(&s.settle)))
	set.Duration(&s.poll, "poll", "IMGPIPE_UPLOAD_POLL", time.Second, "time between two scans of the folder", config.Validate(config.PositiveDuration(&s.poll)))
	set.String(&s.stateFile, "state-file", "IMGPIPE_UPLOAD_STATE_FILE", "", "state file that makes restarts send nothing twice (default DIR/"+uploader.DefaultStateFile+")")
	set.Int(&s.batch, "batch", "IMGPIPE_UPLOAD_BATCH", 1000, "most files sent per scan", config.Validate(config.Between(&s.batch, 1, 100000)))
	oneDir := func(pos []string) error {
		if len(pos) != 1 {
			return errors.New("watch takes one DIR (see watch --help)")
		}
		return nil
	}
	return command("watch", set, oneDir, code, func(ctx context.Context, pos []string) (int, error) {
		log, up, done, err := s.start(ctx, &s.common)
		if err != nil {
			return 0, err
		}
		defer done()
		enc := json.NewEncoder(stdout)
		w, err := uploader.NewWatcher(up, pos[0], &uploader.WatchOptions{
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
			return 0, usageError{Err: err}
		}
		log.Info("uploader watch starting", obs.Settings(set.Describe()))
		fmt.Fprintf(stderr, "uploader: watching %s (Ctrl-C to stop)\n", pos[0])
		if err := w.Run(ctx); err != nil {
			return 0, err
		}
		return 0, nil
	})
}
