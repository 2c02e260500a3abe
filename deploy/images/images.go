// Package images builds imgpipe's container images without a base image: static Go binaries
// (CGO off, -trimpath) on an empty base, with the CA bundle, the time zone data and a
// non-root user (65532), written as OCI image layouts (and, for the build machine's own
// platform, docker archives a container runtime can load).
//
// The images are reproducible: every file time, the image's creation time and the history
// come from one timestamp (SOURCE_DATE_EPOCH, the commit's time), owners are 0 or 65532,
// entries are in a fixed order, layers are compressed by the same code every time, and the
// binaries are built with -trimpath, no build ID and no VCS stamp. The same commit, built
// twice with the same Go toolchain and the same Debian ca-certificates and tzdata packages,
// gives the same image digests.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is one image to build.
type Image struct {
	Name        string   // analyzer, indexer, tools
	Title       string   // org.opencontainers.image.title
	Description string   // org.opencontainers.image.description
	Packages    []string // the binaries' packages, relative to the product module: ./cmd/analyzer
	Entrypoint  []string // nil: none (the caller names the binary, found on PATH)
	Cmd         []string
	Port        int // exposed TCP port; 0: none
}

// All are imgpipe's images: one per long-running binary (analyzer, indexer, console), so each
// Deployment pulls and rolls out only its own binary, and one for the operator CLIs.
var All = []Image{
	{
		Name: "analyzer", Title: "imgpipe analyzer",
		Description: "SQS -> Azure AI Vision -> Pub/Sub: analyses images dropped into S3",
		Packages:    []string{"./cmd/analyzer"}, Entrypoint: []string{"/usr/local/bin/analyzer"}, Port: 9090,
	},
	{
		Name: "indexer", Title: "imgpipe indexer",
		Description: "Pub/Sub -> Firestore: keeps one document per analysed object",
		Packages:    []string{"./cmd/indexer"}, Entrypoint: []string{"/usr/local/bin/indexer"}, Cmd: []string{"run"}, Port: 9090,
	},
	{
		Name: "console", Title: "imgpipe console",
		Description: "the web console: a page and a JSON API over the index, the queues and the dead letters",
		Packages:    []string{"./cmd/console"}, Entrypoint: []string{"/usr/local/bin/console"}, Port: 8080,
	},
	{
		Name: "tools", Title: "imgpipe operator tools",
		Description: "uploader and dlq-replay, the operator CLIs",
		Packages:    []string{"./cmd/uploader", "./dlq-replay"}, Cmd: []string{"uploader", "--help"},
	},
}

// Platforms the images are built for.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Options are what every image of one build shares. Root and Epoch are required.
type Options struct {
	Root     string    // the product module's folder (holding go.mod)
	Epoch    time.Time // SOURCE_DATE_EPOCH: every time in the image
	Version  string    // org.opencontainers.image.version
	Revision string    // org.opencontainers.image.revision (the commit)
	Source   string    // org.opencontainers.image.source; empty: the label is left out
	Licenses string    // org.opencontainers.image.licenses (an SPDX expression)

	CABundle string // default /etc/ssl/certs/ca-certificates.crt (Debian's ca-certificates)
	ZoneInfo string // default /usr/share/zoneinfo (Debian's tzdata)
	Go       string // the go command; default "go"
	WorkDir  string // where binaries are built; default a temporary folder
}

const (
	uid      = 65532
	binDir   = "usr/local/bin"
	caPath   = "etc/ssl/certs/ca-certificates.crt"
	zonePath = "usr/share/zoneinfo"
)

// Built is one built image: its multi-platform index and each platform's image.
type Built struct {
	Image  Image
	Index  v1.ImageIndex
	Images map[string]v1.Image // by "os/arch"
}

// Build builds img for the platforms.
func Build(ctx context.Context, img Image, platforms []v1.Platform, o *Options) (*Built, error) {
	if o == nil || o.Root == "" || o.Epoch.IsZero() {
		return nil, fmt.Errorf("images: Root and Epoch are required")
	}
	base, err := baseLayer(o)
	if err != nil {
		return nil, err
	}
	work := o.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "imgpipe-images-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	}
	out := &Built{Image: img, Images: map[string]v1.Image{}}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.Annotations(idx, annotations(img, o)).(v1.ImageIndex)
	for _, p := range platforms {
		bins, err := buildBinaries(ctx, img, p, o, filepath.Join(work, img.Name, p.OS+"-"+p.Architecture))
		if err != nil {
			return nil, err
		}
		layer, err := binaryLayer(bins, o.Epoch)
		if err != nil {
			return nil, err
		}
		im, err := assemble(img, p, base, layer, o)
		if err != nil {
			return nil, err
		}
		out.Images[p.OS+"/"+p.Architecture] = im
		pp := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: im, Descriptor: v1.Descriptor{Platform: &pp}})
	}
	out.Index = idx
	return out, nil
}

func annotations(img Image, o *Options) map[string]string {
	a := map[string]string{
		"org.opencontainers.image.title":       img.Title,
		"org.opencontainers.image.description": img.Description,
		"org.opencontainers.image.created":     o.Epoch.UTC().Format(time.RFC3339),
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.licenses":    o.Licenses,
		"org.opencontainers.image.source":      o.Source,
	}
	for k, v := range a {
		if v == "" {
			delete(a, k)
		}
	}
	return a
}

func assemble(img Image, p v1.Platform, base, bins v1.Layer, o *Options) (v1.Image, error) {
	im := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	im = mutate.ConfigMediaType(im, types.OCIConfigJSON)
	created := v1.Time{Time: o.Epoch.UTC()}
	im, err := mutate.Append(im,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "imgpipe images: CA bundle, time zone data, user 65532", Comment: "base"}},
		mutate.Addendum{Layer: bins, History: v1.History{Created: created, CreatedBy: "imgpipe images: " + strings.Join(img.Packages, " "), Comment: "binaries"}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := im.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = p.Architecture, p.OS
	cf.Created = created
	cf.Author = ""
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", uid, uid),
		Entrypoint: img.Entrypoint,
		Cmd:        img.Cmd,
		Env:        []string{"PATH=/" + binDir, "SSL_CERT_FILE=/" + caPath},
		WorkingDir: "/",
		Labels:     annotations(img, o),
	}
	if img.Port > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{fmt.Sprintf("%d/tcp", img.Port): {}}
	}
	return mutate.ConfigFile(im, cf)
}

// buildBinaries compiles the image's packages for p and returns their paths by name.
func buildBinaries(ctx context.Context, img Image, p v1.Platform, o *Options, dir string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	// No VCS stamp: whether a checkout is a clone or a worktree, or has an untracked file,
	// must not change the binary; the image's labels carry the revision.
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", dir + "/"}, img.Packages...)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s for %s/%s: %w\n%s", img.Name, p.OS, p.Architecture, err, out)
	}
	bins := map[string]string{}
	for _, pkg := range img.Packages {
		name := path.Base(pkg)
		bins[name] = filepath.Join(dir, name)
		if _, err := os.Stat(bins[name]); err != nil {
			return nil, fmt.Errorf("build %s: %w", img.Name, err)
		}
	}
	return bins, nil
}

// entry is one file of a layer.
type entry struct {
	name     string // without a leading slash
	mode     int64
	typ      byte
	link     string
	data     []byte
	uid, gid int
}

// baseLayer holds what every image shares: the CA bundle, the time zone data, the user and
// group files, and the folders. It is the same layer (the same digest) in every image.
func baseLayer(o *Options) (v1.Layer, error) {
	ca := o.CABundle
	if ca == "" {
		ca = "/" + caPath
	}
	zi := o.ZoneInfo
	if zi == "" {
		zi = "/" + zonePath
	}
	caData, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("CA bundle (Debian package ca-certificates): %w", err)
	}
	es := []entry{
		dir("etc"), dir("etc/ssl"), dir("etc/ssl/certs"), dir("usr"), dir("usr/local"), dir(binDir), dir("usr/share"),
		{name: "home", mode: 0o755, typ: tar.TypeDir}, {name: "home/nonroot", mode: 0o700, typ: tar.TypeDir, uid: uid, gid: uid},
		{name: "tmp", mode: 0o1777, typ: tar.TypeDir},
		file(caPath, 0o644, caData),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")),
		file("etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")),
		file("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")),
	}
	zones, err := zoneEntries(zi)
	if err != nil {
		return nil, err
	}
	return layerOf(append(es, zones...), o.Epoch)
}

// zoneEntries copies the time zone files, leaving out the leap-second variants (right/), the
// duplicate posix/ tree and the machine's own localtime.
func zoneEntries(root string) ([]entry, error) {
	var es []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "right" || rel == "posix" || rel == "localtime" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		name := path.Join(zonePath, filepath.ToSlash(rel))
		if rel == "." {
			name = zonePath
		}
		switch {
		case d.IsDir():
			es = append(es, dir(name))
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			es = append(es, entry{name: name, mode: 0o777, typ: tar.TypeSymlink, link: target})
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			es = append(es, file(name, 0o644, b))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("time zone data (Debian package tzdata): %w", err)
	}
	if len(es) < 100 {
		return nil, fmt.Errorf("time zone data: only %d entries under %s (Debian package tzdata)", len(es), root)
	}
	return es, nil
}

func binaryLayer(bins map[string]string, epoch time.Time) (v1.Layer, error) {
	var es []entry
	for name, p := range bins {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		es = append(es, file(path.Join(binDir, name), 0o755, b))
	}
	return layerOf(es, epoch)
}

func dir(name string) entry { return entry{name: name, mode: 0o755, typ: tar.TypeDir} }

func file(name string, mode int64, data []byte) entry {
	return entry{name: name, mode: mode, typ: tar.TypeReg, data: data}
}

// layerOf writes the entries as a tar, sorted by name, every time set to epoch, and returns
// it as a gzip-compressed OCI layer.
func layerOf(es []entry, epoch time.Time) (v1.Layer, error) {
	tarName := func(e entry) string {
		if e.typ == tar.TypeDir {
			return e.name + "/"
		}
		return e.name
	}
	sort.Slice(es, func(i, j int) bool { return tarName(es[i]) < tarName(es[j]) })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, e := range es {
		name := tarName(e)
		if i > 0 && tarName(es[i-1]) == name {
			return nil, fmt.Errorf("layer: %s twice", name)
		}
		h := &tar.Header{
			Typeflag: e.typ, Name: name, Linkname: e.link, Mode: e.mode, Size: int64(len(e.data)),
			Uid: e.uid, Gid: e.gid, ModTime: epoch.UTC(), Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

func countBytes(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }
