// Package samples generates the demo's and the tests' sample images, so that the
// repository ships no binary images. Everything it writes is deterministic: the same call
// gives the same bytes on every run (with the same Go release, whose image encoders fix the
// exact bytes).
package samples

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"sync"

	"imgpipe/pkg/imagemeta"
)

// Reasons the pipeline reports for the bad samples. Those from imagemeta are its reason
// constants; ReasonInvalidImageSize is Azure AI Vision's inner error code for an image of
// 50 pixels a side or less, reported by Vision (or its stand-in), not by imagemeta.
const ReasonInvalidImageSize = "InvalidImageSize"

// Sample describes one generated file and what the pipeline must do with it.
type Sample struct {
	// Name is the file's path relative to the generation directory, with '/' separators.
	Name string
	// Good samples must be analysed and indexed; the others must end in a DLQ with
	// WantReason.
	Good bool
	// Format is what imagemeta.Sniff says of the file ("jpeg", ..., "unknown").
	Format string
	// Width and Height are the stored pixel dimensions; 0 when the file has none.
	Width, Height int
	// Size is the file's length in bytes.
	Size int64
	// EXIF is what imagemeta.Inspect must report of the file's EXIF block; nil for none.
	EXIF *imagemeta.EXIF
	// WantReason is the reason of the permanent failure the pipeline must report for a bad
	// sample: an imagemeta reason ("NotAnImage", "CorruptImage", "UnsupportedFormat") or
	// ReasonInvalidImageSize from Vision. Empty for good samples.
	WantReason string
	// Description says what the file shows or why it is bad.
	Description string
}

// Path returns the sample's path under dir.
func (s Sample) Path(dir string) string { return filepath.Join(dir, filepath.FromSlash(s.Name)) }

// spec is a sample and the function that makes its bytes.
type spec struct {
	Sample
	make func() ([]byte, error)
}

// jpegOf and lazy return makers that encode a painted picture (lazy paints it when called).
func jpegOf(img *image.RGBA) func() ([]byte, error) {
	return func() ([]byte, error) { return encode(img, string(imagemeta.JPEG), "") }
}

func lazy(format string, w, h int, p func(w, h int) *image.RGBA) func() ([]byte, error) {
	return func() ([]byte, error) { return encode(p(w, h), format, "") }
}

func jpegWithEXIF(w, h int, p func(w, h int) *image.RGBA, c cameraInfo) func() ([]byte, error) {
	return func() ([]byte, error) {
		b, err := jpegOf(p(w, h))()
		if err != nil {
			return nil, err
		}
		return withEXIF(b, c), nil
	}
}

func grayPNG(w, h int) func() ([]byte, error) {
	return func() ([]byte, error) {
		var b bytes.Buffer
		if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, portrait(w, h)); err != nil {
			return nil, fmt.Errorf("encode png: %w", err)
		}
		return b.Bytes(), nil
	}
}

// noiseJPEG encodes the noise picture at quality 95, which makes it larger than 5 MiB,
// S3's smallest multipart part size.
func noiseJPEG(w, h int) func() ([]byte, error) {
	return func() ([]byte, error) {
		var b bytes.Buffer
		if err := jpeg.Encode(&b, noise(w, h), &jpeg.Options{Quality: 95}); err != nil {
			return nil, fmt.Errorf("encode jpeg: %w", err)
		}
		return b.Bytes(), nil
	}
}

func literal(b []byte) func() ([]byte, error) { return func() ([]byte, error) { return b, nil } }

// Camera data written into the JPEG samples that carry EXIF.
var (
	sunsetCamera = cameraInfo{
		exif: imagemeta.EXIF{Make: "imgpipe", Model: "SampleCam S1", DateTimeOriginal: "2024:07:14 21:42:07",
			Orientation: 1, HasGPS: true, Latitude: imagemeta.Degrees(43, 29, 2, false), Longitude: imagemeta.Degrees(1, 33, 30, true)},
		lat: [3]uint32{43, 29, 2}, latRef: "N", lon: [3]uint32{1, 33, 30}, lonRef: "W",
	}
	nightCamera = cameraInfo{
		exif: imagemeta.EXIF{Make: "imgpipe", Model: "SampleCam N2", DateTimeOriginal: "2024:08:12 23:58:40", Orientation: 1},
	}
	phoneCamera = cameraInfo{
		exif: imagemeta.EXIF{Make: "imgpipe", Model: "SamplePhone 7", DateTimeOriginal: "2025:05:03 10:15:00",
			Orientation: 6, HasGPS: true, Latitude: imagemeta.Degrees(48, 51, 24, false), Longitude: imagemeta.Degrees(2, 21, 3, false)},
		lat: [3]uint32{48, 51, 24}, latRef: "N", lon: [3]uint32{2, 21, 3}, lonRef: "E",
	}
)

func ptr[T any](v T) *T { return &v }

// truncatedPNG is a PNG signature and the first bytes of its IHDR chunk.
var truncatedPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x01\x00")

// heicStub is an ISO-BMFF file that declares itself HEIC: enough to be sniffed as one.
var heicStub = []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic\x00\x00\x00\x08free")

func specs() []spec {
	jpg, pngf, gif := string(imagemeta.JPEG), string(imagemeta.PNG), string(imagemeta.GIF)
	good := func(name, format string, w, h int, exif *imagemeta.EXIF, desc string, mk func() ([]byte, error)) spec {
		return spec{Sample{Name: name, Good: true, Format: format, Width: w, Height: h, EXIF: exif, Description: desc}, mk}
	}
	bad := func(name, format string, w, h int, reason, desc string, mk func() ([]byte, error)) spec {
		return spec{Sample{Name: name, Format: format, Width: w, Height: h, WantReason: reason, Description: desc}, mk}
	}
	return []spec{
		good("sunset-gradient.jpg", jpg, 1280, 720, ptr(sunsetCamera.exif),
			"an orange and red sunset over the sea; EXIF with camera, capture time and GPS",
			jpegWithEXIF(1280, 720, sunset, sunsetCamera)),
		good("ocean.png", pngf, 800, 600, nil, "blue sea with white wave crests", lazy(pngf, 800, 600, ocean)),
		good("forest.gif", gif, 400, 400, nil, "green fir trees (GIF, 3-3-2 palette)", lazy(gif, 400, 400, forest)),
		good("night-sky.jpg", jpg, 1024, 768, ptr(nightCamera.exif),
			"a dark night sky with white stars and a moon; EXIF without GPS",
			jpegWithEXIF(1024, 768, nightSky, nightCamera)),
		good("grayscale-portrait.png", pngf, 600, 900, nil, "a grey head-and-shoulders silhouette (8-bit grayscale PNG)", grayPNG(600, 900)),
		good("panorama.jpg", jpg, 3000, 800, nil, "a wide mountain panorama under a blue sky", lazy(jpg, 3000, 800, panorama)),
		good("subfolder/nested-image.png", pngf, 320, 240, nil, "purple and magenta stripes, in a subfolder", lazy(pngf, 320, 240, stripes)),
		good("été à la plage.jpg", jpg, 640, 480, nil,
			"a beach with sky, sea, sand and a parasol; the name has spaces and accents (NFC)", lazy(jpg, 640, 480, beach)),
		good("phone-rotated.jpg", jpg, 800, 600, ptr(phoneCamera.exif),
			"a yellow sunflower on green, stored 800x600 with EXIF orientation 6 (displayed 600x800)",
			jpegWithEXIF(800, 600, sunflower, phoneCamera)),
		good("desert.bmp", string(imagemeta.BMP), 256, 192, nil, "orange sand dunes (24-bit BMP)", lazy(string(imagemeta.BMP), 256, 192, desert)),
		good("aerial-fields.tiff", string(imagemeta.TIFF), 300, 200, nil, "a patchwork of fields seen from above (uncompressed TIFF)",
			lazy(string(imagemeta.TIFF), 300, 200, fields)),
		good("large-noise.jpg", jpg, 3000, 2000, nil, "coloured noise over a teal-to-violet gradient; several MB, for multipart uploads and timing",
			noiseJPEG(3000, 2000)),

		bad("not-an-image.jpg", string(imagemeta.Unknown), 0, 0, imagemeta.ReasonNotAnImage,
			"plain text with a .jpg name", literal([]byte("This is not an image. It is a text file whose name ends in .jpg.\n"))),
		bad("truncated.png", pngf, 0, 0, imagemeta.ReasonCorruptImage,
			"a PNG signature and a header cut in the middle of IHDR", literal(truncatedPNG)),
		bad("too-small.png", pngf, 40, 40, ReasonInvalidImageSize,
			"a valid 40x40 PNG: Vision rejects images of 50 pixels a side or less", lazy(pngf, 40, 40, redSquare)),
		bad("empty.jpg", string(imagemeta.Unknown), 0, 0, imagemeta.ReasonNotAnImage, "an empty file", literal(nil)),
		bad("unsupported.heic", string(imagemeta.HEIC), 0, 0, imagemeta.ReasonUnsupportedFormat,
			"the start of a HEIC file: an image format the pipeline does not analyse", literal(heicStub)),
	}
}

// Generate writes the sample set into dir (creating it and its subfolders; existing files
// of the same names are replaced) and returns what each file is, good samples first. The
// set has every format Vision and imagemeta read except WEBP and ICO, sizes from 40x40 to
// 3000x2000, a subfolder, a name with spaces and accents, and one bad file per failure
// reason; it is about 8 MB.
func Generate(dir string) ([]Sample, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("generate samples: %w", err)
	}
	all := specs()
	data := make([][]byte, len(all))
	errs := make([]error, len(all))
	// Two workers: the big JPEGs dominate and the machines this runs on are small.
	var wg sync.WaitGroup
	next := make(chan int)
	for range 2 {
		wg.Go(func() {
			for i := range next {
				data[i], errs[i] = all[i].make()
			}
		})
	}
	for i := range all {
		next <- i
	}
	close(next)
	wg.Wait()

	out := make([]Sample, len(all))
	for i, s := range all {
		if errs[i] != nil {
			return nil, fmt.Errorf("generate %s: %w", s.Name, errs[i])
		}
		path := s.Path(dir)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("generate samples: %w", err)
		}
		if err := os.WriteFile(path, data[i], 0o644); err != nil {
			return nil, fmt.Errorf("generate samples: %w", err)
		}
		out[i] = s.Sample
		out[i].Size = int64(len(data[i]))
	}
	return out, nil
}
