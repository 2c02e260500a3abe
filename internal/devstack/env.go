package devstack

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// EnvVar is one environment variable the pipeline's binaries read.
type EnvVar struct{ Name, Value string }

// Env lists the environment a shell or the pipeline binaries need to use this stack: the SDKs'
// own variables first, then the project's. b may be nil when nothing was bootstrapped.
func (s *Stack) Env(b *Bootstrapped) []EnvVar {
	var env []EnvVar
	add := func(name, value string) {
		if value != "" {
			env = append(env, EnvVar{name, value})
		}
	}
	if s.Parts&(SQS|S3) != 0 {
		add("AWS_REGION", s.Region)
		add("AWS_ACCESS_KEY_ID", "test")
		add("AWS_SECRET_ACCESS_KEY", "test")
	}
	add("AWS_ENDPOINT_URL_SQS", s.SQSEndpoint)
	add("AWS_ENDPOINT_URL_S3", s.S3Endpoint)
	if s.S3Endpoint != "" {
		add("IMGPIPE_S3_PATH_STYLE", "true")
	}
	if s.Parts&(PubSub|Firestore) != 0 {
		add("GOOGLE_CLOUD_PROJECT", s.ProjectID)
	}
	add("PUBSUB_EMULATOR_HOST", s.PubSubHost)
	add("FIRESTORE_EMULATOR_HOST", s.FirestoreHost)
	add("AZURE_VISION_ENDPOINT", s.VisionEndpoint)
	add("AZURE_VISION_KEY", s.VisionKey)
	if b != nil {
		if s.Parts&S3 != 0 {
			add("IMGPIPE_BUCKET", b.Bucket)
			add("IMGPIPE_PREFIX", b.Prefix)
		}
		add("IMGPIPE_QUEUE_URL", b.QueueURL)
		add("IMGPIPE_DLQ_URL", b.DLQURL)
		if s.Parts&PubSub != 0 {
			add("IMGPIPE_TOPIC", b.Topic)
			add("IMGPIPE_SUBSCRIPTION", b.Subscription)
			add("IMGPIPE_DEAD_LETTER_SUBSCRIPTION", b.DeadLetterSubscription)
		}
		if s.Parts&Firestore != 0 {
			add("IMGPIPE_COLLECTION", b.Collection)
		}
	}
	return env
}

// WriteEnv writes env as shell export lines, quoted for sh.
func WriteEnv(w io.Writer, env []EnvVar) error {
	for _, e := range env {
		if _, err := fmt.Fprintf(w, "export %s=%s\n", e.Name, shellQuote(e.Value)); err != nil {
			return err
		}
	}
	return nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ParseEnv reads what WriteEnv wrote: lines `export NAME='value'` in sh single quoting.
func ParseEnv(raw []byte) (map[string]string, error) {
	env := map[string]string{}
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rest, ok := strings.CutPrefix(line, "export ")
		name, quoted, ok2 := strings.Cut(rest, "=")
		if !ok || !ok2 || name == "" {
			return nil, fmt.Errorf("env file line %d: want export NAME='value', got %q", i+1, line)
		}
		v, err := shUnquote(quoted)
		if err != nil {
			return nil, fmt.Errorf("env file line %d (%s): %w", i+1, name, err)
		}
		env[name] = v
	}
	return env, nil
}

// shUnquote undoes sh single quoting: quoted runs, each between two quote characters, and a
// backslash-escaped quote between runs (how WriteEnv writes a value holding a quote).
func shUnquote(s string) (string, error) {
	var b strings.Builder
	for len(s) > 0 {
		switch {
		case s[0] == '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated quote")
			}
			b.WriteString(s[1 : 1+end])
			s = s[2+end:]
		case strings.HasPrefix(s, `\'`):
			b.WriteByte('\'')
			s = s[2:]
		default:
			return "", fmt.Errorf("unexpected %q outside quotes", s[0])
		}
	}
	return b.String(), nil
}
