package stacktest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// childEnv names the child a re-executed test binary runs instead of its tests.
const childEnv = "IMGPIPE_TEST_CHILD"

// Child is a program a test binary can run as a process of its own (see StartChild), so that
// a test can SIGKILL it: a crash that no in-process stop can imitate. Run gets the child's
// arguments and runs until the process is signalled; what it prints on stdout the parent
// reads line by line.
type Child struct {
	Name string
	Run  func(args []string) error
}

// runChild runs the child the environment names, if any, and exits: called by Main before
// anything else, so a child never starts a stack of its own.
func runChild(children []Child) {
	name := os.Getenv(childEnv)
	if name == "" {
		return
	}
	for _, c := range children {
		if c.Name == name {
			if err := c.Run(flagArgs()); err != nil {
				fmt.Fprintf(os.Stderr, "child %s: %v\n", name, err)
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
	fmt.Fprintf(os.Stderr, "no child %q registered in this test binary's TestMain\n", name)
	os.Exit(2)
}

// flagArgs returns the arguments after "--".
func flagArgs() []string {
	for i, a := range os.Args {
		if a == "--" {
			return os.Args[i+1:]
		}
	}
	return nil
}

// ChildProcess is a running child.
type ChildProcess struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
}

// StartChild runs the child name (registered with Main) as a new process of this test binary,
// with env added to the environment and args passed to its Run. The child dies with the test
// binary; the test's cleanup kills it if it still runs.
func StartChild(t testing.TB, name string, env []string, args ...string) *ChildProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(append(os.Environ(), childEnv+"="+name), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", name, err)
	}
	c := &ChildProcess{Name: name, cmd: cmd, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.cond.Broadcast()
			c.mu.Unlock()
		}
		_ = cmd.Wait()
		c.mu.Lock()
		close(c.done)
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	t.Cleanup(c.Kill)
	return c
}

// WaitLine waits until the child printed a line starting with prefix and returns it, or fails
// the test after timeout or when the child exits first.
func (c *ChildProcess) WaitLine(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for _, l := range c.lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		select {
		case <-c.done:
			t.Fatalf("child %s exited before printing %q", c.Name, prefix)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %s printed no %q within %s", c.Name, prefix, timeout)
		}
		c.cond.Wait()
	}
}

// Lines returns what the child printed so far.
func (c *ChildProcess) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// Kill SIGKILLs the child's process group and waits for it to end. Safe to call twice.
func (c *ChildProcess) Kill() { c.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and waits for the child to end, killing it after timeout.
func (c *ChildProcess) Stop(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-ctx.Done():
		c.Kill()
	}
}

func (c *ChildProcess) signal(sig syscall.Signal) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, sig)
	<-c.done
}
