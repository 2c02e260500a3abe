package images

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/samples"
)

func TestMain(m *testing.M) {
	// The stack finds fauxqs from the module root, which here is deploy/: point it at the
	// product's pinned install.
	if os.Getenv("DEVSTACK_FAUXQS_DIR") == "" {
		os.Setenv("DEVSTACK_FAUXQS_DIR", filepath.Join("..", "..", "devstack", "fauxqs"))
	}
	stacktest.Main(m, devstack.All)
}

// podman is a container runtime set up as this machine needs it (LOCAL-STACK.md): the runc
// runtime, and a containers.conf without default ulimits.
type podman struct {
	t    *testing.T
	conf string
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if stacktest.InCI() {
				t.Fatalf("%s not found: the image test needs it in CI (make tools installs it from scripts/debs.txt)", tool)
			}
			t.Skipf("%s not found: install it (make tools) to run the images", tool)
		}
	}
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &podman{t: t, conf: conf}
}

func (p *podman) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

func (p *podman) must(ctx context.Context, args ...string) string {
	p.t.Helper()
	out, err := p.run(ctx, args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// load loads the image's build for this machine's platform under a tag of its own.
func (p *podman) load(ctx context.Context, b *Built, tag string) string {
	p.t.Helper()
	ref := "localhost/imgpipe-test/" + b.Image.Name + ":" + tag
	file := filepath.Join(p.t.TempDir(), b.Image.Name+".tar")
	if err := WriteArchive(b, "linux/"+runtime.GOARCH, ref, file); err != nil {
		p.t.Fatal(err)
	}
	p.must(ctx, "load", "-q", "-i", file)
	p.t.Cleanup(func() { _, _ = p.run(context.Background(), "rmi", "-f", ref) })
	return ref
}

// securityArgs run a container as the Deployments do: the image's user, a read-only root,
// no capabilities, no privilege escalation; host networking to reach the stack on loopback.
var securityArgs = []string{"--runtime", "runc", "--network", "host", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"}

// The analyzer and indexer images (not the binaries) run against the local stack; the tools
// image uploads images; every image ends indexed, the console image serves them, and the
// three long-running images stop cleanly on SIGTERM.
func TestImagesRunThePipeline(t *testing.T) {
	pm := newPodman(t)
	st := stacktest.Require(t, devstack.All)
	res := stacktest.Bootstrap(t, st, devstack.Resources{VisibilityTimeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	tag := randomTag(t)
	refs := map[string]string{}
	for _, name := range []string{"analyzer", "indexer", "console", "tools"} {
		refs[name] = pm.load(ctx, built(t, name), tag)
	}

	envFile := filepath.Join(t.TempDir(), "stack.env")
	var env strings.Builder
	for _, e := range st.Env(res) {
		fmt.Fprintf(&env, "%s=%s\n", e.Name, e.Value)
	}
	if err := os.WriteFile(envFile, []byte(env.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func(name, metricsAddr string, extra ...string) string {
		cname := "imgpipe-test-" + name + "-" + tag
		args := append([]string{"run", "-d", "--name", cname}, securityArgs...)
		args = append(args, "--env-file", envFile, "-e", "IMGPIPE_LOG_LEVEL=info")
		if metricsAddr != "" {
			args = append(args, "-e", "IMGPIPE_METRICS_ADDR="+metricsAddr)
		}
		args = append(args, extra...)
		pm.must(ctx, append(args, refs[name])...)
		t.Cleanup(func() {
			if t.Failed() {
				logs, _ := pm.run(context.Background(), "logs", "--tail", "30", cname)
				t.Logf("%s logs:\n%s", name, logs)
			}
			_, _ = pm.run(context.Background(), "rm", "-f", "-t", "0", cname)
		})
		return cname
	}
	analyzerAddr, indexerAddr := freeAddr(t), freeAddr(t)
	analyzer := start("analyzer", analyzerAddr, "-e", "IMGPIPE_WAIT_TIME=2s", "-e", "IMGPIPE_DRAIN_TIMEOUT=10s", "-e", "IMGPIPE_VISIBILITY_TIMEOUT=10s")
	indexer := start("indexer", indexerAddr)
	for name, addr := range map[string]string{"analyzer": analyzerAddr, "indexer": indexerAddr} {
		for _, path := range []string{"/healthz", "/readyz"} {
			stacktest.WaitFor(t, name+" image "+path, 2*time.Minute, func() (bool, string) {
				return httpOK("http://" + addr + path)
			})
		}
	}

	// The tools image uploads the files from a read-only bind mount.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := range 6 {
		format := []string{"jpeg", "png", "gif"}[i%3]
		body, err := samples.Image(int64(1000+i), 320, 240, format)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("photo-%d.%s", i, strings.Replace(format, "jpeg", "jpg", 1))
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = true
	}
	runArgs := append([]string{"run", "--rm"}, securityArgs...)
	runArgs = append(runArgs, "--env-file", envFile, "-v", dir+":/data:ro", "-e", "IMGPIPE_UPLOAD_KEYS=path", refs["tools"], "uploader", "put", "--quiet", "/data")
	if out, err := pm.run(ctx, runArgs...); err != nil {
		t.Fatalf("uploader in the tools image: %v", err)
	} else {
		t.Logf("uploader: %s", out)
	}

	fs, err := firestore.NewClient(ctx, st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	store := indexstore.New(fs, res.Collection, nil)
	stacktest.WaitFor(t, "every uploaded image indexed", 3*time.Minute, func() (bool, string) {
		docs, err := store.List(ctx, res.Bucket, 100)
		if err != nil {
			return false, err.Error()
		}
		var got []string
		for _, d := range docs {
			got = append(got, filepath.Base(d.Key))
		}
		sort.Strings(got)
		if len(got) != len(want) {
			return false, fmt.Sprintf("indexed %v", got)
		}
		for _, g := range got {
			if !want[g] {
				return false, fmt.Sprintf("unexpected document %s among %v", g, got)
			}
		}
		return true, ""
	})
	docs, err := store.List(ctx, res.Bucket, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if len(d.Tags) == 0 || d.Width != 320 || d.Height != 240 {
			t.Errorf("%s: document without tags or with the wrong size: %d tags, %dx%d", d.Key, len(d.Tags), d.Width, d.Height)
		}
	}

	// The console image serves the page's API over what was indexed (on loopback it needs no
	// authentication; the manifests give it a token file).
	consoleAddr := freeAddr(t)
	console := start("console", "", "-e", "IMGPIPE_CONSOLE_ADDR="+consoleAddr)
	stacktest.WaitFor(t, "console image /readyz", 2*time.Minute, func() (bool, string) {
		return httpOK("http://" + consoleAddr + "/readyz")
	})
	var page struct {
		Images []struct {
			Key  string            `json:"key"`
			Tags []json.RawMessage `json:"tags"`
		} `json:"images"`
	}
	if err := getJSON("http://"+consoleAddr+"/api/v1/images?limit=100", &page); err != nil {
		t.Fatalf("console image: %v", err)
	}
	var shown []string
	for _, im := range page.Images {
		if len(im.Tags) == 0 {
			t.Errorf("console image: %s without tags", im.Key)
		}
		shown = append(shown, filepath.Base(im.Key))
	}
	sort.Strings(shown)
	if len(shown) != len(want) {
		t.Errorf("console image shows %v, want the %d uploaded images", shown, len(want))
	}
	for _, s := range shown {
		if !want[s] {
			t.Errorf("console image shows %s, which was not uploaded", s)
		}
	}

	// SIGTERM, as a Deployment scale-down sends it: each exits by itself, with status 0.
	for _, c := range []string{analyzer, indexer, console} {
		pm.must(ctx, "stop", "-t", "120", c)
		if code := pm.must(ctx, "inspect", "--format", "{{.State.ExitCode}}", c); code != "0" {
			t.Errorf("%s exited with status %s after SIGTERM", c, code)
		}
	}
}

func randomTag(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func getJSON(url string, v any) error {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func httpOK(url string) (bool, string) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, resp.Status
}
