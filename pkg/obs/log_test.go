package obs

import (
	"bytes"
	"encoding/json"
	"log"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/grpclog"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Sync() error { return nil }

var _ zapcore.WriteSyncer = (*lockedBuffer)(nil)

// TestLibraryLogsAreJSON: what the standard log package and gRPC's logger print reaches the
// logger as JSON lines (gRPC's errors only, as gRPC prints by default), never plain text.
func TestLibraryLogsAreJSON(t *testing.T) {
	var buf lockedBuffer
	logger, err := newLogger("test", "debug", &buf)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("own line")
	log.Printf("pubsub: automatic lease modack retry failed for following IDs: %v", []string{"a"})
	grpclog.Errorf("[transport] %s", "connection lost")
	grpclog.Infof("[core] %s", "channel created")
	grpclog.Warningf("[core] %s", "address resolved late")
	lines := strings.Split(strings.TrimSpace(buf.b.String()), "\n")
	want := map[string]string{
		"own line": "info",
		"pubsub: automatic lease modack retry failed for following IDs: [a]": "warn",
		"[transport] connection lost":                                        "error",
	}
	for _, line := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Errorf("not JSON: %q", line)
			continue
		}
		msg, _ := e["msg"].(string)
		lvl, ok := want[msg]
		if !ok {
			t.Errorf("unexpected line %q", line)
			continue
		}
		if e["level"] != lvl || e["component"] != "test" {
			t.Errorf("line %q: level %v component %v, want %s test", line, e["level"], e["component"], lvl)
		}
		delete(want, msg)
	}
	for msg := range want {
		t.Errorf("missing line %q", msg)
	}
	if _, err := newLogger("x", "loud", &buf); err == nil {
		t.Error("a bad level was accepted")
	}
}
