package uploader

import (
	"fmt"
	"path"
	"strings"
)

// Glob is a compiled include or exclude pattern, matched against a file's path relative to the
// directory it was found in, with '/' separators.
//
// The syntax is path.Match's within one path segment ('*' and '?' never match '/', '[...]'
// classes, '\' escapes), plus "**" as a whole segment matching zero or more segments
// (a trailing "**" one or more: "raw/**" selects the files inside raw/).
// A pattern without '/' is matched against the base name at any depth, so "*.jpg" selects
// a/b/c.jpg; a pattern with '/' is matched against the whole relative path ("**/raw/**",
// "2024/*/*.png"). A leading "/" or "./" is ignored. Matching ignores case, so "*.jpg" also
// selects IMG_1.JPG.
type Glob struct {
	pattern string
	segs    []string
	base    bool
}

// CompileGlob checks and compiles a pattern.
func CompileGlob(pattern string) (*Glob, error) {
	p := strings.TrimPrefix(strings.TrimPrefix(pattern, "./"), "/")
	if p == "" {
		return nil, fmt.Errorf("empty glob pattern %q", pattern)
	}
	g := &Glob{pattern: pattern, base: !strings.Contains(p, "/")}
	for _, s := range strings.Split(strings.ToLower(p), "/") {
		if s == "" {
			continue // "a//b" is "a/b"
		}
		if s != "**" {
			if _, err := path.Match(s, ""); err != nil {
				return nil, fmt.Errorf("glob %q: %w", pattern, err)
			}
		}
		g.segs = append(g.segs, s)
	}
	return g, nil
}

// String returns the pattern as given.
func (g *Glob) String() string { return g.pattern }

// Match reports whether rel (a relative path, '/' or '\' separated) matches the pattern.
func (g *Glob) Match(rel string) bool {
	rel = strings.ToLower(strings.ReplaceAll(rel, `\`, "/"))
	var segs []string
	for _, s := range strings.Split(rel, "/") {
		if s != "" && s != "." {
			segs = append(segs, s)
		}
	}
	if len(segs) == 0 {
		return false
	}
	if g.base {
		return matchSegs(g.segs, segs[len(segs)-1:])
	}
	return matchSegs(g.segs, segs)
}

// matchSegs matches pattern segments against path segments; "**" takes zero or more.
func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			// Collapse consecutive "**", then try every split point.
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				// A trailing "**" selects what is inside: at least one more segment.
				return len(name) > 0
			}
			for i := 0; i <= len(name); i++ {
				if matchSegs(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// Filter decides which files found in a directory are uploaded.
type Filter struct {
	include, exclude []*Glob
}

// NewFilter compiles include and exclude patterns. With no include pattern every file is
// included; an exclude pattern wins over an include pattern.
func NewFilter(include, exclude []string) (*Filter, error) {
	f := &Filter{}
	for _, p := range include {
		g, err := CompileGlob(p)
		if err != nil {
			return nil, fmt.Errorf("include: %w", err)
		}
		f.include = append(f.include, g)
	}
	for _, p := range exclude {
		g, err := CompileGlob(p)
		if err != nil {
			return nil, fmt.Errorf("exclude: %w", err)
		}
		f.exclude = append(f.exclude, g)
	}
	return f, nil
}

// Allow reports whether the file at rel is selected, and when not, which pattern decided.
func (f *Filter) Allow(rel string) (ok bool, why string) {
	for _, g := range f.exclude {
		if g.Match(rel) {
			return false, "matches --exclude " + g.String()
		}
	}
	if len(f.include) == 0 {
		return true, ""
	}
	for _, g := range f.include {
		if g.Match(rel) {
			return true, ""
		}
	}
	return false, "matches no --include"
}
