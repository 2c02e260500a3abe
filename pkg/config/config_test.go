package config

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

type fixture struct {
	queue   string
	workers int
	wait    time.Duration
	dry     bool
	key     string
	rate    float64
}

func newFixture(env map[string]string) (*Set, *fixture) {
	f := &fixture{}
	s := NewSet("analyzer", "analyzer: analyses images.")
	s.String(&f.queue, "queue-url", "IMGPIPE_QUEUE_URL", "", "SQS queue URL", Required(), Validate(HTTPURL(&f.queue)))
	s.Int(&f.workers, "workers", "IMGPIPE_WORKERS", 8, "worker count", Validate(Between(&f.workers, 1, 512)))
	s.Duration(&f.wait, "wait", "IMGPIPE_WAIT", 20*time.Second, "long-poll wait")
	s.Bool(&f.dry, "dry-run", "", false, "do nothing")
	s.String(&f.key, "vision-key", "AZURE_VISION_KEY", "", "Vision key", Secret())
	s.Float(&f.rate, "rate", "IMGPIPE_RATE", 10, "calls per second")
	s.SetLookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return s, f
}

func TestPrecedenceAndTypes(t *testing.T) {
	s, f := newFixture(map[string]string{"IMGPIPE_QUEUE_URL": "http://env/q", "IMGPIPE_WORKERS": "4", "AZURE_VISION_KEY": "sekrit", "IMGPIPE_RATE": "2.5"})
	if err := s.Parse([]string{"--workers", "16", "--wait=5s", "--dry-run", "rest"}); err != nil {
		t.Fatal(err)
	}
	if f.queue != "http://env/q" || f.workers != 16 || f.wait != 5*time.Second || !f.dry || f.rate != 2.5 {
		t.Fatalf("got %+v", f)
	}
	if got := s.Args(); len(got) != 1 || got[0] != "rest" {
		t.Fatalf("args %v", got)
	}
	if d := s.Describe(); d["vision-key"] != "[redacted]" || d["workers"] != "16" {
		t.Fatalf("describe %v", d)
	}
}

func TestErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"missing required", nil, nil, "missing setting --queue-url (IMGPIPE_QUEUE_URL)"},
		{"bad env int", map[string]string{"IMGPIPE_QUEUE_URL": "http://q", "IMGPIPE_WORKERS": "many"}, nil, `invalid IMGPIPE_WORKERS="many": not an integer`},
		{"bad flag duration", map[string]string{"IMGPIPE_QUEUE_URL": "http://q"}, []string{"--wait", "soon"}, "not a duration"},
		{"validator", map[string]string{"IMGPIPE_QUEUE_URL": "http://q"}, []string{"--workers", "0"}, "invalid setting --workers (IMGPIPE_WORKERS): must be between 1 and 512, got 0"},
		{"url validator", map[string]string{"IMGPIPE_QUEUE_URL": "not a url"}, nil, "invalid setting --queue-url (IMGPIPE_QUEUE_URL): must be an http(s) URL"},
		{"unknown flag", map[string]string{"IMGPIPE_QUEUE_URL": "http://q"}, []string{"--nope"}, "unknown flag: --nope"},
		{"one dash", map[string]string{"IMGPIPE_QUEUE_URL": "http://q"}, []string{"-workers", "3"}, "unknown shorthand flag: 'w' in -workers: flags take two dashes (--json, not -json)"},
		{"bad flag int", map[string]string{"IMGPIPE_QUEUE_URL": "http://q"}, []string{"--workers", "many"}, `invalid argument "many" for "--workers" flag: not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newFixture(tt.env)
			err := s.Parse(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// Flags may follow the positional arguments, a boolean flag takes no value (so the argument
// after it stays positional), a flag given after a positional argument still wins over its
// environment variable, and "--" ends the flags.
func TestFlagsAnywhere(t *testing.T) {
	s, f := newFixture(map[string]string{"IMGPIPE_QUEUE_URL": "http://env/q", "IMGPIPE_WORKERS": "4"})
	if err := s.Parse([]string{"a", "--dry-run", "b", "--workers", "16", "c", "--", "--rate", "-x"}); err != nil {
		t.Fatal(err)
	}
	if !f.dry || f.workers != 16 || f.rate != 10 || f.queue != "http://env/q" {
		t.Fatalf("got %+v", f)
	}
	if got := strings.Join(s.Args(), " "); got != "a b c --rate -x" {
		t.Fatalf("args %q, want \"a b c --rate -x\"", got)
	}
	s, f = newFixture(map[string]string{"IMGPIPE_QUEUE_URL": "http://q"})
	if err := s.Parse([]string{"x", "--dry-run=false"}); err != nil || f.dry {
		t.Fatalf("--dry-run=false: %+v, %v", f, err)
	}
}

func TestHelp(t *testing.T) {
	s, _ := newFixture(nil)
	if err := s.Parse([]string{"--help"}); !errors.Is(err, ErrHelp) {
		t.Fatalf("got %v, want ErrHelp", err)
	}
	var b bytes.Buffer
	s.Usage(&b)
	for _, want := range []string{"analyzer: analyses images.", "--queue-url", "IMGPIPE_QUEUE_URL", "(required)", "--workers", "8", "--dry-run"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, b.String())
		}
	}
	if len(s.Names()) != 6 || len(s.Env()) != 5 {
		t.Fatalf("names %v env %v", s.Names(), s.Env())
	}
}

func TestUndocumented(t *testing.T) {
	s, _ := newFixture(nil)
	doc := "--queue-url IMGPIPE_QUEUE_URL --workers IMGPIPE_WORKERS --wait --dry-run --vision-key AZURE_VISION_KEY --rate"
	got := s.Undocumented(doc)
	if len(got) != 2 || got[0] != "IMGPIPE_WAIT" || got[1] != "IMGPIPE_RATE" {
		t.Fatalf("Undocumented = %v, want [IMGPIPE_WAIT IMGPIPE_RATE]", got)
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		d      time.Duration
		lo, hi time.Duration
		ok     bool
	}{
		{time.Second, time.Second, 12 * time.Hour, true},
		{12 * time.Hour, time.Second, 12 * time.Hour, true},
		{0, 0, 20 * time.Second, true},
		{999 * time.Millisecond, time.Second, 12 * time.Hour, false},
		{1500 * time.Millisecond, time.Second, 12 * time.Hour, false},
		{12*time.Hour + time.Second, time.Second, 12 * time.Hour, false},
		{-time.Second, 0, 20 * time.Second, false},
	} {
		if err := Seconds(tc.d, tc.lo, tc.hi); (err == nil) != tc.ok {
			t.Errorf("Seconds(%s, %s, %s) = %v, want ok %v", tc.d, tc.lo, tc.hi, err, tc.ok)
		}
	}
	d := 500 * time.Millisecond
	if SecondsBetween(&d, time.Second, time.Minute)() == nil {
		t.Error("SecondsBetween accepted 500ms")
	}
}

// TestOneDashHelp: "-help", as Go's flag package took it, still asks for the help; after "--"
// it is an argument.
func TestOneDashHelp(t *testing.T) {
	s := NewSet("tool", "")
	var json bool
	s.Bool(&json, "json", "", false, "JSON")
	if err := s.Parse([]string{"-help"}); !errors.Is(err, ErrHelp) {
		t.Fatalf("Parse(-help) = %v, want ErrHelp", err)
	}
	s = NewSet("tool", "")
	s.Bool(&json, "json", "", false, "JSON")
	if err := s.Parse([]string{"--", "-help"}); err != nil || len(s.Args()) != 1 || s.Args()[0] != "-help" {
		t.Fatalf("Parse(-- -help) = %v, args %q", err, s.Args())
	}
}

// TestHelpAlias: a one-dash "-help" becomes "--help" where a flag name can stand, and stays
// as it is where it is the value of a flag that takes one, or after "--".
func TestHelpAlias(t *testing.T) {
	s := NewSet("tool", "")
	var json bool
	var filter string
	s.Bool(&json, "json", "", false, "JSON")
	s.String(&filter, "filter", "", "", "filter")
	for _, c := range []struct {
		set  *Set
		args string
		want string
	}{
		{s, "-help", "--help"},
		{s, "a -help b", "a --help b"},
		{s, "--filter -help", "--filter -help"},
		{s, "--filter=-help -help", "--filter=-help --help"},
		{s, "--filter x -help", "--filter x --help"},
		{s, "--json -help", "--json --help"},
		{s, "--filter -help -help", "--filter -help --help"},
		{s, "-- -help", "-- -help"},
		{nil, "--filter -help", "--filter --help"}, // nil: no flag is known to take a value
	} {
		args := strings.Fields(c.args)
		orig := strings.Join(args, " ")
		if got := strings.Join(HelpAlias(args, c.set), " "); got != c.want {
			t.Errorf("HelpAlias(%s) = %s, want %s", c.args, got, c.want)
		}
		if strings.Join(args, " ") != orig {
			t.Errorf("HelpAlias(%s) changed its argument", c.args)
		}
	}
	// The Set alone reads the value as pflag does.
	if err := s.Parse([]string{"--filter", "-help"}); err != nil || filter != "-help" {
		t.Fatalf("Parse(--filter -help) = %v, filter %q", err, filter)
	}
}

func TestList(t *testing.T) {
	if got := List(" *.jpg, ,**/raw/**,"); !slices.Equal(got, []string{"*.jpg", "**/raw/**"}) {
		t.Errorf("List = %q", got)
	}
	if got := List(" , "); got != nil {
		t.Errorf("List(\" , \") = %q", got)
	}
	if got := List(""); got != nil {
		t.Errorf("List(\"\") = %q", got)
	}
}
