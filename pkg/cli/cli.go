// Package cli runs the command line of a binary with subcommands (uploader, dlq-replay) on
// github.com/spf13/cobra: cobra finds the subcommand and parses its flags (before or after
// the positional arguments, booleans taking no value), and each subcommand's settings are a
// config.Set, so that every setting is a flag and an environment variable and --help lists
// them as in the single-command binaries.
package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"imgpipe/pkg/config"
)

// UsageError marks an error of the command line or of a setting: the operator's to fix
// (exit status 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Command is one subcommand.
type Command struct {
	Name string
	// Settings are the command's flags and environment variables; their Usage is the
	// command's --help.
	Settings *config.Set
	// Args, when set, checks the positional arguments; its error is a usage error.
	Args func(args []string) error
	// Run does the work once the settings are resolved, with the positional arguments.
	Run func(ctx context.Context, args []string) error
}

// Program is a binary with subcommands.
type Program struct {
	Name string
	// Help is the binary's --help text (and what a missing command prints on stderr).
	Help string
	// Global, when set, declares the settings that may also come before the command
	// ("dlq-replay --source pubsub stats"): every command declares them too, and parses them
	// wherever they stand; here they only let the command be found after them.
	Global   *config.Set
	Commands []Command
}

// Execute runs one command line. Errors of the command line (unknown command or flag, a bad
// value, a missing or invalid setting, wrong positional arguments) are UsageErrors naming
// where help is; a command's own errors come back as it returned them. --help (or
// "help [COMMAND]") prints the help on stdout and returns nil.
func (p *Program) Execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ran := false // the error, if any, is the command's own
	root := &cobra.Command{
		Use:                p.Name,
		SilenceErrors:      true,
		SilenceUsage:       true,
		DisableSuggestions: true, // errors stay one line
		CompletionOptions:  cobra.CompletionOptions{DisableDefaultCmd: true},
		RunE: func(*cobra.Command, []string) error {
			ran = true
			fmt.Fprintln(stderr, p.Help)
			return UsageError{fmt.Errorf("missing command (see %s --help)", p.Name)}
		},
	}
	root.SetHelpFunc(func(*cobra.Command, []string) { fmt.Fprintln(stdout, p.Help) })
	root.SetHelpCommand(&cobra.Command{Use: "help [COMMAND]", RunE: func(_ *cobra.Command, a []string) error {
		ran = true
		if len(a) == 0 {
			fmt.Fprintln(stdout, p.Help)
			return nil
		}
		sub, _, err := root.Find(a[:1])
		if err != nil || sub == root {
			return UsageError{fmt.Errorf("unknown command %q (see %s --help)", a[0], p.Name)}
		}
		sub.HelpFunc()(sub, nil)
		return nil
	}})
	if p.Global != nil {
		root.Flags().AddFlagSet(p.Global.FlagSet())
	}
	sets := map[*cobra.Command]*config.Set{root: p.Global} // whose flags a command line holds
	for _, c := range p.Commands {
		c := c
		sub := &cobra.Command{
			Use: c.Name,
			RunE: func(cmd *cobra.Command, pos []string) error {
				ran = true
				if err := c.Settings.Resolve(); err != nil {
					return UsageError{err}
				}
				if c.Args != nil {
					if err := c.Args(pos); err != nil {
						return UsageError{err}
					}
				}
				return c.Run(cmd.Context(), pos)
			},
		}
		sub.Flags().AddFlagSet(c.Settings.FlagSet())
		sub.SetHelpFunc(func(*cobra.Command, []string) { c.Settings.Usage(stdout) })
		root.AddCommand(sub)
		sets[sub] = c.Settings
	}
	var set *config.Set
	if found, _, err := root.Find(args); err == nil {
		set = sets[found]
	}
	root.SetArgs(append([]string{}, config.HelpAlias(args, set)...)) // never nil: cobra would read os.Args
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil || ran {
		return err
	}
	where := p.Name
	if cmd != nil {
		where = cmd.CommandPath()
	}
	return UsageError{fmt.Errorf("%w (see %s --help)", config.Explain(err), where)}
}
