package images

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// WriteLayout writes the image as an OCI image layout in dir (replacing what was there): its
// index.json names the multi-platform index, tagged tag (org.opencontainers.image.ref.name),
// which is what a copy to a registry takes (skopeo copy --all oci:DIR:TAG docker://...).
func WriteLayout(b *Built, dir, tag string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if err := p.AppendIndex(b.Index, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	return nil
}

// WriteArchive writes one platform's image as a docker archive tagged ref, which a container
// runtime loads (podman load -i FILE).
func WriteArchive(b *Built, platform, ref, file string) error {
	img, ok := b.Images[platform]
	if !ok {
		return fmt.Errorf("%s was not built for %s", b.Image.Name, platform)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return tarball.WriteToFile(file, tag, img)
}

// Size is an image's size for one platform.
type Size struct {
	Compressed   int64 // what a registry stores and a node pulls: layers, config, manifest
	Uncompressed int64 // the layers unpacked
}

// SizeOf measures one platform's image.
func SizeOf(img v1.Image) (Size, error) {
	var s Size
	m, err := img.Manifest()
	if err != nil {
		return s, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return s, err
	}
	s.Compressed = m.Config.Size + int64(len(raw))
	layers, err := img.Layers()
	if err != nil {
		return s, err
	}
	for _, l := range layers {
		c, err := l.Size()
		if err != nil {
			return s, err
		}
		s.Compressed += c
		rc, err := l.Uncompressed()
		if err != nil {
			return s, err
		}
		n, err := countBytes(rc)
		rc.Close()
		if err != nil {
			return s, err
		}
		s.Uncompressed += n
	}
	return s, nil
}
