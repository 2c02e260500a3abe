// Command dlq-replay is the operator's tool for the pipeline's dead-letter queues: it counts,
// shows, replays (filtered, rate-limited, batched, with a dry run), exports, imports and
// purges the messages of the SQS DLQ or the Pub/Sub dead-letter subscription, and drives SQS's
// native redrive. A message leaves the DLQ only after its send was confirmed.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"

	"imgpipe/dlq-replay/replay"
	"imgpipe/pkg/cli"
)

const usageText = `dlq-replay: inspect and replay the pipeline's dead-letter queues, safely.

Usage:
  dlq-replay COMMAND [settings] [ARGS]

Commands:
  stats          count the DLQ's messages: oldest, newest, by reason, class, key prefix,
                 receive count and replay count
  peek [N]       show N messages (default 10): key, reason, attempts, age, body excerpt
  replay         move messages back to their source; filters --reason --class --prefix
                 --glob --older-than --newer-than --max; --dry-run; --rate; --native
  export FILE    write the messages to a new JSONL file; --delete removes them from the DLQ
                 once the file is written and fsynced
  import FILE    send a JSONL export to a queue (--to URL) or a topic (--to-topic)
  purge --yes    delete every message of the DLQ (refuses without --yes)
  tasks          list SQS native redrive tasks (StartMessageMoveTask) of the DLQ
  cancel HANDLE  cancel an SQS native redrive task

"dlq-replay COMMAND --help" (or "dlq-replay help COMMAND") lists the command's settings. Every setting is a flag and most
are also environment variables; the local stack's env file sets them all.

Sources: --source sqs reads the SQS DLQ (--dlq-url); replays go to --to, else to the queue
whose redrive policy names the DLQ, else to each message's imgpipe.source-queue attribute.
--source pubsub reads the dead-letter subscription (--dead-letter-subscription) and replays
to the pipeline's topic (--to-topic): every subscription of that topic receives the message
again.

Every command makes one pass over the DLQ as it was when it started, of any size: it keeps at
most --window messages leased (invisible to others) at once and releases the oldest as it goes
(SQS visibility 0, Pub/Sub nack; on SQS a look counts as a receive), remembers only a small
fingerprint of each message seen, and ends when the DLQ hands out nothing more or only what it
has already seen. (After a receive that failed, whose batch stays invisible until --hold ends,
an empty DLQ short of its count at the start is waited out until that hold ends.) Messages that came back during a replay (it moved them and the pipeline
dead-lettered them again) or arrived after the start are left and counted, never moved twice.

Replays keep every attribute, set imgpipe.replay-count (incremented) and imgpipe.replayed-at,
and leave a message already replayed --max-replays times in the DLQ, reported. Each batch is
sent (SendMessageBatch / Publish), then only the messages whose send was confirmed are deleted,
while their leases hold (renewed while --rate makes a batch wait): a crash leaves at worst a
duplicate, which the pipeline tolerates. Ctrl-C stops after the current batch and prints the
summary so far; a second Ctrl-C exits at once.

Output: tables on stdout, --json for scripts; a replay's progress bar on stderr when it is a
terminal (never with --json).

Exit status:
  0  done
  1  partial failure: some messages failed, the run was interrupted, or an error stopped it
  2  usage: unknown command or setting, invalid value, purge without --yes`

// Exit codes.
const (
	exitOK      = 0
	exitPartial = 1
	exitUsage   = 2
)

// usageError marks errors that are the operator's to fix (exit status 2).
type usageError = cli.UsageError

func usagef(format string, args ...any) error { return usageError{Err: fmt.Errorf(format, args...)} }

// errPartial is returned when a command finished but not everything succeeded; the command has
// already printed what happened.
var errPartial = errors.New("partial failure")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first Ctrl-C stops after the current batch; stop() restores the default handling,
	// so a second one ends the process at once. The goroutine ends with ctx.
	go func() { <-ctx.Done(); stop() }()
	code := run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, lookup: os.LookupEnv, terminal: cli.Terminal(os.Stderr)})
	stop()
	os.Exit(code)
}

// env is the process environment run works in, replaceable by tests.
type env struct {
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
	terminal       bool // stderr is a terminal: show progress
	// wrap, when set, wraps a replay's source and sink (tests inject faults with it).
	wrap func(replay.Source, replay.Sink) (replay.Source, replay.Sink)
}

func run(ctx context.Context, args []string, e *env) int {
	err := program(e).Execute(ctx, args, e.stdout, e.stderr)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(e.stderr, "dlq-replay: %v\n", err)
		return exitUsage
	case errors.Is(err, errPartial):
		return exitPartial
	default:
		fmt.Fprintf(e.stderr, "dlq-replay: %v\n", err)
		return exitPartial
	}
}

// program is the command line: each command with its settings, read from e's environment.
// The settings every command shares may also come before the command.
func program(e *env) *cli.Program {
	global := newSet("", &command{}, &settings{})
	global.SetLookup(e.lookup)
	p := &cli.Program{Name: "dlq-replay", Help: usageText, Global: global}
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		c, s := commands[name], &settings{}
		set := newSet(name, c, s)
		set.SetLookup(e.lookup)
		p.Commands = append(p.Commands, cli.Command{
			Name: name, Settings: set,
			Args: func(pos []string) error {
				if len(pos) < c.minArgs || len(pos) > c.maxArgs {
					return fmt.Errorf("%s takes %s (see dlq-replay %s --help)", name, c.argsText, name)
				}
				return nil
			},
			Run: func(ctx context.Context, pos []string) error {
				s.command, s.described = name, set.Describe()
				if err := s.check(name); err != nil {
					return err
				}
				return c.run(ctx, e, s, pos)
			},
		})
	}
	return p
}

func atoiArg(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, usagef("%s must be a positive number, got %q", name, v)
	}
	return n, nil
}
