package devstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MissingError says which prerequisite of the local stack is absent and how to get it.
// Its message is the one line the local-stack command prints before it exits.
type MissingError struct {
	What string // "node", "java", "Pub/Sub emulator", ...
	Hint string // how to get it
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("missing prerequisite: %s: %s", e.What, e.Hint)
}

// IsMissing reports whether err says a prerequisite is missing.
func IsMissing(err error) bool {
	var me *MissingError
	return errors.As(err, &me)
}

// process is one stand-in running as a child process in its own process group, so that
// stopping it also stops whatever it started (the Java child of an emulator wrapper).
type process struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done is closed

	stopOnce sync.Once
}

// startProcess starts argv with its output appended to logPath.
func startProcess(name, logPath string, env []string, argv ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644) // a fresh log per run: readiness is read from it
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	// Own process group: the whole tree is signalled at once. Pdeathsig: if this program dies
	// without stopping the stack, the direct child (node or java, exec'd by the wrappers) dies too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop signals the process group with SIGTERM, waits up to grace, then SIGKILLs the group.
// Safe to call more than once.
func (p *process) stop(grace time.Duration) {
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
		// Whatever the leader left behind in its group goes too.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		_ = p.log.Close()
	})
}

// tail returns the last lines of the process's log, for error messages.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// FreePort asks the kernel for a free loopback port. Another process may take it before the
// caller binds it; callers that cannot bind port 0 themselves retry on a start failure.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url until it answers any HTTP status below 500, the process exits, or ctx ends.
func waitHTTP(ctx context.Context, p *process, url string) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		if done, exitErr := p.exited(); done {
			return fmt.Errorf("%s exited before it answered (%v); log %s:\n%s", p.name, exitErr, p.log.Name(), tail(p.log.Name(), 15))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer at %s: %w; log %s:\n%s", p.name, url, ctx.Err(), p.log.Name(), tail(p.log.Name(), 15))
		case <-tick.C:
		}
	}
}

var fauxqsListening = regexp.MustCompile(`fauxqs listening on (http://127\.0\.0\.1:\d+)`)

// waitLogLine waits until the process's log contains a line matching re and returns the first
// submatch.
func waitLogLine(ctx context.Context, p *process, re *regexp.Regexp) (string, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if f, err := os.Open(p.log.Name()); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					f.Close()
					return m[1], nil
				}
			}
			f.Close()
		}
		if done, exitErr := p.exited(); done {
			return "", fmt.Errorf("%s exited before it was ready (%v); log %s:\n%s", p.name, exitErr, p.log.Name(), tail(p.log.Name(), 15))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s was not ready: %w; log %s:\n%s", p.name, ctx.Err(), p.log.Name(), tail(p.log.Name(), 15))
		case <-tick.C:
		}
	}
}

// findFile returns the first candidate that exists.
func findFile(candidates ...string) (string, bool) {
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, true
		}
	}
	return "", false
}

// dpkgFile asks dpkg where a package installed a file ending in suffix.
func dpkgFile(pkg, suffix string) string {
	out, err := exec.Command("dpkg", "-L", pkg).Output()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(line, suffix) {
			return line
		}
	}
	return ""
}

// RepoRoot walks up from the working directory to the root of the checkout: the directory
// whose go.mod is the product's (module imgpipe), from inside any of its modules.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && productModule.Match(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the go.mod of module imgpipe not found above the working directory")
		}
		dir = parent
	}
}

var productModule = regexp.MustCompile(`(?m)^module\s+imgpipe\s*$`)
