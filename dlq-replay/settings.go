package main

import (
	"context"
	"time"

	"imgpipe/dlq-replay/replay"
	"imgpipe/dlq-replay/sqsdlq"
	"imgpipe/pkg/config"
	"imgpipe/pkg/queue/pubsubqueue"
)

type settings struct {
	command   string
	described map[string]string // the settings as set.Describe reports them, for the log

	source, dlqURL, project, deadLetterSub, logLevel string
	to, toTopic                                      string
	json                                             bool
	hold, wait                                       time.Duration
	window                                           int

	// replay
	reasons, classes, prefix, glob string
	olderThan, newerThan           time.Duration
	max, maxReplays, batch         int
	rate                           float64
	dryRun, native                 bool

	prefixDepth int  // stats
	del         bool // export
	yes         bool // purge
}

type command struct {
	run              func(ctx context.Context, e *env, s *settings, args []string) error
	minArgs, maxArgs int
	argsText         string
	summary          string
	flags            func(set *config.Set, s *settings)
}

var commands map[string]*command

func init() {
	commands = map[string]*command{
		"stats": {run: runStats, maxArgs: 0, argsText: "no arguments", summary: "count the DLQ's messages (consumes nothing)",
			flags: func(set *config.Set, s *settings) {
				set.Int(&s.prefixDepth, "prefix-depth", "", 2, "folders of the key that make its prefix in the by-prefix counts", config.Validate(config.Between(&s.prefixDepth, 1, 32)))
			}},
		"peek": {run: runPeek, maxArgs: 1, argsText: "at most one argument, N", summary: "show N messages and release them"},
		"replay": {run: runReplay, argsText: "no arguments", summary: "move messages back to their source",
			flags: func(set *config.Set, s *settings) {
				destFlags(set, s)
				set.String(&s.reasons, "reason", "", "", "only these failure reasons (comma-separated imgpipe.reason values)")
				set.String(&s.classes, "class", "", "", "only these classes: permanent, transient, throttled (comma-separated)")
				set.String(&s.prefix, "prefix", "", "", "only object keys with this prefix")
				set.String(&s.glob, "glob", "", "", "only object keys matching this glob (* stops at /)")
				set.Duration(&s.olderThan, "older-than", "", 0, "only messages that last failed longer ago than this (0: any)")
				set.Duration(&s.newerThan, "newer-than", "", 0, "only messages that last failed more recently than this (0: any)")
				set.Int(&s.max, "max", "", 0, "move at most this many messages (0: all)")
				set.Int(&s.maxReplays, "max-replays", "DLQ_REPLAY_MAX_REPLAYS", 5, "leave (and report) messages already replayed this many times", config.Validate(config.Positive(&s.maxReplays)))
				set.Int(&s.batch, "batch", "", 10, "messages per receive, send and delete (1 = one at a time)", config.Validate(config.Between(&s.batch, 1, 10)))
				set.Float(&s.rate, "rate", "DLQ_REPLAY_RATE", 0, "messages sent per second (0: unlimited)")
				set.Bool(&s.dryRun, "dry-run", "", false, "report exactly what would move; change nothing")
				set.Bool(&s.native, "native", "", false, "SQS only: start a native full redrive (StartMessageMoveTask); no filters")
			}},
		"export": {run: runExport, minArgs: 1, maxArgs: 1, argsText: "one argument, FILE", summary: "write messages to a JSONL file",
			flags: func(set *config.Set, s *settings) {
				set.Bool(&s.del, "delete", "", false, "remove each batch from the DLQ once it is written and fsynced")
			}},
		"import": {run: runImport, minArgs: 1, maxArgs: 1, argsText: "one argument, FILE", summary: "send a JSONL export to a queue or topic",
			flags: func(set *config.Set, s *settings) {
				destFlags(set, s)
				set.Int(&s.batch, "batch", "", 10, "messages per send", config.Validate(config.Between(&s.batch, 1, 10)))
			}},
		"purge": {run: runPurge, argsText: "no arguments", summary: "delete every message of the DLQ",
			flags: func(set *config.Set, s *settings) {
				set.Bool(&s.yes, "yes", "", false, "confirm: really delete every message")
			}},
		"tasks":  {run: runTasks, argsText: "no arguments", summary: "list SQS native redrive tasks"},
		"cancel": {run: runCancel, minArgs: 1, maxArgs: 1, argsText: "one argument, the task HANDLE", summary: "cancel an SQS native redrive task"},
	}
}

func destFlags(set *config.Set, s *settings) {
	set.String(&s.to, "to", "", "", "SQS: destination queue URL (default: the queue whose redrive policy names the DLQ, else each message's imgpipe.source-queue)", config.Validate(config.HTTPURL(&s.to)))
	set.String(&s.toTopic, "to-topic", "IMGPIPE_TOPIC", "", "Pub/Sub: destination topic, ID or full name (the pipeline's topic)")
}

func newSet(name string, c *command, s *settings) *config.Set {
	set := config.NewSet("dlq-replay "+name, "dlq-replay "+name+": "+c.summary+".\n\nSee dlq-replay --help for commands and exit status.")
	set.String(&s.source, "source", "DLQ_REPLAY_SOURCE", "sqs", "which DLQ: sqs or pubsub", config.Validate(config.OneOf(&s.source, "sqs", "pubsub")))
	set.String(&s.dlqURL, "dlq-url", "IMGPIPE_DLQ_URL", "", "SQS dead-letter queue URL", config.Validate(config.HTTPURL(&s.dlqURL)))
	set.String(&s.project, "project", "GOOGLE_CLOUD_PROJECT", "", "Google Cloud project (Pub/Sub)")
	set.String(&s.deadLetterSub, "dead-letter-subscription", "IMGPIPE_DEAD_LETTER_SUBSCRIPTION", "", "Pub/Sub dead-letter subscription, ID or full name")
	set.Bool(&s.json, "json", "", false, "print JSON instead of tables")
	set.Duration(&s.hold, "hold", "DLQ_REPLAY_HOLD", 10*time.Minute, "how long a message being looked at stays invisible to others at most (whole seconds, 1s to 12h; Pub/Sub at most 10m)", config.Validate(config.SecondsBetween(&s.hold, time.Second, sqsdlq.MaxHold)))
	set.Duration(&s.wait, "wait", "DLQ_REPLAY_WAIT", time.Second, "receive wait (whole seconds, 1s to 20s); an empty receive ends a pass (Pub/Sub: 3 in a row)", config.Validate(config.SecondsBetween(&s.wait, time.Second, 20*time.Second)))
	set.Int(&s.window, "window", "DLQ_REPLAY_WINDOW", replay.DefaultWindow, "most messages a pass keeps leased at once; the oldest are released as new ones come", config.Validate(config.Between(&s.window, 10, 100000)))
	set.String(&s.logLevel, "log-level", "DLQ_REPLAY_LOG_LEVEL", "warn", "log level (JSON logs on stderr): debug, info, warn, error")
	if c.flags != nil {
		c.flags(set, s)
	}
	return set
}

// check validates what depends on several settings.
func (s *settings) check(cmd string) error {
	switch s.source {
	case "sqs":
		if s.dlqURL == "" && cmd != "import" {
			return usagef("missing setting --dlq-url (IMGPIPE_DLQ_URL): the SQS dead-letter queue")
		}
	case "pubsub":
		if s.project == "" {
			return usagef("missing setting --project (GOOGLE_CLOUD_PROJECT)")
		}
		if s.deadLetterSub == "" && cmd != "import" {
			return usagef("missing setting --dead-letter-subscription (IMGPIPE_DEAD_LETTER_SUBSCRIPTION)")
		}
		if cmd == "tasks" || cmd == "cancel" || s.native {
			return usagef("%s is SQS only (--source sqs)", map[bool]string{true: "--native", false: cmd}[s.native])
		}
		if s.hold > pubsubqueue.MaxHold {
			return usagef("invalid setting --hold (DLQ_REPLAY_HOLD): Pub/Sub leases a message for at most %v, got %v", pubsubqueue.MaxHold, s.hold)
		}
	}
	if s.rate < 0 {
		return usagef("invalid setting --rate (DLQ_REPLAY_RATE): must not be negative, got %g", s.rate)
	}
	if s.max < 0 {
		return usagef("invalid setting --max: must not be negative, got %d", s.max)
	}
	if s.native && (s.reasons != "" || s.classes != "" || s.prefix != "" || s.glob != "" || s.olderThan != 0 || s.newerThan != 0 || s.max != 0 || s.dryRun) {
		return usagef("--native moves every message: it takes no filter, --max or --dry-run")
	}
	return nil
}
