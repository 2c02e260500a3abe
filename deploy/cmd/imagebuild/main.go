// Command imagebuild builds imgpipe's container images (analyzer, indexer, console, tools) for
// linux/amd64 and linux/arm64 without a base image or a container engine, reproducibly, as
// OCI image layouts: `make images` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"imgpipe/deploy/images"
)

const usage = `imagebuild: builds imgpipe's container images, reproducibly, without a base image.

Usage:
  go run ./cmd/imagebuild [flags]     (from deploy/; make images runs it)

For each image (analyzer, indexer, console, tools) it builds static binaries (CGO off, -trimpath) for
every platform, puts them on an empty base with Debian's CA bundle and time zone data and
user 65532, and writes an OCI image layout OUT/NAME whose index.json names the
multi-platform index, tagged VERSION. Every time in the images is SOURCE_DATE_EPOCH (default:
the commit's time), so the same commit builds the same digests. OUT/digests.txt lists them.
Copy an image to a registry with: skopeo copy --all oci:OUT/NAME:VERSION docker://REGISTRY/imgpipe/NAME:VERSION

Flags:
`

func main() {
	if err := run(); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "imagebuild: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	out := fs.String("out", "../.build/images", "output folder")
	root := fs.String("root", "..", "the product module's folder")
	only := fs.String("images", "analyzer,indexer,console,tools", "images to build (comma-separated)")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "platforms (comma-separated os/arch)")
	version := fs.String("version", "", "image version and tag (default: git describe --always --dirty)")
	source := fs.String("source", "", "org.opencontainers.image.source (default: the git remote origin's URL; none: left out)")
	licenses := fs.String("licenses", "NOASSERTION", "org.opencontainers.image.licenses, an SPDX expression")
	archive := fs.Bool("archive", false, "also write OUT/NAME.tar, a docker archive of the build machine's platform (podman load -i)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	rootDir, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(rootDir, "go.mod")); err != nil {
		return fmt.Errorf("--root %s: no go.mod: %w", rootDir, err)
	}
	epoch, err := sourceDateEpoch(rootDir)
	if err != nil {
		return err
	}
	revision, err := git(rootDir, "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	if *version == "" {
		if *version, err = git(rootDir, "describe", "--tags", "--always", "--dirty"); err != nil {
			return err
		}
	}
	if *source == "" {
		*source, _ = git(rootDir, "remote", "get-url", "origin")
		if *source == "" {
			fmt.Fprintln(os.Stderr, "imagebuild: no git remote origin and no --source: org.opencontainers.image.source is left out")
		}
	}
	plats, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		want[strings.TrimSpace(n)] = true
	}
	opts := &images.Options{Root: rootDir, Epoch: epoch, Version: *version, Revision: revision, Source: *source, Licenses: *licenses}

	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "image\tindex digest\tplatform\tcompressed\tunpacked\n")
	var digests strings.Builder
	built := 0
	for _, img := range images.All {
		if !want[img.Name] {
			continue
		}
		delete(want, img.Name)
		b, err := images.Build(ctx, img, plats, opts)
		if err != nil {
			return err
		}
		if err := images.WriteLayout(b, filepath.Join(*out, img.Name), *version); err != nil {
			return err
		}
		d, err := b.Index.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(&digests, "%s %s\n", img.Name, d)
		for _, p := range plats {
			key := p.OS + "/" + p.Architecture
			s, err := images.SizeOf(b.Images[key])
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f MB\t%.1f MB\n", img.Name, d, key, float64(s.Compressed)/1e6, float64(s.Uncompressed)/1e6)
		}
		if *archive {
			host := "linux/" + runtime.GOARCH
			if err := images.WriteArchive(b, host, "localhost/imgpipe/"+img.Name+":"+*version, filepath.Join(*out, img.Name+".tar")); err != nil {
				return err
			}
		}
		built++
	}
	for n := range want {
		return fmt.Errorf("unknown image %q (want analyzer, indexer, console, tools)", n)
	}
	if err := os.WriteFile(filepath.Join(*out, "digests.txt"), []byte(digests.String()), 0o644); err != nil {
		return err
	}
	tw.Flush()
	fmt.Printf("%d images, version %s, SOURCE_DATE_EPOCH %d, in %s (digests in digests.txt)\n", built, *version, epoch.Unix(), *out)
	return nil
}

// sourceDateEpoch is SOURCE_DATE_EPOCH, or else the commit's time.
func sourceDateEpoch(root string) (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		var err error
		if v, err = git(root, "log", "-1", "--format=%ct"); err != nil {
			return time.Time{}, err
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: want seconds since 1970", v)
	}
	return time.Unix(n, 0).UTC(), nil
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, p := range strings.Split(s, ",") {
		os, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || os != "linux" || (arch != "amd64" && arch != "arm64") {
			return nil, fmt.Errorf("invalid platform %q: want linux/amd64 or linux/arm64", p)
		}
		out = append(out, v1.Platform{OS: os, Architecture: arch})
	}
	return out, nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
