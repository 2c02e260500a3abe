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

type loadSettings struct {
	common
	sending
	rate          float64
	count         int
	duration      time.Duration
	width, height int
	format        string
	seed          int
}

func loadCommand(stdout, stderr io.Writer, code *int) cli.Command {
	s := &loadSettings{}
	set := config.NewSet("uploader load", header)
	s.common.declare(set)
	s.sending.declare(set, uploader.KeysUUID, false)
	set.Float(&s.rate, "rate", "IMGPIPE_LOAD_RATE", 10, "target uploads per second", config.Validate(func() error {
		if s.rate <= 0 {
			return fmt.Errorf("must be positive, got %g", s.rate)
		}
		return nil
	}))
	set.Int(&s.count, "count", "IMGPIPE_LOAD_COUNT", 0, "stop after this many uploads (0: no limit; give --count or --duration)",
		config.Validate(config.Between(&s.count, 0, 100_000_000)))
	set.Duration(&s.duration, "duration", "IMGPIPE_LOAD_DURATION", 0, "stop after this long (0: no limit)")
	set.Int(&s.width, "width", "IMGPIPE_LOAD_WIDTH", 320, "width of generated images", config.Validate(config.Between(&s.width, 1, 16000)))
	set.Int(&s.height, "height", "IMGPIPE_LOAD_HEIGHT", 240, "height of generated images", config.Validate(config.Between(&s.height, 1, 16000)))
	set.String(&s.format, "format", "IMGPIPE_LOAD_FORMAT", "jpeg", "format of generated images: jpeg, png, gif, bmp, tiff",
		config.Validate(config.OneOf(&s.format, "jpeg", "png", "gif", "bmp", "tiff")))
	set.Int(&s.seed, "seed", "IMGPIPE_LOAD_SEED", 0, "seed of the first generated image (0: from the clock)")
	return command("load", set, nil, code, func(ctx context.Context, pos []string) (int, error) {
		if s.count == 0 && s.duration <= 0 {
			return 0, usageError{Err: errors.New("load needs --count or --duration (see load --help)")}
		}
		log, up, done, err := s.start(ctx, &s.common)
		if err != nil {
			return 0, err
		}
		defer done()
		log.Info("uploader load starting", obs.Settings(set.Describe()))
		rep, err := up.Load(ctx, &uploader.LoadOptions{
			Rate: s.rate, Count: s.count, Duration: s.duration, Files: pos,
			Width: s.width, Height: s.height, Format: s.format, Seed: int64(s.seed),
		})
		if err != nil {
			return 0, usageError{Err: err}
		}
		if s.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			err = enc.Encode(rep)
		} else {
			err = rep.WriteText(stdout)
		}
		if err != nil {
			return 0, fmt.Errorf("write report: %w", err)
		}
		return rep.ExitCode(), nil
	})
}
