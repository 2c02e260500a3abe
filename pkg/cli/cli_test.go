package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"imgpipe/pkg/config"
)

// program has one command, "send", with a boolean --json, an integer --batch (also the
// environment variable BATCH), a string --label and a global --json and --label.
func program(env map[string]string) (*Program, *[]string, *int) {
	var got []string
	batch := 0
	var json, gjson bool
	var label string
	set := config.NewSet("tool send", "tool send: sends.")
	set.Bool(&json, "json", "", false, "JSON")
	set.String(&label, "label", "", "", "label")
	set.Int(&batch, "batch", "BATCH", 10, "batch", config.Validate(config.Between(&batch, 1, 10)))
	set.SetLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	global := config.NewSet("tool", "")
	global.Bool(&gjson, "json", "", false, "JSON")
	global.String(&label, "label", "", "", "label")
	p := &Program{Name: "tool", Help: "tool: the help.", Global: global, Commands: []Command{{
		Name: "send", Settings: set,
		Args: func(a []string) error {
			if len(a) > 2 {
				return errors.New("send takes at most two FILEs")
			}
			return nil
		},
		Run: func(_ context.Context, a []string) error {
			got = append(a, map[bool]string{true: "json"}[json])
			if label != "" {
				got = append(got, "label="+label)
			}
			if len(a) > 0 && a[0] == "fail" {
				return errFail
			}
			return nil
		},
	}}}
	return p, &got, &batch
}

var errFail = errors.New("the command's own failure")

func TestExecute(t *testing.T) {
	for _, c := range []struct {
		name   string
		env    map[string]string
		args   []string
		usage  string // the UsageError's text; "" for none
		run    string // the arguments Run got, joined
		batch  int
		stdout string
	}{
		{name: "flags anywhere", args: []string{"send", "a", "--json", "b", "--batch", "3"}, run: "a b json", batch: 3},
		// The command declares the global settings too and reads them wherever they stand.
		{name: "global before the command", args: []string{"--json", "send", "a"}, run: "a json", batch: 10},
		{name: "environment", env: map[string]string{"BATCH": "4"}, args: []string{"send"}, run: "", batch: 4},
		{name: "flag beats environment", env: map[string]string{"BATCH": "0"}, args: []string{"send", "--batch=2"}, run: "", batch: 2},
		{name: "bad environment", env: map[string]string{"BATCH": "0"}, args: []string{"send"}, usage: "invalid setting --batch (BATCH): must be between 1 and 10, got 0"},
		{name: "bad value", args: []string{"send", "--batch", "x"}, usage: `invalid argument "x" for "--batch" flag: not an integer (see tool send --help)`},
		{name: "unknown flag", args: []string{"send", "--nope"}, usage: "unknown flag: --nope (see tool send --help)"},
		{name: "unknown command", args: []string{"fetch"}, usage: `unknown command "fetch" for "tool" (see tool --help)`},
		{name: "missing command", args: nil, usage: "missing command (see tool --help)"},
		{name: "arguments", args: []string{"send", "a", "b", "c"}, usage: "send takes at most two FILEs"},
		{name: "help", args: []string{"--help"}, stdout: "tool: the help.\n"},
		{name: "help of a command", args: []string{"send", "x", "--help"}, stdout: "tool send: sends.\n\nSettings"},
		{name: "help command", args: []string{"help", "send"}, stdout: "tool send: sends.\n\nSettings"},
		{name: "help command alone", args: []string{"help"}, stdout: "tool: the help.\n"},
		{name: "help of no command", args: []string{"help", "fetch"}, usage: `unknown command "fetch" (see tool --help)`},
		{name: "one-dash help", args: []string{"-help"}, stdout: "tool: the help.\n"},
		{name: "one-dash help of a command", args: []string{"send", "-help"}, stdout: "tool send: sends.\n\nSettings"},
		{name: "one-dash help after --", args: []string{"send", "--", "-help"}, run: "-help ", batch: 10},
		// "-help" as the value of a flag that takes one is that value, not a request for help.
		{name: "one-dash help as a value", args: []string{"send", "--label", "-help"}, run: " label=-help", batch: 10},
		{name: "one-dash help as a value with =", args: []string{"send", "--label=-help"}, run: " label=-help", batch: 10},
		// Globals before the command: "-help" is --label's value, and the command is found
		// after --json only because the program's globals say --json takes none.
		{name: "one-dash help as a global's value", args: []string{"--label", "-help", "--json", "send"}, run: "json label=-help", batch: 10},
		{name: "one-dash help after a value", args: []string{"send", "--label", "x", "-help"}, stdout: "tool send: sends.\n\nSettings"},
		{name: "one-dash help after a boolean", args: []string{"send", "--json", "-help"}, stdout: "tool send: sends.\n\nSettings"},
		{name: "one dash", args: []string{"send", "-json"}, usage: `unknown shorthand flag: 'j' in -json: flags take two dashes (--json, not -json) (see tool send --help)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, got, batch := program(c.env)
			var out, errOut bytes.Buffer
			err := p.Execute(context.Background(), c.args, &out, &errOut)
			var ue UsageError
			switch {
			case c.usage != "":
				if !errors.As(err, &ue) || err.Error() != c.usage {
					t.Fatalf("error %v, want the usage error %q", err, c.usage)
				}
			case err != nil:
				t.Fatalf("error %v", err)
			case c.stdout != "":
				if !strings.HasPrefix(out.String(), c.stdout) || *got != nil {
					t.Fatalf("stdout %q (ran %q), want %q", out.String(), *got, c.stdout)
				}
			default:
				if strings.Join(*got, " ") != c.run || *batch != c.batch {
					t.Fatalf("ran with %q, batch %d; want %q, %d", *got, *batch, c.run, c.batch)
				}
			}
		})
	}
	// A command's own error comes back as it is, not as a usage error.
	p, _, _ := program(nil)
	err := p.Execute(context.Background(), []string{"send", "fail"}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, errFail) || errors.As(err, new(UsageError)) {
		t.Fatalf("error %v, want the command's own", err)
	}
}

func TestTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Terminal(&bytes.Buffer{}) || Terminal(f) {
		t.Fatal("a buffer or a file taken for a terminal")
	}
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, 40, false)
	p.Show(10, "10 moved")
	p.Show(50, "50 moved") // more arrived meanwhile
	p.End()
	out := b.String()
	for _, want := range []string{" 25% |", "(10/40)", "10 moved", "100% |", "(40/40)", "50 moved"} {
		if !strings.Contains(out, want) {
			t.Errorf("known total: %q lacks %q", out, want)
		}
	}
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("want one line ended once: %q", out)
	}
	b.Reset()
	p = NewProgress(&b, 0, false)
	p.Show(5, "five")
	p.Show(7, "seven")
	if out := b.String(); !strings.Contains(out, "(7/-)") || !strings.Contains(out, "seven") {
		t.Errorf("unknown total: %q", out)
	}
	b.Reset()
	p.Clear()
	if out := b.String(); !strings.HasPrefix(out, "\r") || strings.TrimSpace(out) != "" {
		t.Errorf("Clear wrote %q, want the line blanked", out)
	}
}
