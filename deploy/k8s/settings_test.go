package k8s

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
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
	helpOnce sync.Once
	helpEnv  map[string]map[string]bool // binary -> environment variables its --help lists
	helpErr  error
)

// helpLine is one setting in --help: "  --flag   ENV   default   meaning".
var helpLine = regexp.MustCompile(`^\s+--([a-z0-9-]+)\s+(\S+)\s`)

// settingsOf returns the environment variables a binary's --help lists as its settings. The
// binaries are built from the product's sources once per test run.
func settingsOf(t *testing.T, binary string) map[string]bool {
	t.Helper()
	helpOnce.Do(func() {
		dir, err := os.MkdirTemp("", "imgpipe-help-")
		if err != nil {
			helpErr = err
			return
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", dir+"/", "./cmd/analyzer", "./cmd/indexer")
		build.Dir = productRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			helpErr = &buildError{out: string(out), err: err}
			return
		}
		helpEnv = map[string]map[string]bool{}
		for name, args := range map[string][]string{"analyzer": {"--help"}, "indexer": {"run", "--help"}} {
			out, err := exec.Command(filepath.Join(dir, name), args...).Output()
			if err != nil {
				helpErr = &buildError{out: string(out), err: err}
				return
			}
			env := map[string]bool{}
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				if m := helpLine.FindStringSubmatch(sc.Text()); m != nil && m[2] != "-" {
					env[m[2]] = true
				}
			}
			if len(env) < 5 {
				helpErr = &buildError{out: string(out), err: errTooFewSettings}
				return
			}
			helpEnv[name] = env
		}
	})
	if helpErr != nil {
		t.Fatalf("reading the settings from --help: %v", helpErr)
	}
	return helpEnv[binary]
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.out) }

var errTooFewSettings = errors.New("fewer than 5 settings found in --help")

// sdkEnv are the environment variables the cloud SDKs and the Go runtime read, which the
// binaries do not list as settings of their own. The README's Settings section names them.
var sdkEnv = map[string]bool{
	"AWS_REGION":                     true, // aws-sdk-go-v2
	"AWS_ROLE_ARN":                   true, // aws-sdk-go-v2 web identity
	"AWS_WEB_IDENTITY_TOKEN_FILE":    true, // aws-sdk-go-v2 web identity
	"GOOGLE_APPLICATION_CREDENTIALS": true, // Google's Application Default Credentials
	"GOMEMLIMIT":                     true, // the Go runtime
}
