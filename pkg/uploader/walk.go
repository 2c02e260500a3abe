package uploader

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"imgpipe/pkg/failure"
)

// job is one file found on the command line or in a directory.
type job struct {
	idx  int    // index of its result in Summary.Files
	path string // path to open
	rel  string // path relative to the directory it was found in ('/'-separated), or its name
	// key, when set, is the key to use instead of the scheme's (watch keeps a uuid key across
	// restarts this way).
	key string
	// dedupe makes the upload check whether the key already holds the same content.
	dedupe bool
}

// collect expands paths into files, in order: each argument in turn, a directory's files in
// lexical order. Files matching the filter's excludes (or no include) are recorded as skipped
// "excluded"; paths that do not exist or cannot be read as failed. A file reached twice (given
// twice, or inside a directory also given) is taken once. Filters apply to files found in
// directories, not to files named on the command line.
func collect(paths []string, filter *Filter) (jobs []job, results []FileResult) {
	seen := map[string]bool{}
	add := func(p, rel string, size int64) {
		abs, err := filepath.Abs(p)
		if err == nil {
			if seen[abs] {
				return
			}
			seen[abs] = true
		}
		results = append(results, FileResult{Path: p, Bytes: size})
		jobs = append(jobs, job{idx: len(results) - 1, path: p, rel: filepath.ToSlash(rel)})
	}
	skip := func(p string, size int64, reason, detail string) {
		results = append(results, FileResult{Path: p, Status: StatusSkipped, Reason: reason, Detail: detail, Bytes: size})
	}
	fail := func(p string, err error) {
		results = append(results, failedResult(FileResult{Path: p}, err))
	}

	for _, arg := range paths {
		st, err := os.Stat(arg)
		if err != nil {
			fail(arg, classifyFileErr(err))
			continue
		}
		switch {
		case st.Mode().IsRegular():
			add(arg, filepath.Base(arg), st.Size())
			continue
		case !st.IsDir():
			skip(arg, 0, ReasonNotRegular, st.Mode().Type().String())
			continue
		}
		var found []string
		walkErr := filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == arg {
					return err
				}
				fail(p, classifyFileErr(err))
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if !d.IsDir() {
				found = append(found, p)
			}
			return nil
		})
		if walkErr != nil {
			fail(arg, classifyFileErr(walkErr))
			continue
		}
		sort.Strings(found) // WalkDir is lexical per directory already; keep the order explicit
		for _, p := range found {
			rel, err := filepath.Rel(arg, p)
			if err != nil {
				rel = filepath.Base(p)
			}
			st, err := os.Stat(p) // follows symbolic links to files
			if err != nil {
				fail(p, classifyFileErr(err))
				continue
			}
			if !st.Mode().IsRegular() {
				skip(p, 0, ReasonNotRegular, st.Mode().Type().String())
				continue
			}
			if ok, why := filter.Allow(filepath.ToSlash(rel)); !ok {
				skip(p, st.Size(), ReasonExcluded, why)
				continue
			}
			add(p, rel, st.Size())
		}
	}
	return jobs, results
}

// Reasons of the permanent failures that come from the local file system.
const (
	ReasonFileNotFound   = "FileNotFound"
	ReasonFileUnreadable = "FileUnreadable"
	// ReasonFileChanged: the file changed between hashing and the end of its upload.
	ReasonFileChanged = "FileChanged"
	// ReasonKeyCollision: two different files of one run map to the same key (the path scheme
	// with two directories holding the same relative path).
	ReasonKeyCollision = "KeyCollision"
)

func classifyFileErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return failure.New(failure.Permanent, ReasonFileNotFound, err)
	default:
		return failure.New(failure.Permanent, ReasonFileUnreadable, err)
	}
}
