package k8s

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"imgpipe/deploy/internal/iam"
	"imgpipe/deploy/internal/settings"
)

// productRoot is the product module's folder: the parent of the deploy module.
func productRoot(t testing.TB) string {
	t.Helper()
	root := filepath.Clean(filepath.Join(Dir(), "..", ".."))
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.HasPrefix(b, []byte("module imgpipe\n")) {
		t.Fatalf("product module not found at %s (%v)", root, err)
	}
	return root
}

var (
	settingsOnce sync.Once
	declared     map[string]map[string]settings.Setting
	settingsErr  error
)

// settingsOf returns the settings a binary declares in its code, by environment variable
// (deploy/internal/settings reads them from the sources once per test run).
func settingsOf(t *testing.T, binary string) map[string]settings.Setting {
	t.Helper()
	settingsOnce.Do(func() { declared, settingsErr = settings.Env(productRoot(t), iam.Binaries) })
	if settingsErr != nil {
		t.Fatalf("reading the binaries' settings: %v", settingsErr)
	}
	s, ok := declared[binary]
	if !ok || len(s) < 5 {
		t.Fatalf("%s declares %d settings: the reading of the code is broken", binary, len(s))
	}
	return s
}
