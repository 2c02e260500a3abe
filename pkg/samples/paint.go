package samples

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"strings"

	"imgpipe/pkg/imagemeta"
)

// rgb is a colour with float channels in 0..255.
type rgb struct{ r, g, b float64 }

func lerp(a, b rgb, t float64) rgb {
	t = clamp01(t)
	return rgb{a.r + (b.r-a.r)*t, a.g + (b.g-a.g)*t, a.b + (b.b-a.b)*t}
}

func clamp01(t float64) float64 { return math.Max(0, math.Min(1, t)) }

func to8(v float64) uint8 { return uint8(math.Max(0, math.Min(255, v+0.5))) }

// hsv converts hue (turns, any real), saturation and value (0..1) to a colour.
func hsv(h, s, v float64) rgb {
	h = (h - math.Floor(h)) * 6
	i := math.Floor(h)
	f := h - i
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	var r, g, b float64
	switch int(i) % 6 {
	case 0:
		r, g, b = v, t, p
	case 1:
		r, g, b = q, v, p
	case 2:
		r, g, b = p, v, t
	case 3:
		r, g, b = p, q, v
	case 4:
		r, g, b = t, p, v
	default:
		r, g, b = v, p, q
	}
	return rgb{255 * r, 255 * g, 255 * b}
}

// paint fills a new w x h image with f(x, y).
func paint(w, h int, f func(x, y int) rgb) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		pix := img.Pix[y*img.Stride:]
		for x := 0; x < w; x++ {
			c := f(x, y)
			pix[4*x], pix[4*x+1], pix[4*x+2], pix[4*x+3] = to8(c.r), to8(c.g), to8(c.b), 255
		}
	}
	return img
}

// newRand returns the deterministic generator for a seed.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x696d67706970)) }

// Limits of Image: big enough for Vision's "too large" case (16000 pixels a side),
// small enough to stay in memory.
const (
	maxSide   = 20000
	maxPixels = 64 << 20
)

// Image returns a deterministic image of w x h pixels in format ("jpeg" or "jpg", "png",
// "gif", "bmp", "tiff"; the names of imagemeta.Format). The same seed gives the same bytes;
// different seeds give different bytes (the seed is written in the file's comment field,
// and for BMP in its resolution fields) and different pictures: a two-colour gradient at
// a seed-chosen angle and hue with a few discs and boxes, so that dominant colours vary.
func Image(seed int64, w, h int, format string) ([]byte, error) {
	format = strings.ToLower(format)
	if format == "jpg" {
		format = string(imagemeta.JPEG)
	}
	if w <= 0 || h <= 0 || w > maxSide || h > maxSide || w*h > maxPixels {
		return nil, fmt.Errorf("image size %dx%d: want 1 to %d a side and at most %d pixels", w, h, maxSide, maxPixels)
	}
	r := newRand(uint64(seed))
	hue := r.Float64()
	c1 := hsv(hue, 0.5+0.45*r.Float64(), 0.55+0.45*r.Float64())
	c2 := hsv(hue+0.15+0.3*r.Float64(), 0.3+0.6*r.Float64(), 0.2+0.7*r.Float64())
	angle := 2 * math.Pi * r.Float64()
	cos, sin := math.Cos(angle), math.Sin(angle)
	diag := math.Hypot(float64(w), float64(h))

	type shape struct {
		disc           bool
		cx, cy, rx, ry float64
		c              rgb
	}
	shapes := make([]shape, 2+r.IntN(5))
	for i := range shapes {
		shapes[i] = shape{
			disc: r.IntN(2) == 0,
			cx:   r.Float64() * float64(w), cy: r.Float64() * float64(h),
			rx: (0.05 + 0.2*r.Float64()) * float64(w), ry: (0.05 + 0.2*r.Float64()) * float64(h),
			c: hsv(hue+0.5+0.3*r.NormFloat64(), 0.4+0.6*r.Float64(), 0.3+0.7*r.Float64()),
		}
	}
	img := paint(w, h, func(x, y int) rgb {
		fx, fy := float64(x), float64(y)
		c := lerp(c1, c2, ((fx-float64(w)/2)*cos+(fy-float64(h)/2)*sin)/diag+0.5)
		for _, s := range shapes {
			dx, dy := (fx-s.cx)/s.rx, (fy-s.cy)/s.ry
			if s.disc && dx*dx+dy*dy <= 1 || !s.disc && math.Abs(dx) <= 1 && math.Abs(dy) <= 1 {
				c = s.c
			}
		}
		return c
	})
	if format == string(imagemeta.BMP) {
		// BMP has no comment; its resolution fields hold the seed instead (see encodeBMP).
		b := encodeBMP(img)
		putSeed(b[38:46], uint64(seed))
		return b, nil
	}
	return encode(img, format, fmt.Sprintf("imgpipe sample seed %d", seed))
}

// putSeed writes a seed into the two 32-bit pixels-per-metre fields of a BMP info header.
func putSeed(b []byte, seed uint64) {
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
}

// The samples' pictures. Each is a simple scene whose dominant colours match its name.

func sunset(w, h int) *image.RGBA {
	horizon := 0.62 * float64(h)
	sunX, sunY, sunR := 0.5*float64(w), 0.58*float64(h), 0.08*float64(h)
	top, mid, low, glow := rgb{110, 20, 50}, rgb{215, 50, 35}, rgb{250, 120, 30}, rgb{255, 200, 90}
	return paint(w, h, func(x, y int) rgb {
		fx, fy := float64(x), float64(y)
		var c rgb
		if fy < horizon {
			t := fy / horizon
			switch {
			case t < 0.45:
				c = lerp(top, mid, t/0.45)
			case t < 0.85:
				c = lerp(mid, low, (t-0.45)/0.4)
			default:
				c = lerp(low, glow, (t-0.85)/0.15)
			}
		} else {
			t := (fy - horizon) / (float64(h) - horizon)
			c = lerp(rgb{150, 45, 30}, rgb{60, 15, 25}, t)
			if math.Abs(fx-sunX) < sunR*(1.2-t) && math.Sin(fy*0.9+fx*0.01) > 0.3 {
				c = lerp(c, glow, 0.6) // the sun's reflection
			}
		}
		d := math.Hypot(fx-sunX, fy-sunY)
		if d < sunR && fy < horizon {
			return rgb{255, 225, 140}
		}
		if g := 1 - d/(4*sunR); g > 0 && fy < horizon {
			c = lerp(c, glow, 0.5*g*g)
		}
		return c
	})
}

func ocean(w, h int) *image.RGBA {
	deep, light := rgb{8, 45, 120}, rgb{25, 120, 200}
	return paint(w, h, func(x, y int) rgb {
		fx, fy := float64(x), float64(y)
		c := lerp(light, deep, fy/float64(h))
		wave := math.Sin(fx*0.045+4*math.Sin(fy*0.021)) * math.Sin(fy*0.11+fx*0.003)
		if wave > 0.8 {
			c = lerp(c, rgb{225, 240, 255}, (wave-0.8)*3)
		}
		return c
	})
}

func forest(w, h int) *image.RGBA {
	r := newRand(3)
	type tree struct{ x, base, height, half float64 }
	trees := make([]tree, 40)
	for i := range trees {
		base := float64(h) * (0.35 + 0.65*float64(i)/float64(len(trees)))
		height := float64(h) * (0.15 + 0.15*r.Float64())
		trees[i] = tree{r.Float64() * float64(w), base, height, height * (0.25 + 0.1*r.Float64())}
	}
	return paint(w, h, func(x, y int) rgb {
		fx, fy := float64(x), float64(y)
		c := lerp(rgb{70, 140, 60}, rgb{20, 70, 25}, fy/float64(h))
		for i, t := range trees { // later trees are nearer and cover earlier ones
			top := t.base - t.height
			if fy >= top && fy <= t.base && math.Abs(fx-t.x) <= t.half*(fy-top)/t.height {
				c = lerp(rgb{30, 110, 40}, rgb{10, 55, 20}, float64(i%5)/4)
			} else if fy > t.base && fy < t.base+t.height*0.12 && math.Abs(fx-t.x) < t.half*0.12 {
				c = rgb{90, 60, 30}
			}
		}
		return c
	})
}

func nightSky(w, h int) *image.RGBA {
	r := newRand(4)
	img := paint(w, h, func(x, y int) rgb {
		fx, fy := float64(x), float64(y)
		c := lerp(rgb{4, 6, 22}, rgb{16, 22, 52}, fy/float64(h))
		if d := math.Hypot(fx-0.8*float64(w), fy-0.2*float64(h)); d < 0.05*float64(h) {
			c = rgb{235, 232, 210} // the moon
		}
		return c
	})
	for range 700 {
		x, y := r.IntN(w-1), r.IntN(h-1)
		v := uint8(170 + r.IntN(86))
		size := 1 + r.IntN(2)
		for dy := range size {
			for dx := range size {
				i := img.PixOffset(x+dx, y+dy)
				img.Pix[i], img.Pix[i+1], img.Pix[i+2] = v, v, v
			}
		}
	}
	return img
}

// portrait is a grey head-and-shoulders silhouette on a light background, as a Gray image.
func portrait(w, h int) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	cx := float64(w) / 2
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x), float64(y)
			v := 200 - 40*fy/float64(h) + 15*math.Sin(fx*0.02)
			hx, hy := (fx-cx)/(0.2*float64(w)), (fy-0.33*float64(h))/(0.17*float64(h))
			if d := hx*hx + hy*hy; d <= 1 {
				v = 95 + 60*(1-d) - 25*hx // a lit face
			} else if sx := (fx - cx) / (0.42 * float64(w)); fy > 0.55*float64(h) && sx*sx+math.Pow((fy-float64(h))/(0.45*float64(h)), 2) <= 1 {
				v = 55 + 20*math.Sin(fy*0.05) // shoulders
			}
			img.Pix[y*img.Stride+x] = to8(v)
		}
	}
	return img
}

func panorama(w, h int) *image.RGBA {
	ridge := func(x float64, phase, amp, base float64) float64 {
		return base - amp*(0.5*math.Sin(x*0.004+phase)+0.3*math.Sin(x*0.011+2*phase)+0.2*math.Sin(x*0.031+3*phase))
	}
	fh := float64(h)
	return paint(w, h, func(x, y int) rgb {
		fx, fy := float64(x), float64(y)
		far, near := ridge(fx, 1, 0.25*fh, 0.45*fh), ridge(fx, 4, 0.18*fh, 0.7*fh)
		switch {
		case fy > near:
			return lerp(rgb{70, 90, 55}, rgb{35, 50, 30}, (fy-near)/(fh-near))
		case fy > far:
			if fy < far+0.03*fh && far < 0.35*fh {
				return rgb{240, 242, 248} // snow on the high peaks
			}
			return lerp(rgb{120, 125, 145}, rgb{85, 90, 110}, (fy-far)/(0.4*fh))
		}
		return lerp(rgb{90, 150, 225}, rgb{200, 222, 245}, fy/(0.6*fh))
	})
}

func stripes(w, h int) *image.RGBA {
	return paint(w, h, func(x, y int) rgb {
		if (x+y)/24%2 == 0 {
			return rgb{130, 40, 150}
		}
		return lerp(rgb{200, 60, 170}, rgb{240, 120, 210}, float64(y)/float64(h))
	})
}

func beach(w, h int) *image.RGBA {
	r := newRand(8)
	fh := float64(h)
	img := paint(w, h, func(x, y int) rgb {
		fx, fy := float64(x), float64(y)
		shore := 0.62*fh + 6*math.Sin(fx*0.03)
		switch {
		case fy < 0.42*fh:
			return lerp(rgb{80, 160, 235}, rgb{170, 215, 250}, fy/(0.42*fh))
		case fy < shore:
			c := lerp(rgb{20, 100, 170}, rgb{40, 150, 190}, (fy-0.42*fh)/(shore-0.42*fh))
			if math.Sin(fx*0.08+fy*0.5) > 0.92 {
				c = rgb{230, 245, 250}
			}
			return c
		}
		// A red and white parasol on the sand.
		if dx, dy := fx-0.3*float64(w), fy-0.72*fh; dy < 0 && dy > -0.08*fh && math.Abs(dx) < 0.12*float64(w)*(1+dy/(0.08*fh)*0.6) {
			if int(dx/12+100)%2 == 0 {
				return rgb{210, 30, 40}
			}
			return rgb{245, 245, 240}
		}
		return lerp(rgb{235, 210, 150}, rgb{215, 185, 120}, (fy-shore)/(fh-shore))
	})
	for range w * h / 50 { // grains of sand
		x, y := r.IntN(w), int(0.66*fh)+r.IntN(h-int(0.66*fh))
		i := img.PixOffset(x, y)
		img.Pix[i], img.Pix[i+1], img.Pix[i+2] = 190, 160, 100
	}
	return img
}

func sunflower(w, h int) *image.RGBA {
	cx, cy := float64(w)/2, float64(h)/2
	size := 0.35 * math.Min(float64(w), float64(h))
	return paint(w, h, func(x, y int) rgb {
		dx, dy := float64(x)-cx, float64(y)-cy
		d, a := math.Hypot(dx, dy), math.Atan2(dy, dx)
		switch {
		case d < 0.4*size:
			return lerp(rgb{90, 50, 20}, rgb{50, 30, 10}, d/(0.4*size))
		case d < size*(0.75+0.25*math.Abs(math.Cos(a*8))):
			return lerp(rgb{255, 215, 0}, rgb{240, 170, 0}, d/size)
		}
		return lerp(rgb{60, 150, 60}, rgb{30, 90, 40}, float64(y)/float64(h))
	})
}

func desert(w, h int) *image.RGBA {
	fh := float64(h)
	return paint(w, h, func(x, y int) rgb {
		fx, fy := float64(x), float64(y)
		dune := 0.45*fh + 0.08*fh*math.Sin(fx*0.03) + 0.05*fh*math.Sin(fx*0.071+1)
		if fy < dune {
			return lerp(rgb{250, 200, 120}, rgb{255, 235, 190}, fy/dune)
		}
		shade := 0.5 + 0.5*math.Sin(fx*0.05-fy*0.09)
		return lerp(rgb{210, 130, 60}, rgb{235, 165, 85}, shade)
	})
}

func fields(w, h int) *image.RGBA {
	r := newRand(10)
	const cols, rows = 6, 4
	palette := []rgb{{95, 150, 60}, {200, 180, 70}, {130, 95, 55}, {60, 120, 50}, {175, 200, 90}}
	var cells [cols * rows]rgb
	for i := range cells {
		cells[i] = palette[r.IntN(len(palette))]
	}
	return paint(w, h, func(x, y int) rgb {
		cx, cy := x*cols/w, y*rows/h
		if x*cols%w < cols || y*rows%h < rows {
			return rgb{110, 105, 95} // tracks between the fields
		}
		c := cells[cy*cols+cx]
		if (x+2*y)%9 == 0 {
			c = lerp(c, rgb{0, 0, 0}, 0.15) // furrows
		}
		return c
	})
}

// noise is a teal-to-violet gradient under strong per-pixel noise, written straight into
// the pixels for speed.
func noise(w, h int) *image.RGBA {
	r := newRand(11)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		pix := img.Pix[y*img.Stride:]
		base := lerp(rgb{20, 140, 140}, rgb{120, 40, 160}, float64(y)/float64(h))
		for x := 0; x < w; x++ {
			n := r.Uint64()
			pix[4*x] = to8(base.r + float64(n&0xFF) - 128)
			pix[4*x+1] = to8(base.g + float64(n>>8&0xFF) - 128)
			pix[4*x+2] = to8(base.b + float64(n>>16&0xFF) - 128)
			pix[4*x+3] = 255
		}
	}
	return img
}

func redSquare(w, h int) *image.RGBA {
	return paint(w, h, func(x, y int) rgb { return lerp(rgb{220, 30, 30}, rgb{160, 10, 10}, float64(x+y)/float64(w+h)) })
}
