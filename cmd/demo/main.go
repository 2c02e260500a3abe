// Command demo runs the whole pipeline on the local stack on the sample images, prints what
// was indexed and what failed and why, and shuts everything down. It is the README's main
// command (`make run`).
//
// It starts the stand-ins (internal/devstack), creates the resources, builds and starts the
// real analyzer and indexer binaries with the environment the stack prints, uploads the
// generated samples with the real uploader binary, waits until every good image is indexed and
// every bad one is dead-lettered, starts the web console on the results and prints its
// address, and exits 0 only if the pipeline did exactly that. With -keep (make run KEEP=1)
// everything stays up until Ctrl-C, so the results can be looked at in a browser.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/internal/devstack"
	"imgpipe/internal/otlprecv"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/s3event"
	"imgpipe/pkg/samples"
)

func main() {
	workDir := flag.String("dir", ".stack/demo", "folder for the built binaries, the samples and the logs")
	timeout := flag.Duration("timeout", 4*time.Minute, "how long to wait for the pipeline to finish the samples")
	keep := flag.Bool("keep", false, "keep the stack, the pipeline and the console up until Ctrl-C")
	consoleAddr := flag.String("console-addr", "127.0.0.1:8080", "address of the web console (a free loopback port when taken)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "demo: the whole pipeline on the local stack, on generated sample images.\n\nUsage: demo [flags]\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *workDir, *timeout, *keep, *consoleAddr); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...)
}

func run(ctx context.Context, dir string, timeout time.Duration, keep bool, consoleAddr string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	binDir, sampleDir, logDir := filepath.Join(dir, "bin"), filepath.Join(dir, "samples"), filepath.Join(dir, "logs")
	for _, d := range []string{binDir, sampleDir, logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}

	step("building analyzer, indexer, uploader and console")
	build := exec.CommandContext(ctx, "go", "build", "-o", binDir, "./cmd/analyzer", "./cmd/indexer", "./cmd/uploader", "./cmd/console")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}

	step("generating sample images in %s", sampleDir)
	all, err := samples.Generate(sampleDir)
	if err != nil {
		return err
	}

	step("starting the local stack (SQS, S3, Pub/Sub, Firestore, Vision) on 127.0.0.1")
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	st, err := devstack.Start(startCtx, &devstack.Options{LogDir: logDir})
	if err != nil {
		return err
	}
	defer func() {
		step("stopping the local stack")
		closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = st.Close(closeCtx)
	}()
	boot, err := st.Bootstrap(startCtx, devstack.Resources{})
	if err != nil {
		return err
	}
	env := os.Environ()
	for _, e := range st.Env(boot) {
		env = append(env, e.Name+"="+e.Value)
	}
	// Shorter waits than production so the demo shuts down quickly.
	env = append(env, "IMGPIPE_WAIT_TIME=2s", "IMGPIPE_DRAIN_TIMEOUT=10s")

	// The binaries send their traces to a receiver in the demo, for the per-stage times.
	recv, err := otlprecv.New()
	if err != nil {
		return err
	}
	defer recv.Close()
	env = append(env, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+recv.GRPCAddr, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_BSP_SCHEDULE_DELAY=200")

	step("starting analyzer and indexer (logs in %s)", logDir)
	var procs []*child
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	indexerPort, err := devstack.FreePort()
	if err != nil {
		return err
	}
	for _, name := range []string{"analyzer", "indexer"} {
		// Each serves /metrics on a loopback port of its own, so they can share the machine.
		addr := "IMGPIPE_METRICS_ADDR=127.0.0.1:0"
		if name == "indexer" {
			addr = fmt.Sprintf("IMGPIPE_METRICS_ADDR=127.0.0.1:%d", indexerPort)
		}
		p, err := startChild(filepath.Join(binDir, name), filepath.Join(logDir, name+".log"), append(env, addr))
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}

	step("uploading %d sample files with the uploader", len(all))
	up := exec.CommandContext(ctx, filepath.Join(binDir, "uploader"), "put", "--json", "--quiet", "--include-non-images", sampleDir)
	up.Env = env
	up.Stderr = os.Stderr
	out, err := up.Output()
	if err != nil && len(out) == 0 {
		return fmt.Errorf("uploader: %w", err)
	}
	uploaded, err := parseUpload(out, sampleDir)
	if err != nil {
		return err
	}

	step("waiting for the pipeline (up to %s)", timeout)
	fs, err := firestore.NewClient(ctx, st.ProjectID)
	if err != nil {
		return err
	}
	defer fs.Close()
	store := indexstore.New(fs, boot.Collection, nil)
	res, err := await(ctx, st.NewSQSClient(), store, boot, all, uploaded, timeout, procs)
	if err != nil {
		return err
	}
	printReport(os.Stdout, res)
	var indexed []string
	for _, r := range res.rows {
		if r.doc != nil {
			indexed = append(indexed, r.key)
		}
	}
	printLatency(os.Stdout, fmt.Sprintf("http://127.0.0.1:%d/metrics", indexerPort), recv, indexed, 10*time.Second)
	if res.problems > 0 {
		return fmt.Errorf("%d samples did not end as expected (see above)", res.problems)
	}
	step("done: every good image indexed, every bad file dead-lettered with its reason")

	url, err := startConsole(filepath.Join(binDir, "console"), filepath.Join(logDir, "console.log"), env, consoleAddr, &procs)
	if err != nil {
		return err
	}
	if !keep {
		fmt.Printf("console: %s (stopped with the rest now; make run KEEP=1 keeps it up)\n", url)
		return nil
	}
	fmt.Printf("console: %s\n", url)
	step("keeping the stack, the analyzer, the indexer and the console up: open %s; Ctrl-C stops everything", url)
	<-ctx.Done()
	return nil
}

// startConsole starts the console binary on addr (or a free loopback port when addr is
// taken), telling it to give the bucket the CORS rule for uploads from its page, waits until
// it serves, and returns its address.
func startConsole(bin, logPath string, env []string, addr string, procs *[]*child) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("console address: %w", err)
		}
	}
	addr = ln.Addr().String()
	ln.Close()
	url := "http://" + addr
	p, err := startChild(bin, logPath, append(env, "IMGPIPE_CONSOLE_ADDR="+addr, "IMGPIPE_CONSOLE_BUCKET_CORS="+url))
	if err != nil {
		return "", err
	}
	*procs = append(*procs, p)
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if err := p.exited(); err != nil {
			return "", err
		}
		resp, err := client.Get(url + "/api/v1/info")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url + "/", nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the console did not answer on %s within 30s (log: %s)", url, logPath)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// parseUpload maps each sample's relative path to the key the uploader gave it.
func parseUpload(out []byte, root string) (map[string]string, error) {
	var doc struct {
		Files []struct {
			Path, Key, Status, Reason string
		} `json:"files"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("read uploader output: %w", err)
	}
	keys := map[string]string{}
	for _, f := range doc.Files {
		rel, err := filepath.Rel(root, f.Path)
		if err != nil {
			rel = f.Path
		}
		rel = filepath.ToSlash(rel)
		if f.Status != "uploaded" && f.Status != "skipped" {
			return nil, fmt.Errorf("uploader could not upload %s: %s", rel, f.Reason)
		}
		keys[rel] = f.Key
	}
	return keys, nil
}

type row struct {
	sample samples.Sample
	key    string
	doc    *indexstore.Document
	failed *failure.Details
	ok     bool
}

type report struct {
	rows     []row
	problems int
}

// await polls the index and the DLQ until every sample has its expected end, or timeout.
func await(ctx context.Context, sqsClient *sqs.Client, store *indexstore.Store, boot *devstack.Bootstrapped,
	all []samples.Sample, keys map[string]string, timeout time.Duration, procs []*child) (*report, error) {
	deadline := time.Now().Add(timeout)
	failures := map[string]failure.Details{}
	for {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return nil, err
			}
		}
		// Peek at the dead letters: each is visible again a second later and stays in the DLQ,
		// for the console to show.
		got, err := sqsClient.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(boot.DLQURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 1, MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			return nil, fmt.Errorf("read DLQ: %w", err)
		}
		for _, m := range got.Messages {
			attrs := map[string]string{}
			for k, v := range m.MessageAttributes {
				attrs[k] = aws.ToString(v.StringValue)
			}
			if msg, err := s3event.Parse([]byte(aws.ToString(m.Body))); err == nil {
				for _, r := range msg.Records {
					failures[r.Key] = failure.ParseDetails(attrs)
				}
			}
		}

		rep := &report{}
		for _, s := range all {
			r := row{sample: s, key: keys[filepath.ToSlash(s.Name)]}
			if f, ok := failures[r.key]; ok {
				r.failed = &f
			}
			if d, err := store.Get(ctx, boot.Bucket, r.key); err == nil {
				r.doc = d
			} else if !errors.Is(err, indexstore.ErrNotFound) {
				return nil, err
			}
			if s.Good {
				r.ok = r.doc != nil && r.failed == nil
			} else {
				r.ok = r.doc == nil && r.failed != nil && r.failed.Reason == s.WantReason
			}
			if !r.ok {
				rep.problems++
			}
			rep.rows = append(rep.rows, r)
		}
		if rep.problems == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return rep, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// child is one pipeline binary running under the demo.
type child struct {
	name, logPath string
	cmd           *exec.Cmd
	log           *os.File
	done          chan struct{}
	err           error
}

func startChild(bin, logPath string, env []string) (*child, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	c := &child{name: filepath.Base(bin), logPath: logPath, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// exited returns an error with the end of the child's log if it has stopped.
func (c *child) exited() error {
	select {
	case <-c.done:
		b, _ := os.ReadFile(c.logPath)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		return fmt.Errorf("%s stopped early (%v); the end of %s:\n%s", c.name, c.err, c.logPath, strings.Join(lines, "\n"))
	default:
		return nil
	}
}

// stop asks the child to drain and waits for it.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.log.Close()
}

func printReport(w io.Writer, rep *report) {
	sort.SliceStable(rep.rows, func(i, j int) bool { return rep.rows[i].sample.Good && !rep.rows[j].sample.Good })
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nINDEXED\tKEY\tSIZE\tTAGS\tCAPTION")
	for _, r := range rep.rows {
		if !r.sample.Good {
			continue
		}
		if r.doc == nil {
			fmt.Fprintf(tw, "MISSING\t%s\t\t\t%s\n", r.key, failureText(r.failed))
			continue
		}
		var tags []string
		for i, t := range r.doc.Tags {
			if i == 5 {
				tags = append(tags, "...")
				break
			}
			tags = append(tags, t.Name)
		}
		fmt.Fprintf(tw, "yes\t%s\t%dx%d\t%s\t%s\n", r.key, r.doc.Width, r.doc.Height, strings.Join(tags, ", "), r.doc.Caption)
	}
	fmt.Fprintln(tw, "\nFAILED\tKEY\tREASON\tEXPECTED\tERROR")
	for _, r := range rep.rows {
		if r.sample.Good {
			continue
		}
		verdict := "as expected"
		if !r.ok {
			verdict = "UNEXPECTED"
		}
		reason, text := "(not dead-lettered)", ""
		if r.failed != nil {
			reason, text = r.failed.Reason, r.failed.Error
			if i := strings.LastIndex(text, ": "); i >= 0 && len(text) > 90 {
				text = text[i+2:]
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", verdict, r.key, reason, r.sample.WantReason, text)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func failureText(f *failure.Details) string {
	if f == nil {
		return "not indexed"
	}
	return "dead-lettered: " + f.Reason
}
