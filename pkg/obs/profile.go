package obs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
)

// Profile files StartProfiles writes in its folder.
const (
	CPUProfile    = "cpu.pprof"    // CPU samples from StartProfiles to stop
	AllocsProfile = "allocs.pprof" // every allocation sampled since the process started
)

// StartProfiles writes a CPU profile of the process into dir from now until stop is called,
// and at stop an allocation profile; both are pprof files (`go tool pprof FILE`). It is for
// measuring a binary under load: the CPU profile costs a few percent while it runs. stop is
// safe to call twice.
func StartProfiles(dir string) (stop func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile folder: %w", err)
	}
	cpu, err := os.Create(filepath.Join(dir, CPUProfile))
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	var once sync.Once
	var stopErr error
	return func() error {
		once.Do(func() {
			pprof.StopCPUProfile()
			stopErr = errors.Join(cpu.Close(), writeProfile(filepath.Join(dir, AllocsProfile), "allocs"))
		})
		return stopErr
	}, nil
}

func writeProfile(path, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("%s profile: %w", name, err)
	}
	return f.Close()
}
