package chaos

import "testing"

// TestCorpusCounts: every seed's corpus has the bad files and the overwrites its spec asks
// for, each overwrite in a later batch than its first version and within the run.
func TestCorpusCounts(t *testing.T) {
	for seed := range int64(20) {
		spec := CorpusSpec{N: 100, BadRate: 0.05, Overwrite: 0.01, Batches: 4, Seed: seed}
		c, err := Generate(t.TempDir(), spec)
		if err != nil {
			t.Fatal(err)
		}
		bad, over := 0, 0
		first := map[string]int{}
		for _, it := range c.Items {
			switch {
			case !it.Good:
				bad++
			case it.Version == 1:
				first[it.Rel] = it.Batch
			}
		}
		for _, it := range c.Items {
			if it.Version != 2 {
				continue
			}
			over++
			if b, ok := first[it.Rel]; !ok || it.Batch <= b || it.Batch >= spec.Batches {
				t.Errorf("seed %d: overwrite of %s in batch %d, first version in %d (ok %v)", seed, it.Rel, it.Batch, b, ok)
			}
		}
		if bad != 5 || over != 1 {
			t.Errorf("seed %d: %d bad files and %d overwrites, want 5 and 1", seed, bad, over)
		}
	}
}
