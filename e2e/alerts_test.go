package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/samples"
)

const (
	shippedRules = "../deploy/prometheus/imgpipe-rules.yml"
	circuitAlert = "ImgpipeVisionCircuitOpen"
	// alertFor replaces the shipped rules' `for:` (minutes) in the end-to-end test.
	alertFor = 5 * time.Second
)

// TestShortenFor: the transformation the end-to-end test applies to the shipped rules
// changes only the `for:` of alerts that wait longer than the bound.
func TestShortenFor(t *testing.T) {
	in, err := os.ReadFile(shippedRules)
	if err != nil {
		t.Fatal(err)
	}
	out, n, err := shortenFor(in, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var before, after struct {
		Groups []struct {
			Name  string           `yaml:"name"`
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(in, &before); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(out, &after); err != nil {
		t.Fatal(err)
	}
	longer := 0
	for gi, g := range before.Groups {
		for ri, r := range g.Rules {
			got := after.Groups[gi].Rules[ri]
			want := r
			if f, ok := r["for"].(string); ok {
				d, err := model.ParseDuration(f)
				if err != nil {
					t.Fatal(err)
				}
				if time.Duration(d) > 10*time.Minute {
					longer++
					want = map[string]any{}
					for k, v := range r {
						want[k] = v
					}
					want["for"] = "10m"
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rule %v became %v, want %v", r["alert"], got, want)
			}
		}
	}
	if longer == 0 || n != longer {
		t.Errorf("shortened %d rules; the shipped file has %d alerts waiting longer than 10m (need at least one to test)", n, longer)
	}
	if len(after.Groups) != len(before.Groups) {
		t.Errorf("%d groups became %d", len(before.Groups), len(after.Groups))
	}
	if _, _, err := shortenFor([]byte("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: up\n        for: soon\n"), time.Second); err == nil {
		t.Error("a for: that is no duration was accepted")
	}
}

// child is a process run by a test in its own process group (a pipeline binary, the
// Prometheus server), its output in a log file. It is stopped when the test ends.
type child struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	stopOnce  sync.Once
}

func startBinary(t *testing.T, bin string, env []string, args ...string) *child {
	t.Helper()
	c := &child{name: filepath.Base(bin), log: filepath.Join(t.TempDir(), filepath.Base(bin)+".log"), done: make(chan struct{})}
	f, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = f, f
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", c.name, err)
	}
	go func() {
		_ = c.cmd.Wait()
		f.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.stop(40 * time.Second) // the analyzer's drain
		if t.Failed() {
			t.Logf("%s log tail:\n%s", c.name, tailFile(c.log, 15))
		}
	})
	return c
}

// stop signals the process group with SIGTERM and kills it after grace. Safe to call twice.
func (c *child) stop(grace time.Duration) {
	c.stopOnce.Do(func() {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(grace):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
	})
}

// metricsAddr waits for the binary's "metrics listening" log line and returns its address.
func (c *child) metricsAddr(t *testing.T) string {
	t.Helper()
	addr := ""
	stacktest.WaitFor(t, c.name+" serving /metrics", time.Minute, func() (bool, string) {
		select {
		case <-c.done:
			t.Fatalf("%s exited: %s", c.name, tailFile(c.log, 15))
		default:
		}
		b, _ := os.ReadFile(c.log)
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "metrics listening" {
				addr = line.Addr
				return true, ""
			}
		}
		return false, "no metrics listening line yet"
	})
	return addr
}

// exported scrapes a binary's /metrics and returns its series names (a histogram's _bucket,
// _sum and _count) and the exposition itself.
func exported(t *testing.T, addr string) (map[string]bool, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics of %s: %v", addr, err)
	}
	names := map[string]bool{}
	for name, mf := range families {
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names, body
}

// setVisionFaults replaces the Vision stand-in's faults through its admin API.
func setVisionFaults(t *testing.T, st *devstack.Stack, faults string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, strings.TrimRight(st.VisionEndpoint, "/")+"/admin/faults", strings.NewReader(faults))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT /admin/faults %s: %s: %s", faults, resp.Status, b)
	}
}

// TestAlertsOnTheLocalStack: a real Prometheus server scrapes the real analyzer and indexer
// binaries on the local stack and evaluates the shipped rules (only their `for:` shortened to
// alertFor by shortenFor). Images go through; then the Vision stand-in has an outage and the
// circuit alert goes pending and then firing, with the shipped labels and runbook; when Vision
// is back it clears, and every image ends indexed. Afterwards every rule evaluated without
// error, the latency SLI's recording rule has data, the binaries' expositions pass promtool's
// lint, and they export every metric the rules and the dashboard read (the lists kept by the
// deploy module's tests).
func TestAlertsOnTheLocalStack(t *testing.T) {
	prometheus, promtool := promTool(t, "prometheus"), promTool(t, "promtool")
	st := stacktest.Get(t)
	// Every half-open probe during the outage is a receive: a high redrive count keeps the
	// few messages of this test out of the DLQ however long the machine takes.
	res := stacktest.Bootstrap(t, st, devstack.Resources{VisibilityTimeout: 10 * time.Second, MaxReceiveCount: 100})
	setVisionFaults(t, st, `{}`)
	t.Cleanup(func() { setVisionFaults(t, st, `{}`) })

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "./cmd/analyzer", "./cmd/indexer")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	env := os.Environ()
	for _, e := range st.Env(res) {
		env = append(env, e.Name+"="+e.Value)
	}
	env = append(env, "IMGPIPE_METRICS_ADDR=127.0.0.1:0", "IMGPIPE_LOG_LEVEL=info")
	analyzer := startBinary(t, filepath.Join(bin, "analyzer"), env,
		"--workers", "2", "--wait-time", "1s", "--depth-interval", "1s", "--visibility-timeout", "10s",
		"--breaker-failures", "3", "--breaker-cooldown", "2s", "--vision-retries", "0", "--drain-timeout", "10s")
	indexer := startBinary(t, filepath.Join(bin, "indexer"), env, "run")
	analyzerAddr, indexerAddr := analyzer.metricsAddr(t), indexer.metricsAddr(t)

	shipped, err := os.ReadFile(shippedRules)
	if err != nil {
		t.Fatal(err)
	}
	rules, n, err := shortenFor(shipped, alertFor)
	if err != nil || n == 0 {
		t.Fatalf("shorten the rules' for: %d rules, %v", n, err)
	}
	rulesPath := filepath.Join(t.TempDir(), "imgpipe-rules.yml")
	if err := os.WriteFile(rulesPath, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	promtoolCheck(t, promtool, nil, "rules", rulesPath)
	prom := startPrometheus(t, prometheus, fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: imgpipe-analyzer
    static_configs: [{targets: [%q]}]
  - job_name: imgpipe-indexer
    static_configs: [{targets: [%q]}]
`, rulesPath, analyzerAddr, indexerAddr))
	stacktest.WaitFor(t, "both targets scraped", time.Minute, func() (bool, string) {
		v, err := prom.query(`sum(up{job=~"imgpipe-analyzer|imgpipe-indexer"})`)
		return err == nil && len(v) == 1 && v[0] == 2, fmt.Sprintf("up %v, %v", v, err)
	})

	fs, err := firestore.NewClient(context.Background(), st.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	store := indexstore.New(fs, res.Collection, nil)
	s3c := st.NewS3Client()
	put := func(from, to int) {
		for i := from; i < to; i++ {
			body, err := samples.Image(int64(7700+i), 120, 90, "png")
			if err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("%salerts/img-%02d.png", res.Prefix, i)
			if _, err := s3c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(res.Bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
				t.Fatalf("put %s: %v", key, err)
			}
		}
	}
	indexed := func(want int) func() (bool, string) {
		return func() (bool, string) {
			docs, err := store.List(context.Background(), res.Bucket, 100)
			return err == nil && len(docs) == want, fmt.Sprintf("%d documents, %v", len(docs), err)
		}
	}
	circuit := func() (state string, a promAlert) {
		alerts, err := prom.alerts()
		if err != nil {
			t.Fatalf("alerts: %v", err)
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == circuitAlert {
				return a.State, a
			}
		}
		return "inactive", promAlert{}
	}

	// Vision answers: the first images are indexed and the circuit alert stays inactive.
	put(0, 4)
	stacktest.WaitFor(t, "the first 4 images indexed", 2*time.Minute, indexed(4))
	if s, _ := circuit(); s != "inactive" {
		t.Fatalf("%s is %s while Vision answers", circuitAlert, s)
	}

	// Vision is down: the circuit opens with messages waiting; the alert goes pending, then
	// firing once the shortened for: has passed.
	setVisionFaults(t, st, `{"outages":[{}]}`)
	put(4, 10)
	var seen []string
	var firing promAlert
	stacktest.WaitFor(t, circuitAlert+" firing", 2*time.Minute, func() (bool, string) {
		s, a := circuit()
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
		firing = a
		return s == "firing", fmt.Sprintf("states seen %v", seen)
	})
	t.Logf("%s went %v", circuitAlert, seen)
	if !slices.Contains(seen, "pending") {
		t.Errorf("%s went %v: never pending before firing", circuitAlert, seen)
	}
	if firing.Labels["severity"] != "critical" || firing.Labels["instance"] != analyzerAddr || firing.Labels["job"] != "imgpipe-analyzer" {
		t.Errorf("firing alert labels %v", firing.Labels)
	}
	if !strings.Contains(firing.Annotations["summary"], analyzerAddr) || !strings.Contains(firing.Annotations["runbook"], "Azure AI Vision") {
		t.Errorf("firing alert annotations %v", firing.Annotations)
	}

	// Vision is back: the next probe closes the circuit, the alert clears, and every image
	// ends indexed.
	setVisionFaults(t, st, `{}`)
	stacktest.WaitFor(t, circuitAlert+" cleared", 2*time.Minute, func() (bool, string) {
		s, _ := circuit()
		return s == "inactive", "state " + s
	})
	stacktest.WaitFor(t, "all 10 images indexed", 2*time.Minute, indexed(10))

	// Every shipped rule evaluated against the binaries' real series without error.
	var groups struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := prom.api("rules", nil, &groups); err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			count++
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q, %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if count == 0 {
		t.Error("Prometheus loaded no rules")
	}
	t.Logf("%d rules loaded", count)
	stacktest.WaitFor(t, "the latency SLI recorded", time.Minute, func() (bool, string) {
		v, err := prom.query(`job:imgpipe_indexer_end_to_end_slow:ratio_rate5m{job="imgpipe-indexer"}`)
		return err == nil && len(v) == 1, fmt.Sprintf("%v, %v", v, err)
	})

	// The binaries export every metric the rules and the dashboard read, in an exposition
	// promtool finds nothing to fault in.
	names := map[string]bool{}
	for _, addr := range []string{analyzerAddr, indexerAddr} {
		got, body := exported(t, addr)
		for n := range got {
			names[n] = true
		}
		promtoolCheck(t, promtool, body, "metrics")
	}
	for _, list := range []string{"../deploy/prometheus/metrics.txt", "../deploy/grafana/metrics.txt"} {
		b, err := os.ReadFile(list)
		if err != nil {
			t.Fatal(err)
		}
		read := 0
		for _, line := range strings.Split(string(b), "\n") {
			line, _, _ = strings.Cut(line, "#")
			if line = strings.TrimSpace(line); line == "" {
				continue
			}
			read++
			if !names[line] {
				t.Errorf("%s names %s, which neither the analyzer nor the indexer exports", list, line)
			}
		}
		if read == 0 {
			t.Errorf("%s lists no metric", list)
		}
		t.Logf("%s: all %d metrics exported", list, read)
	}
}
