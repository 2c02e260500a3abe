package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"imgpipe/internal/stacktest"
)

// promTool returns the path of a binary of the Debian package prometheus (make tools installs
// it): the test is skipped without it, or failed in CI.
func promTool(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/" + name, name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := name + " not found: install the Debian package prometheus (make tools)"
	if stacktest.InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// shortenFor returns the rule file in with the `for:` of every alerting rule that waits
// longer than most set to most, and how many it shortened. Nothing else changes: the
// expressions, labels, annotations and recording rules are the shipped ones. The end-to-end
// test uses it so that an alert meant to wait minutes fires within seconds.
func shortenFor(in []byte, most time.Duration) ([]byte, int, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return nil, 0, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, 0, errors.New("rule file: want one YAML document")
	}
	groups := mapValue(doc.Content[0], "groups")
	if groups == nil || groups.Kind != yaml.SequenceNode {
		return nil, 0, errors.New("rule file: no groups")
	}
	n := 0
	for _, g := range groups.Content {
		rules := mapValue(g, "rules")
		if rules == nil {
			continue
		}
		for _, r := range rules.Content {
			forNode := mapValue(r, "for")
			if mapValue(r, "alert") == nil || forNode == nil {
				continue
			}
			d, err := model.ParseDuration(forNode.Value)
			if err != nil {
				return nil, 0, fmt.Errorf("rule file: for %q: %w", forNode.Value, err)
			}
			if time.Duration(d) > most {
				forNode.Value = model.Duration(most).String()
				n++
			}
		}
	}
	out, err := yaml.Marshal(&doc)
	return out, n, err
}

// mapValue is the value of key in the mapping node m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// promServer is a Prometheus server started by a test, with its storage in a temporary
// folder.
type promServer struct {
	*child
	url    string
	client *http.Client
}

// startPrometheus runs the Prometheus server with config (a prometheus.yml text) on a free
// loopback port and waits until it is ready. It stops when the test ends.
func startPrometheus(t *testing.T, bin, config string) *promServer {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := range 3 { // the free port may be taken before Prometheus binds it
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		p := &promServer{url: "http://" + addr, client: &http.Client{Timeout: 10 * time.Second}}
		p.child = startBinary(t, bin, os.Environ(), "--config.file="+cfg,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
			"--web.listen-address="+addr, "--log.level=warn")
		if lastErr = p.waitReady(time.Minute); lastErr == nil {
			return p
		}
		p.stop(10 * time.Second)
	}
	t.Fatalf("prometheus did not start: %v", lastErr)
	return nil
}

func (p *promServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("prometheus exited: %s", tailFile(p.log, 20))
		default:
		}
		if resp, err := p.client.Get(p.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %s", timeout, tailFile(p.log, 20))
}

// api GETs a /api/v1 path and decodes its data into out.
func (p *promServer) api(path string, query url.Values, out any) error {
	u := p.url + "/api/v1/" + path
	if query != nil {
		u += "?" + query.Encode()
	}
	resp, err := p.client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// promAlert is one entry of /api/v1/alerts.
type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

func (p *promServer) alerts() ([]promAlert, error) {
	var d struct {
		Alerts []promAlert `json:"alerts"`
	}
	err := p.api("alerts", nil, &d)
	return d.Alerts, err
}

// query runs an instant query and returns its samples' values.
func (p *promServer) query(expr string) ([]float64, error) {
	var d struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := p.api("query", url.Values{"query": {expr}}, &d); err != nil {
		return nil, err
	}
	var out []float64
	for _, r := range d.Result {
		s, _ := r.Value[1].(string)
		var v float64
		if _, err := fmt.Sscan(s, &v); err != nil && s != "NaN" {
			return nil, fmt.Errorf("query %s: value %q", expr, s)
		}
		out = append(out, v)
	}
	return out, nil
}

// promtoolCheck runs `promtool check ARGS...` with stdin and fails the test on a problem.
func promtoolCheck(t *testing.T, promtool string, stdin []byte, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, append([]string{"check"}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// tailFile is the end of a log file, for failure messages.
func tailFile(path string, lines int) string {
	b, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
