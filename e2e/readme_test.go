package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// helpSetting matches a setting line of a --help text: "  --flag  ENV_NAME  default  meaning".
var helpSetting = regexp.MustCompile(`^\s+--([a-z0-9-]+)\s+([A-Z][A-Z0-9_]+|-)\s`)

// TestREADMEDocumentsEverySetting builds every binary, reads the settings from each --help
// and checks README.md names each flag and environment variable, so the README cannot fall
// behind the code.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary")
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "./cmd/analyzer", "./cmd/indexer", "./cmd/uploader", "./cmd/console")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	build = exec.Command("go", "build", "-o", filepath.Join(bin, "dlq-replay"), "./dlq-replay")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build dlq-replay: %v\n%s", err, out)
	}
	helps := [][]string{
		{"analyzer", "--help"},
		{"indexer", "run", "--help"}, {"indexer", "get", "--help"}, {"indexer", "search", "--help"},
		{"uploader", "put", "--help"}, {"uploader", "status", "--help"}, {"uploader", "wait", "--help"},
		{"uploader", "watch", "--help"}, {"uploader", "load", "--help"},
		{"console", "--help"},
		{"dlq-replay", "stats", "--help"}, {"dlq-replay", "peek", "--help"}, {"dlq-replay", "replay", "--help"},
		{"dlq-replay", "export", "--help"}, {"dlq-replay", "import", "--help"}, {"dlq-replay", "purge", "--help"},
	}
	for _, h := range helps {
		out, err := exec.Command(filepath.Join(bin, h[0]), h[1:]...).Output()
		if err != nil {
			t.Errorf("%s: %v", strings.Join(h, " "), err)
			continue
		}
		found := 0
		for _, line := range strings.Split(string(out), "\n") {
			m := helpSetting.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			found++
			if !strings.Contains(string(readme), "--"+m[1]) {
				t.Errorf("README.md does not mention %s's --%s", strings.Join(h[:len(h)-1], " "), m[1])
			}
			if m[2] != "-" && !strings.Contains(string(readme), m[2]) {
				t.Errorf("README.md does not mention %s's %s", strings.Join(h[:len(h)-1], " "), m[2])
			}
		}
		if found == 0 {
			t.Errorf("%s printed no settings", strings.Join(h, " "))
		}
	}
}
