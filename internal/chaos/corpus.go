package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	"imgpipe/pkg/samples"
)

// Item is one file of the corpus: what was generated, and what the pipeline must make of it.
type Item struct {
	Rel    string // path under its batch folder, '/'-separated: the key below the drop prefix
	Batch  int    // the upload batch it is sent in
	Good   bool
	Width  int    // of a good image
	Height int    // of a good image
	Format string // of a good image
	Reason string // of a bad file: the reason it must be dead-lettered with
	Size   int64
	// Version is 1, or 2 for the second, different upload of a key (an overwrite).
	Version int
}

// Folders of the corpus below the drop prefix: good images and bad files apart, so that a
// replay can select the good images a DLQ holds by prefix.
const (
	GoodFolder = "img/"
	BadFolder  = "bad/"
)

// Corpus is the generated files, by batch.
type Corpus struct {
	Dir     string // batch folders batch-000, batch-001, ... under it
	Batches int
	Items   []Item
}

// BatchDir is the folder of batch b.
func (c *Corpus) BatchDir(b int) string { return filepath.Join(c.Dir, fmt.Sprintf("batch-%03d", b)) }

// Final returns, for each key below the prefix, its last version.
func (c *Corpus) Final() map[string]Item {
	out := make(map[string]Item, len(c.Items))
	for _, it := range c.Items {
		if prev, ok := out[it.Rel]; !ok || it.Version > prev.Version {
			out[it.Rel] = it
		}
	}
	return out
}

// CorpusSpec says what to generate.
type CorpusSpec struct {
	N         int     // files of the first upload, bad ones included
	BadRate   float64 // share of bad files (1%: 0.01); at least one of each kind when N allows
	Overwrite float64 // share of good images uploaded a second time, different, later
	Batches   int
	Seed      int64
}

// Generate writes the corpus under dir. Good images are pkg/samples pictures of seeded
// sizes (60-260 pixels a side) and formats; bad files are samples.BadFiles in turn; every
// path is a samples.OddPath (spaces, '+', unicode, deep folders). Items of batch b are
// uploaded in batch b; an overwrite goes one to three batches after its first version.
func Generate(dir string, spec CorpusSpec) (*Corpus, error) {
	bad, err := samples.BadFiles()
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(uint64(spec.Seed), 0x636f72707573))
	formats := []string{"jpeg", "png", "gif", "jpeg", "png", "bmp"}
	exts := map[string]string{"jpeg": "jpg", "png": "png", "gif": "gif", "bmp": "bmp"}
	c := &Corpus{Dir: dir, Batches: spec.Batches}
	type job struct {
		item  Item
		seed  int64
		body  []byte // set for bad files
		index int
	}
	var jobs []job
	nBad := int(float64(spec.N)*spec.BadRate + 0.5)
	if spec.BadRate > 0 && nBad < len(bad) && spec.N >= 10*len(bad) {
		nBad = len(bad)
	}
	badAt := map[int]bool{}
	for _, i := range r.Perm(spec.N)[:nBad] {
		badAt[i] = true
	}
	// A fixed number of overwrites (at least one when Overwrite > 0), of good images in a
	// batch that has a later one to carry the second version: a share drawn image by image
	// gave none on about 3% of seeds of a 500-file run.
	overAt := map[int]bool{}
	if nOver := max(1, int(float64(spec.N)*spec.Overwrite+0.5)); spec.Overwrite > 0 {
		for _, i := range r.Perm(spec.N) {
			if len(overAt) == nOver {
				break
			}
			if !badAt[i] && i*spec.Batches/spec.N < spec.Batches-1 {
				overAt[i] = true
			}
		}
	}
	nb := 0
	for i := range spec.N {
		batch := i * spec.Batches / spec.N
		if badAt[i] {
			f := bad[nb%len(bad)]
			nb++
			ext := filepath.Ext(f.Name)
			jobs = append(jobs, job{item: Item{Rel: BadFolder + samples.OddPath(spec.Seed, i, ext), Batch: batch,
				Reason: f.WantReason, Size: f.Size, Version: 1}, body: f.Body, index: len(jobs)})
			continue
		}
		format := formats[r.IntN(len(formats))]
		it := Item{Rel: GoodFolder + samples.OddPath(spec.Seed, i, exts[format]), Batch: batch, Good: true,
			Width: 60 + r.IntN(200), Height: 60 + r.IntN(200), Format: format, Version: 1}
		jobs = append(jobs, job{item: it, seed: spec.Seed*1_000_003 + int64(i), index: len(jobs)})
		if overAt[i] {
			later := batch + 1 + r.IntN(min(3, spec.Batches-1-batch))
			v2 := it
			v2.Batch, v2.Version = later, 2
			v2.Width, v2.Height = 60+r.IntN(200), 60+r.IntN(200)
			jobs = append(jobs, job{item: v2, seed: -(spec.Seed*1_000_003 + int64(i)) - 1, index: len(jobs)})
		}
	}
	c.Items = make([]Item, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	next := make(chan job)
	for range 2 { // two cores
		wg.Go(func() {
			for j := range next {
				body := j.body
				var err error
				if j.item.Good {
					body, err = samples.Image(j.seed, j.item.Width, j.item.Height, j.item.Format)
				}
				if err == nil {
					j.item.Size = int64(len(body))
					p := filepath.Join(c.BatchDir(j.item.Batch), filepath.FromSlash(j.item.Rel))
					if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
						err = os.WriteFile(p, body, 0o644)
					}
				}
				c.Items[j.index], errs[j.index] = j.item, err
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("generate %s: %w", jobs[i].item.Rel, err)
		}
	}
	return c, nil
}
