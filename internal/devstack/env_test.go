package devstack

import (
	"bytes"
	"maps"
	"testing"
)

// TestEnvRoundTrip: what WriteEnv writes, ParseEnv reads back exactly, odd values included.
func TestEnvRoundTrip(t *testing.T) {
	env := []EnvVar{
		{"AWS_REGION", "us-east-1"}, {"IMGPIPE_PREFIX", "uploads/"},
		{"ODD", `it's = a "test" $HOME \n`}, {"QUOTES", "''"}, {"EMPTY", ""},
	}
	var buf bytes.Buffer
	if err := WriteEnv(&buf, env); err != nil {
		t.Fatal(err)
	}
	got, err := ParseEnv(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, e := range env {
		want[e.Name] = e.Value
	}
	if !maps.Equal(got, want) {
		t.Errorf("ParseEnv(WriteEnv(env)) = %q, want %q", got, want)
	}
	for _, bad := range []string{"AWS_REGION='x'\n", "export X='unterminated\n", "export X=bare\n", "export ='x'\n"} {
		if _, err := ParseEnv([]byte(bad)); err == nil {
			t.Errorf("ParseEnv(%q): no error", bad)
		}
	}
}
