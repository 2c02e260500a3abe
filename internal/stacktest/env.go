package stacktest

import (
	"os"
	"strings"

	"imgpipe/internal/devstack"
)

// ChildEnv is the environment of a pipeline binary started by a test: this process's
// environment without any setting the binaries read (IMGPIPE_*, AWS_*, AZURE_*, GOOGLE_*,
// OTEL_*, the emulator hosts), plus env (the stack's, from Stack.Env).
func ChildEnv(env []devstack.EnvVar) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, p := range []string{"IMGPIPE_", "AWS_", "AZURE_", "GOOGLE_", "OTEL_", "PUBSUB_", "FIRESTORE_", "DLQ_REPLAY_"} {
			if strings.HasPrefix(name, p) {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	for _, e := range env {
		out = append(out, e.Name+"="+e.Value)
	}
	return out
}
