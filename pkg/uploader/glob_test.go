package uploader

import "testing"

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern string
		rel     string
		want    bool
	}{
		{"*.jpg", "a.jpg", true},
		{"*.jpg", "deep/dir/a.jpg", true},
		{"*.jpg", "A.JPG", true},
		{"*.jpg", "a.jpeg", false},
		{"*.jpg", "a.jpg.txt", false},
		{"*.jp*g", "x.jpeg", true},
		{"img_??.png", "img_01.png", true},
		{"img_??.png", "img_001.png", false},
		{"[ab]*.gif", "b1.gif", true},
		{"[ab]*.gif", "c1.gif", false},
		{"**/raw/**", "raw/a.jpg", true},
		{"**/raw/**", "x/raw/y/a.jpg", true},
		{"**/raw/**", "x/rawer/a.jpg", false},
		{"**/raw/**", "raw", false}, // a file named raw is not inside raw/
		{"raw/*", "raw/a.jpg", true},
		{"raw/*", "raw/sub/a.jpg", false},
		{"raw/**", "raw/sub/a.jpg", true},
		{"/raw/*", "raw/a.jpg", true},
		{"./raw/*", "raw/a.jpg", true},
		{"2024/*/*.png", "2024/june/a.png", true},
		{"2024/*/*.png", "2024/a.png", false},
		{"**/*.png", "a.png", true},
		{"**/*.png", "a/b/c.png", true},
		{"a/**/b.png", "a/b.png", true},
		{"a/**/b.png", "a/x/y/b.png", true},
		{"a/**/**/b.png", "a/x/b.png", true},
		{"*.jpg", `win\dir\a.jpg`, true},
		{"**/raw/**", `win\raw\a.jpg`, true},
		{"*", "a/b", true}, // no slash: matches the base name
		{"a b.jpg", "dir/a b.jpg", true},
		{"été*", "Été 2024.jpg", true},
		{`\*.jpg`, "*.jpg", true},
		{`\*.jpg`, "a.jpg", false},
	}
	for _, tc := range tests {
		g, err := CompileGlob(tc.pattern)
		if err != nil {
			t.Fatalf("CompileGlob(%q): %v", tc.pattern, err)
		}
		if got := g.Match(tc.rel); got != tc.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tc.pattern, tc.rel, got, tc.want)
		}
	}
}

func TestCompileGlobRejects(t *testing.T) {
	for _, p := range []string{"", "/", "[a-", "dir/[x"} {
		if _, err := CompileGlob(p); err == nil {
			t.Errorf("CompileGlob(%q) accepted", p)
		}
	}
}

func TestFilter(t *testing.T) {
	tests := []struct {
		name             string
		include, exclude []string
		rel              string
		want             bool
	}{
		{"no patterns", nil, nil, "a/b.txt", true},
		{"include hit", []string{"*.jpg", "*.png"}, nil, "a/b.png", true},
		{"include miss", []string{"*.jpg"}, nil, "a/b.png", false},
		{"exclude hit", nil, []string{"**/raw/**"}, "x/raw/b.jpg", false},
		{"exclude wins over include", []string{"*.jpg"}, []string{"**/raw/**"}, "raw/b.jpg", false},
		{"exclude miss", []string{"*.jpg"}, []string{"**/raw/**"}, "cooked/b.jpg", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewFilter(tc.include, tc.exclude)
			if err != nil {
				t.Fatal(err)
			}
			got, why := f.Allow(tc.rel)
			if got != tc.want {
				t.Errorf("Allow(%q) = %v (%s), want %v", tc.rel, got, why, tc.want)
			}
			if !got && why == "" {
				t.Errorf("Allow(%q) refused without saying why", tc.rel)
			}
		})
	}
	if _, err := NewFilter([]string{"[x"}, nil); err == nil {
		t.Error("NewFilter accepted a bad include")
	}
	if _, err := NewFilter(nil, []string{"[x"}); err == nil {
		t.Error("NewFilter accepted a bad exclude")
	}
}

func FuzzGlob(f *testing.F) {
	f.Add("**/raw/**", "a/raw/b.jpg")
	f.Add("*.jpg", "x.jpg")
	f.Fuzz(func(t *testing.T, pattern, rel string) {
		g, err := CompileGlob(pattern)
		if err != nil {
			return
		}
		_ = g.Match(rel) // must not panic or hang
	})
}
