// Package config binds each setting of a binary to a flag and an environment variable, prints
// them all in --help, and stops the program at start with one clear line for a missing or
// invalid setting.
//
// Precedence: a flag given on the command line wins over the environment variable, which wins
// over the default.
//
// The flags are github.com/spf13/pflag flags (the ones cobra parses): they take two dashes
// ("--json", "--rate 5", "--rate=5"), may come before or after the positional arguments, and
// "--" ends them. A boolean setting takes no value ("--json"; "--json=false" to turn it off).
// Binaries with subcommands hand FlagSet to a cobra command and call Resolve once cobra has
// parsed the command line; the others call Parse.
package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
)

// Set is the settings of one command.
type Set struct {
	fs       *pflag.FlagSet
	settings []*setting
	errs     []error
	lookup   func(string) (string, bool)
	header   string
}

type setting struct {
	flag, env, usage string
	required         bool
	secret           bool
	def              string
	value            pflag.Value
	validate         func() error
	f                *pflag.Flag
}

// NewSet returns an empty set for the named command. Its help text starts with header.
func NewSet(name, header string) *Set {
	s := &Set{fs: pflag.NewFlagSet(name, pflag.ContinueOnError), lookup: os.LookupEnv, header: header}
	s.fs.SetOutput(io.Discard)
	s.fs.Usage = func() {}
	return s
}

// Option changes how a setting is declared.
type Option func(*setting)

// Required marks a setting that has no usable default: Parse fails when it is empty.
func Required() Option { return func(st *setting) { st.required = true } }

// Secret keeps a setting's value out of Describe's output.
func Secret() Option { return func(st *setting) { st.secret = true } }

// Validate adds a check run after parsing; its error names the problem, Parse adds the setting.
func Validate(fn func() error) Option { return func(st *setting) { st.validate = fn } }

func (s *Set) add(name, env, usage, def string, v pflag.Value, opts []Option) {
	st := &setting{flag: name, env: env, usage: usage, def: def, value: v}
	for _, o := range opts {
		o(st)
	}
	st.f = s.fs.VarPF(v, name, "", usage)
	if _, ok := v.(*boolValue); ok {
		st.f.NoOptDefVal = "true" // "--json" alone sets it
	}
	s.settings = append(s.settings, st)
}

// String declares a string setting.
func (s *Set) String(p *string, name, env, def, usage string, opts ...Option) {
	*p = def
	s.add(name, env, usage, def, (*stringValue)(p), opts)
}

// Int declares an integer setting.
func (s *Set) Int(p *int, name, env string, def int, usage string, opts ...Option) {
	*p = def
	s.add(name, env, usage, strconv.Itoa(def), (*intValue)(p), opts)
}

// Float declares a floating-point setting.
func (s *Set) Float(p *float64, name, env string, def float64, usage string, opts ...Option) {
	*p = def
	s.add(name, env, usage, strconv.FormatFloat(def, 'g', -1, 64), (*floatValue)(p), opts)
}

// Bool declares a boolean setting.
func (s *Set) Bool(p *bool, name, env string, def bool, usage string, opts ...Option) {
	*p = def
	s.add(name, env, usage, strconv.FormatBool(def), (*boolValue)(p), opts)
}

// Duration declares a duration setting ("1500ms", "30s", "2m").
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, usage string, opts ...Option) {
	*p = def
	s.add(name, env, usage, def.String(), (*durationValue)(p), opts)
}

// ErrHelp is returned by Parse when -h or --help was given; the caller prints Usage and exits 0.
var ErrHelp = pflag.ErrHelp

// Parse reads the command line, then Resolve completes the settings. The error names the
// first bad setting with its flag and environment variable.
func (s *Set) Parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return ErrHelp
		}
		return Explain(err)
	}
	return s.Resolve()
}

// Explain adds a hint to a command-line error when a flag was given with one dash ("-json"):
// pflag reads that as a group of one-letter flags, and no setting has one.
func Explain(err error) error {
	var ne *pflag.NotExistError
	if errors.As(err, &ne) && ne.GetSpecifiedShortnames() != "" {
		return fmt.Errorf("%w: flags take two dashes (--json, not -json)", err)
	}
	return err
}

// HelpAlias returns args with a one-dash "-help" (Go's flag package and the binaries before
// pflag took it) read as "--help" where a flag name can stand, up to a "--" that ends the
// flags; the value of a flag of s that takes one ("--filter -help") stays as it is. A cobra
// command needs it: its help flag has the shorthand h, so it reads "-help" as -h followed by
// the unknown -e, -l, -p. (A Set alone already answers "-help" with ErrHelp: pflag stops at
// the h.) s is the settings of the command the line runs; nil knows of no flag that takes a
// value. It copies args only when it changes one.
func HelpAlias(args []string, s *Set) []string {
	out, copied := args, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return out
		case a == "-help":
			if !copied {
				out, copied = append([]string(nil), args...), true
			}
			out[i] = "--help"
		case s != nil && strings.HasPrefix(a, "--") && !strings.Contains(a, "="):
			if f := s.fs.Lookup(a[2:]); f != nil && f.NoOptDefVal == "" {
				i++ // the next argument is this flag's value
			}
		}
	}
	return out
}

// FlagSet is the settings' flags, for a cobra command (cmd.Flags().AddFlagSet): cobra
// parses them, then the command calls Resolve.
func (s *Set) FlagSet() *pflag.FlagSet { return s.fs }

// Resolve runs after the command line was parsed: it sets each setting not given as a flag
// from its environment variable, then checks required settings and validators.
func (s *Set) Resolve() error {
	for _, st := range s.settings {
		if st.env == "" || st.f.Changed {
			continue
		}
		if v, ok := s.lookup(st.env); ok && v != "" {
			if err := st.value.Set(v); err != nil {
				return fmt.Errorf("invalid %s=%q: %v", st.env, v, err)
			}
		}
	}
	for _, st := range s.settings {
		if st.required && st.value.String() == "" {
			return fmt.Errorf("missing setting %s: %s", st.name(), st.usage)
		}
		if st.validate != nil {
			if err := st.validate(); err != nil {
				return fmt.Errorf("invalid setting %s: %v", st.name(), err)
			}
		}
	}
	return nil
}

// Args returns the arguments left after the flags.
func (s *Set) Args() []string { return s.fs.Args() }

func (st *setting) name() string {
	if st.env == "" {
		return "--" + st.flag
	}
	return fmt.Sprintf("--%s (%s)", st.flag, st.env)
}

// Usage writes the help text: the header, then every setting with its flag, environment
// variable, default and meaning.
func (s *Set) Usage(w io.Writer) {
	fmt.Fprint(w, strings.TrimRight(s.header, "\n")+"\n\nSettings (flag, environment variable, default):\n")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, st := range s.settings {
		env := st.env
		if env == "" {
			env = "-"
		}
		def := st.def
		switch {
		case st.required:
			def = "(required)"
		case def == "":
			def = `""`
		}
		fmt.Fprintf(tw, "  --%s\t%s\t%s\t%s\n", st.flag, env, def, st.usage)
	}
	tw.Flush()
}

// Describe returns the effective settings as name=value pairs, secrets redacted, sorted,
// for a start-up log line.
func (s *Set) Describe() map[string]string {
	out := make(map[string]string, len(s.settings))
	for _, st := range s.settings {
		v := st.value.String()
		if st.secret && v != "" {
			v = "[redacted]"
		}
		out[st.flag] = v
	}
	return out
}

// Names lists the flags, for tests that check the README documents every setting.
func (s *Set) Names() []string {
	var names []string
	for _, st := range s.settings {
		names = append(names, st.flag)
	}
	sort.Strings(names)
	return names
}

// Env lists the environment variables, for the same purpose.
func (s *Set) Env() []string {
	var names []string
	for _, st := range s.settings {
		if st.env != "" {
			names = append(names, st.env)
		}
	}
	sort.Strings(names)
	return names
}

// SetLookup replaces the environment lookup, for tests.
func (s *Set) SetLookup(fn func(string) (string, bool)) { s.lookup = fn }

// Common validators.

// Positive checks that *p > 0.
func Positive(p *int) func() error {
	return func() error {
		if *p <= 0 {
			return fmt.Errorf("must be positive, got %d", *p)
		}
		return nil
	}
}

// Between checks lo <= *p <= hi.
func Between(p *int, lo, hi int) func() error {
	return func() error {
		if *p < lo || *p > hi {
			return fmt.Errorf("must be between %d and %d, got %d", lo, hi, *p)
		}
		return nil
	}
}

// PositiveDuration checks that *p > 0.
func PositiveDuration(p *time.Duration) func() error {
	return func() error {
		if *p <= 0 {
			return fmt.Errorf("must be positive, got %s", *p)
		}
		return nil
	}
}

// Seconds checks that d is whole seconds from lo to hi: what SQS takes for a visibility
// timeout (1s to 12h) or a long-poll wait (0 to 20s), given in seconds.
func Seconds(d, lo, hi time.Duration) error {
	switch {
	case d < lo || d > hi:
		return fmt.Errorf("must be from %s to %s, got %s", lo, hi, d)
	case d%time.Second != 0:
		return fmt.Errorf("must be whole seconds, got %s", d)
	}
	return nil
}

// SecondsBetween checks *p with Seconds.
func SecondsBetween(p *time.Duration, lo, hi time.Duration) func() error {
	return func() error { return Seconds(*p, lo, hi) }
}

// List returns the items of a comma-separated setting ("a, b,,c"), each trimmed, the empty
// ones dropped; nil when there are none.
func List(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// OneOf checks that *p is one of the allowed values.
func OneOf(p *string, allowed ...string) func() error {
	return func() error {
		for _, a := range allowed {
			if *p == a {
				return nil
			}
		}
		return fmt.Errorf("must be one of %s, got %q", strings.Join(allowed, ", "), *p)
	}
}

// HTTPURL checks that a non-empty *p is an absolute http or https URL.
func HTTPURL(p *string) func() error {
	return func() error {
		if *p == "" {
			return nil
		}
		u, err := url.Parse(*p)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("must be an http(s) URL, got %q", *p)
		}
		return nil
	}
}

type stringValue string

func (v *stringValue) Type() string { return "string" }

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }

type intValue int

func (v *intValue) Type() string { return "int" }

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) String() string { return strconv.Itoa(int(*v)) }

type floatValue float64

func (v *floatValue) Type() string { return "float" }

func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("not a number")
	}
	*v = floatValue(f)
	return nil
}
func (v *floatValue) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }

type boolValue bool

func (v *boolValue) Type() string { return "bool" }

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("not a boolean (true/false)")
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) String() string { return strconv.FormatBool(bool(*v)) }

type durationValue time.Duration

func (v *durationValue) Type() string { return "duration" }

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration (like 500ms, 30s, 2m)")
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) String() string { return time.Duration(*v).String() }

// Undocumented returns the flags ("--name") and environment variables of s that doc does not
// mention, so a test can keep a README true to the code.
func (s *Set) Undocumented(doc string) []string {
	var missing []string
	for _, st := range s.settings {
		if !strings.Contains(doc, "--"+st.flag) {
			missing = append(missing, "--"+st.flag)
		}
		if st.env != "" && !strings.Contains(doc, st.env) {
			missing = append(missing, st.env)
		}
	}
	return missing
}
