// Command uploader puts images into the pipeline's S3 drop prefix and shows what the pipeline
// made of them. The work is done by imgpipe/pkg/uploader; this file reads settings, builds the
// clients and prints.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"imgpipe/pkg/cli"
	"imgpipe/pkg/config"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/uploader"
)

const header = `uploader: puts images into the pipeline's S3 drop prefix and shows what became of them.

Usage:
  uploader put [settings] PATH...          upload files and directories (recursive)
  uploader status [settings] KEY|FILE...   show the indexed analysis, the failure or "pending"
  uploader wait [settings] KEY|FILE...     wait until each upload is indexed or failed
  uploader watch [settings] DIR            upload what appears in a drop folder, once each
  uploader load [settings] [IMAGE...]      upload generated (or given) images at a target rate
  uploader COMMAND --help                  the settings of one command

put sniffs the content type from the bytes, skips files that are not images (listed in the
summary), uploads large files in concurrent parts, stores the original name and the SHA-256 as
object metadata, and skips content the bucket already holds under the same key. With the
default key scheme (hash) the key is PREFIX + 16 hex digits of the SHA-256 + "/" + file name,
so status and wait accept the FILE itself. Every upload (each part of a large one) carries the
SHA-256 computed first as its S3 checksum, so S3 refuses a file that changed while it was sent;
a file that changed after S3 accepted it has that object deleted again. Both are reported as
FileChanged.

watch sends each file that appears in DIR (subfolders included) once its size stops changing,
then moves it to DIR/done/, or to DIR/failed/ with a .reason file when it can never be sent
(not an image, a permanent S3 error); transient failures stay and are retried, and a file that
changed while it was sent is sent again once it settles, leaving one object. A state file in
DIR makes a restarted watcher send nothing twice.

load uploads images made by the project's sample generator (a new one per upload) or the
IMAGE files given, at --rate per second for --count uploads or --duration, and reports the
achieved rate, latencies and errors by reason.

Examples:
  uploader put ./photos
  uploader put --include '*.jpg,*.png' --exclude '**/raw/**' --concurrency 16 ./photos
  uploader put --keys path --json ./photos > result.json
  uploader status ./photos/cat.jpg
  uploader wait --timeout 5m ./photos/cat.jpg upload/3f2a9c0d1e2b4a5f/dog.png
  uploader watch ./dropbox            (sent files move to dropbox/done/, bad ones to dropbox/failed/)
  uploader load --rate 20 --duration 1m

Flags may come before or after the paths; a flag takes two dashes. Lists (--include, --exclude) are comma-separated.

Exit codes: 0 success; 1 a file failed or the run was interrupted (put), an upload failed
(wait, load), or an error; 2 a bad command line or setting; 3 wait timed out.

AWS settings come from the SDK's own chain: AWS_REGION, the default credentials, and
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_SQS for other endpoints. Google settings: Application
Default Credentials, FIRESTORE_EMULATOR_HOST for the emulator.` + obs.TracingHelp

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	stop := onSignals(cancel)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	cancel()
	os.Exit(code)
}

// onSignals cancels on the first SIGINT/SIGTERM, so that put finishes the files in flight and
// prints its summary, and exits at once on the second. The returned func stops listening.
func onSignals(cancel context.CancelFunc) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-sigs:
			fmt.Fprintln(os.Stderr, "\nuploader: interrupted; finishing the files in flight (interrupt again to quit now)")
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			os.Exit(130)
		case <-done:
		}
	})
	return func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
	}
}

// usageError marks errors of the command line and settings (exit code 2).
type usageError = cli.UsageError

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	code := 0
	prog := &cli.Program{Name: "uploader", Help: header, Commands: []cli.Command{
		putCommand(stdout, stderr, &code),
		statusCommand(stdout, stderr, &code, false),
		statusCommand(stdout, stderr, &code, true),
		watchCommand(stdout, stderr, &code),
		loadCommand(stdout, stderr, &code),
	}}
	err := prog.Execute(ctx, args, stdout, stderr)
	if err == nil {
		return code
	}
	fmt.Fprintf(stderr, "uploader: %v\n", err)
	if errors.As(err, new(usageError)) {
		return uploader.ExitUsage
	}
	return 1
}

// command is the cli.Command name with the settings of set; args checks the positional
// arguments (a usage error), run's exit code goes to *code.
func command(name string, set *config.Set, args func([]string) error, code *int, run func(ctx context.Context, pos []string) (int, error)) cli.Command {
	return cli.Command{Name: name, Settings: set, Args: args, Run: func(ctx context.Context, pos []string) error {
		c, err := run(ctx, pos)
		*code = c
		return err
	}}
}

// atLeastOne is the positional-argument check of a command that takes WHAT...
func atLeastOne(name, what string) func([]string) error {
	return func(pos []string) error {
		if len(pos) == 0 {
			return fmt.Errorf("%s needs at least one %s (see %s --help)", name, what, name)
		}
		return nil
	}
}
