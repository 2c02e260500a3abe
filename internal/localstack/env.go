package localstack

import (
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
