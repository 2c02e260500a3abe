package images

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// epoch is the SOURCE_DATE_EPOCH of the test builds.
var epoch = time.Date(2026, 11, 22, 19, 53, 27, 0, time.UTC)

func testOptions(t testing.TB) *Options {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return &Options{Root: root, Epoch: epoch, Version: "test", Revision: "0123456789abcdef", Source: "https://example.com/imgpipe", Licenses: "NOASSERTION"}
}

var (
	builtMu sync.Mutex
	builtBy = map[string]*Built{}
)

// built builds an image for every platform once per test run.
func built(t *testing.T, name string) *Built {
	t.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	if b := builtBy[name]; b != nil {
		return b
	}
	b, err := Build(context.Background(), imageNamed(t, name), Platforms, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	builtBy[name] = b
	return b
}

func imageNamed(t *testing.T, name string) Image {
	t.Helper()
	for _, img := range All {
		if img.Name == name {
			return img
		}
	}
	t.Fatalf("no image %s", name)
	return Image{}
}

// Two builds of the same sources, binaries compiled and linked again, give the same digests;
// another SOURCE_DATE_EPOCH gives another.
func TestBuildIsReproducible(t *testing.T) {
	first := built(t, "analyzer")
	again, err := Build(context.Background(), imageNamed(t, "analyzer"), Platforms, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := first.Index.Digest()
	d2, _ := again.Index.Digest()
	if d1 != d2 {
		t.Errorf("two builds of the analyzer: index digests %s and %s", d1, d2)
	}
	for p, img := range first.Images {
		a, _ := img.Digest()
		b, _ := again.Images[p].Digest()
		if a != b {
			t.Errorf("%s: image digests %s and %s", p, a, b)
		}
	}
	o := testOptions(t)
	o.Epoch = epoch.Add(time.Second)
	later, err := Build(context.Background(), imageNamed(t, "analyzer"), Platforms[:1], o)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := first.Images["linux/amd64"].Digest()
	b, _ := later.Images["linux/amd64"].Digest()
	if a == b {
		t.Errorf("SOURCE_DATE_EPOCH one second later gives the same digest %s", a)
	}
}

// Each image, on each platform: the configuration, the files and the binaries.
func TestImageContents(t *testing.T) {
	caData, err := os.ReadFile("/" + caPath)
	if err != nil {
		t.Fatalf("CA bundle: %v", err)
	}
	var baseDigest v1.Hash
	for _, img := range All {
		b := built(t, img.Name)
		idx, err := b.Index.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(idx.Manifests) != len(Platforms) {
			t.Errorf("%s: index lists %d manifests, want %d", img.Name, len(idx.Manifests), len(Platforms))
		}
		for _, m := range idx.Manifests {
			if m.Platform == nil || b.Images[m.Platform.OS+"/"+m.Platform.Architecture] == nil {
				t.Errorf("%s: index entry %+v has no matching image", img.Name, m.Platform)
			}
		}
		for _, p := range Platforms {
			key := p.OS + "/" + p.Architecture
			t.Run(img.Name+"/"+key, func(t *testing.T) {
				im := b.Images[key]
				cf, err := im.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if cf.OS != p.OS || cf.Architecture != p.Architecture {
					t.Errorf("config platform %s/%s", cf.OS, cf.Architecture)
				}
				if cf.Config.User != "65532:65532" {
					t.Errorf("user %q, want 65532:65532", cf.Config.User)
				}
				if !cf.Created.Time.Equal(epoch) {
					t.Errorf("created %s, want %s", cf.Created.Time, epoch)
				}
				for _, h := range cf.History {
					if !h.Created.Time.Equal(epoch) {
						t.Errorf("history %q created %s", h.CreatedBy, h.Created.Time)
					}
				}
				for _, l := range []string{"source", "revision", "version", "licenses", "created", "title"} {
					if cf.Config.Labels["org.opencontainers.image."+l] == "" {
						t.Errorf("label org.opencontainers.image.%s missing", l)
					}
				}
				if strings.Join(cf.Config.Entrypoint, " ") != strings.Join(img.Entrypoint, " ") {
					t.Errorf("entrypoint %v", cf.Config.Entrypoint)
				}
				layers, err := im.Layers()
				if err != nil || len(layers) != 2 {
					t.Fatalf("%d layers (%v), want base and binaries", len(layers), err)
				}
				d, _ := layers[0].Digest()
				if baseDigest == (v1.Hash{}) {
					baseDigest = d
				} else if d != baseDigest {
					t.Errorf("base layer %s differs from the other images' %s: registries would store it twice", d, baseDigest)
				}
				files := readLayers(t, layers)
				for name, f := range files {
					if !f.ModTime.Equal(epoch) {
						t.Errorf("%s: time %s, want %s", name, f.ModTime, epoch)
					}
					owner := 0
					if name == "home/nonroot/" {
						owner = 65532
					}
					if f.Uid != owner || f.Gid != owner {
						t.Errorf("%s: owner %d:%d, want %d", name, f.Uid, f.Gid, owner)
					}
					if f.Mode&0o002 != 0 && f.Typeflag != tar.TypeSymlink && name != "tmp/" {
						t.Errorf("%s: writable by anyone (%o)", name, f.Mode)
					}
				}
				if ca := files[caPath]; ca == nil || !bytes.Equal(ca.data, caData) {
					t.Errorf("CA bundle missing or not Debian's")
				}
				if files[zonePath+"/Europe/Paris"] == nil || files[zonePath+"/UTC"] == nil {
					t.Errorf("time zone data missing")
				}
				if files[zonePath+"/right/UTC"] != nil || files[zonePath+"/localtime"] != nil {
					t.Errorf("time zone data carries right/ or the build machine's localtime")
				}
				if pw := files["etc/passwd"]; pw == nil || !strings.Contains(string(pw.data), ":65532:65532:") {
					t.Errorf("no user 65532 in /etc/passwd")
				}
				for _, pkg := range img.Packages {
					name := binDir + "/" + filepath.Base(pkg)
					f := files[name]
					if f == nil {
						t.Fatalf("%s missing", name)
					}
					if f.Mode != 0o755 {
						t.Errorf("%s: mode %o", name, f.Mode)
					}
					checkStaticELF(t, name, f.data, p.Architecture)
				}
			})
		}
	}
}

type layerFile struct {
	*tar.Header
	data []byte
}

func readLayers(t *testing.T, layers []v1.Layer) map[string]*layerFile {
	t.Helper()
	out := map[string]*layerFile{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		prev := ""
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name <= prev {
				t.Errorf("layer entries out of order: %s after %s", h.Name, prev)
			}
			prev = h.Name
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = &layerFile{Header: h, data: data}
		}
		rc.Close()
	}
	return out
}

func checkStaticELF(t *testing.T, name string, data []byte, arch string) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: not an ELF binary: %v", name, err)
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		t.Errorf("%s: machine %s, want %s", name, f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: dynamically linked (%s)", name, p.Type)
		}
	}
	if runtime.GOOS == "linux" && bytes.Contains(data, []byte(testOptions(t).Root)) {
		t.Errorf("%s: holds the build folder's path (not built with -trimpath)", name)
	}
	bi, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: no Go build information: %v", name, err)
	}
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
		if strings.HasPrefix(s.Key, "vcs") {
			t.Errorf("%s: VCS stamp %s=%s: the binary would depend on the checkout's state", name, s.Key, s.Value)
		}
	}
	if set["CGO_ENABLED"] != "0" || set["-trimpath"] != "true" || set["GOARCH"] != arch {
		t.Errorf("%s: built with CGO_ENABLED=%q -trimpath=%q GOARCH=%q, want 0, true, %s", name, set["CGO_ENABLED"], set["-trimpath"], set["GOARCH"], arch)
	}
}
