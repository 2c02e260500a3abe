package chaos

import (
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"imgpipe/internal/devstack"
	"imgpipe/internal/proctest"
)

// fleet is the analyzers and indexers of a run: each slot runs one process at a time, is
// killed by group (SIGKILL) and started again.
type fleet struct {
	bin, logDir string
	env         []string
	analyzer    []string // extra flags

	mu    sync.Mutex
	slots map[string]*slot
	all   []*proctest.Proc // every process started, for cleanup
}

type slot struct {
	binary  string // analyzer or indexer
	command []string
	cur     *proctest.Proc
	starts  int
}

func (f *fleet) add(name, binary string, command ...string) {
	if f.slots == nil {
		f.slots = map[string]*slot{}
	}
	f.slots[name] = &slot{binary: binary, command: command}
}

// start starts the slot's process (again).
func (f *fleet) start(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.slots[name]
	if s.cur != nil && s.cur.Running() {
		return fmt.Errorf("%s is running", name)
	}
	port, err := devstack.FreePort()
	if err != nil {
		return err
	}
	s.starts++
	args := append(append([]string{}, s.command...), "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "warn")
	if s.binary == "analyzer" {
		args = append(args, f.analyzer...)
	}
	p, err := proctest.Start(proctest.Command{
		Name: name, Path: filepath.Join(f.bin, s.binary), Args: args, Env: f.env, Dir: f.logDir,
		LogPath:    filepath.Join(f.logDir, fmt.Sprintf("%s.%d.log", name, s.starts)),
		MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", port),
	})
	if err != nil {
		return err
	}
	s.cur = p
	f.all = append(f.all, p)
	return nil
}

// kill SIGKILLs the slot's process group and waits for it to go.
func (f *fleet) kill(name string) error {
	f.mu.Lock()
	p := f.slots[name].cur
	f.mu.Unlock()
	if p == nil || !p.Running() {
		return fmt.Errorf("%s was not running (exited early? see %s)", name, logOf(p))
	}
	p.Kill()
	return nil
}

func logOf(p *proctest.Proc) string {
	if p == nil {
		return "no process"
	}
	return p.LogPath
}

// exited lists the slots whose process exited without being killed.
func (f *fleet) exited() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for name, s := range f.slots {
		if s.cur != nil && !s.cur.Running() && s.cur.ExitCode() != -1 {
			out = append(out, fmt.Sprintf("%s (exit %d, %s)", name, s.cur.ExitCode(), s.cur.LogPath))
		}
	}
	return out
}

// stop ends every process: SIGTERM, then SIGKILL after grace.
func (f *fleet) stop(grace time.Duration) {
	f.mu.Lock()
	all := append([]*proctest.Proc(nil), f.all...)
	f.mu.Unlock()
	for _, p := range all {
		if p.Running() {
			p.Term()
		}
	}
	for _, p := range all {
		if !p.WaitExit(grace) {
			p.Kill()
		}
	}
}
