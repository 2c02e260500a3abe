package visionserver

import (
	"image"
	"image/color"
	"net/http"
	"testing"
)

// detailAt is a w x h white image with a black-and-white checkerboard in rect: the only
// detail in the picture.
func detailAt(w, h int, rect image.Rectangle) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{255, 255, 255, 255}
			if (image.Point{x, y}).In(rect) && (x/4+y/4)%2 == 0 {
				c = color.RGBA{0, 0, 0, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// TestSmartCropsFollowTheDetail: a crop moves to where the picture has detail (edges), along
// whichever axis it can move on, and stays centred on a flat picture.
func TestSmartCropsFollowTheDetail(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct {
		name   string
		img    *image.RGBA
		ratio  string
		detail image.Rectangle
	}{
		{"detail on the right", detailAt(400, 200, image.Rect(320, 40, 390, 160)), "1", image.Rect(320, 40, 390, 160)},
		{"detail on the left", detailAt(400, 200, image.Rect(10, 40, 80, 160)), "0.75", image.Rect(10, 40, 80, 160)},
		{"detail at the top", detailAt(200, 400, image.Rect(40, 5, 160, 90)), "1.8", image.Rect(40, 5, 160, 90)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := decode40(t, h.do(http.MethodPost, path40("smartCrops")+"&smartcrops-aspect-ratios="+tc.ratio, keyHeader, encPNG(t, tc.img)))
			if len(res.SmartCropsResult.Values) != 1 {
				t.Fatalf("crops %+v", res.SmartCropsResult.Values)
			}
			b := res.SmartCropsResult.Values[0].BoundingBox
			crop := image.Rect(b.X, b.Y, b.X+b.W, b.Y+b.H)
			centred := centredCrop(tc.img.Rect.Dx(), tc.img.Rect.Dy(), res.SmartCropsResult.Values[0].AspectRatio)
			if b.W != centred.W || b.H != centred.H {
				t.Errorf("crop %+v is not the largest of its ratio (%+v)", b, centred)
			}
			if !tc.detail.In(crop) {
				t.Errorf("crop %v misses the detail at %v", crop, tc.detail)
			}
		})
	}
}
