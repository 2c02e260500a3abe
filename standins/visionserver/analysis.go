package visionserver

import (
	"fmt"
	"image"
	"math"
	"sort"
	"strings"
)

// Everything the stand-in says about an image is computed here from its decoded pixels
// (or, for images it cannot decode, from its format and dimensions alone), deterministically:
// the same bytes always give the same answer. It invents no objects, people or text.

// Azure's colour names (v3.2 colour scheme detection).
const (
	colBlack  = "Black"
	colBlue   = "Blue"
	colBrown  = "Brown"
	colGrey   = "Grey"
	colGreen  = "Green"
	colOrange = "Orange"
	colPink   = "Pink"
	colPurple = "Purple"
	colRed    = "Red"
	colTeal   = "Teal"
	colWhite  = "White"
	colYellow = "Yellow"
)

// maxSamplesPerAxis bounds the sampling grid: at most 128x128 pixels are looked at.
const maxSamplesPerAxis = 128

// facts is what the pixels say. A nil *facts means the pixels were not decoded.
type facts struct {
	shares     map[string]float64 // colour name -> fraction of samples
	dominant   []string           // up to three colour names, most common first
	foreground string             // most common colour in the central region
	background string             // most common colour in the border region
	accent     string             // RRGGBB of the most common vivid colour
	luminance  float64            // mean luma, 0..1
	grayscale  bool               // no sample has visible chroma
	bilevel    bool               // grayscale, (nearly) only black and white, and both present
	distinct   int                // distinct 24-bit colours among the samples
	// lum is the luma of each sample, row by row, nx by ny: where the detail is, for
	// smart crops.
	lum    []float64
	nx, ny int
}

// analysePixels samples img on a regular grid.
func analysePixels(img image.Image) *facts {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return nil
	}
	nx, ny := min(w, maxSamplesPerAxis), min(h, maxSamplesPerAxis)
	// Per-colour tallies are indexed by the colour's position in colourNames.
	var counts, centre, border, vividCounts [len(colourNames)]int
	var vivid [len(colourNames)]colourSum
	var all colourSum
	distinct := make(map[uint32]struct{}, min(nx*ny, 4097))
	chromatic, blackOrWhite := 0, 0
	var lumSum float64
	total := nx * ny
	lums := make([]float64, 0, total)
	for j := 0; j < ny; j++ {
		y := (2*j + 1) * h / (2 * ny)
		for i := 0; i < nx; i++ {
			x := (2*i + 1) * w / (2 * nx)
			r, g, bl := overWhite(img, b.Min.X+x, b.Min.Y+y)
			c := colourOf(r, g, bl)
			counts[c]++
			if x >= w/4 && x < w-w/4 && y >= h/4 && y < h-h/4 {
				centre[c]++
			} else {
				border[c]++
			}
			all.r, all.g, all.b, all.n = all.r+float64(r), all.g+float64(g), all.b+float64(bl), all.n+1
			if c != iBlack && c != iWhite && c != iGrey {
				s := &vivid[c]
				s.r, s.g, s.b, s.n = s.r+float64(r), s.g+float64(g), s.b+float64(bl), s.n+1
				vividCounts[c]++
			}
			lum := luma(r, g, bl)
			lumSum += lum
			lums = append(lums, lum)
			if max(r, g, bl)-min(r, g, bl) > 16 {
				chromatic++
			}
			if lum < 0.2 || lum > 0.85 {
				blackOrWhite++
			}
			if len(distinct) <= 4096 {
				distinct[uint32(r)<<16|uint32(g)<<8|uint32(bl)] = struct{}{}
			}
		}
	}
	f := &facts{shares: map[string]float64{}, luminance: lumSum / float64(total), distinct: len(distinct), lum: lums, nx: nx, ny: ny}
	for c, n := range counts {
		if n > 0 {
			f.shares[colourNames[c]] = float64(n) / float64(total)
		}
	}
	ranked := rankNames(counts[:])
	for i, name := range ranked {
		if i > 0 && (i >= 3 || f.shares[name] < 0.15) {
			break
		}
		f.dominant = append(f.dominant, name)
	}
	f.foreground = firstOr(rankNames(centre[:]), ranked[0])
	f.background = firstOr(rankNames(border[:]), ranked[0])
	// A sample counts as chromatic when its channels differ by more than 16 of 255: JPEG
	// noise on a grey image stays below that; 1% of chromatic samples is tolerated.
	f.grayscale = float64(chromatic) <= 0.01*float64(total)
	f.bilevel = f.grayscale && float64(blackOrWhite) >= 0.98*float64(total) &&
		f.shares[colBlack] >= 0.02 && f.shares[colWhite] >= 0.02
	acc := all
	if ranked := rankColours(vividCounts[:]); len(ranked) > 0 {
		acc = vivid[ranked[0]]
	}
	f.accent = fmt.Sprintf("%02X%02X%02X",
		uint8(math.Round(acc.r/acc.n)), uint8(math.Round(acc.g/acc.n)), uint8(math.Round(acc.b/acc.n)))
	return f
}

// colourSum accumulates 8-bit channels to average them.
type colourSum struct{ r, g, b, n float64 }

func firstOr(names []string, def string) string {
	if len(names) > 0 {
		return names[0]
	}
	return def
}

// rankNames orders the colours seen (counts indexed as colourNames) by count, most first,
// ties by name.
func rankNames(counts []int) []string {
	idx := rankColours(counts)
	names := make([]string, len(idx))
	for i, c := range idx {
		names[i] = colourNames[c]
	}
	return names
}

// rankColours is rankNames as indexes in colourNames.
func rankColours(counts []int) []int {
	idx := make([]int, 0, len(counts))
	for c, n := range counts {
		if n > 0 {
			idx = append(idx, c)
		}
	}
	sort.Slice(idx, func(i, j int) bool {
		if counts[idx[i]] != counts[idx[j]] {
			return counts[idx[i]] > counts[idx[j]]
		}
		return colourNames[idx[i]] < colourNames[idx[j]]
	})
	return idx
}

// overWhite returns the 8-bit colour at (x, y) composited over a white background. The
// decoders' usual image types are read through their concrete colour types, which spares
// an allocation per pixel; the result is the same as through img.At.
func overWhite(img image.Image, x, y int) (r, g, b uint8) {
	var cr, cg, cb, ca uint32 // alpha-premultiplied, 16 bits
	switch m := img.(type) {
	case *image.RGBA:
		cr, cg, cb, ca = m.RGBAAt(x, y).RGBA()
	case *image.NRGBA:
		cr, cg, cb, ca = m.NRGBAAt(x, y).RGBA()
	case *image.YCbCr:
		cr, cg, cb, ca = m.YCbCrAt(x, y).RGBA()
	case *image.Gray:
		cr, cg, cb, ca = m.GrayAt(x, y).RGBA()
	default:
		cr, cg, cb, ca = img.At(x, y).RGBA()
	}
	t := 0xffff - ca
	return uint8((cr + t) >> 8), uint8((cg + t) >> 8), uint8((cb + t) >> 8)
}

func luma(r, g, b uint8) float64 {
	return (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 255
}

// colourNames lists Azure's colour names; tallies are indexed by position here.
var colourNames = [...]string{colBlack, colBlue, colBrown, colGrey, colGreen, colOrange, colPink, colPurple, colRed, colTeal, colWhite, colYellow}

// Positions in colourNames.
const (
	iBlack = iota
	iBlue
	iBrown
	iGrey
	iGreen
	iOrange
	iPink
	iPurple
	iRed
	iTeal
	iWhite
	iYellow
)

// colourOf maps a colour to one of Azure's twelve colour names, as its index in colourNames,
// by hue, saturation and value.
func colourOf(r, g, b uint8) int {
	rf, gf, bf := float64(r)/255, float64(g)/255, float64(b)/255
	hi, lo := math.Max(rf, math.Max(gf, bf)), math.Min(rf, math.Min(gf, bf))
	v, delta := hi, hi-lo
	if v < 0.18 {
		return iBlack
	}
	s := delta / hi
	if s < 0.18 || delta < 0.08 {
		switch l := luma(r, g, b); {
		case l > 0.85:
			return iWhite
		case l < 0.2:
			return iBlack
		default:
			return iGrey
		}
	}
	var hue float64
	switch hi {
	case rf:
		hue = math.Mod((gf-bf)/delta, 6)
	case gf:
		hue = (bf-rf)/delta + 2
	default:
		hue = (rf-gf)/delta + 4
	}
	hue *= 60
	if hue < 0 {
		hue += 360
	}
	switch {
	case hue < 15 || hue >= 340:
		if s < 0.5 && v > 0.7 {
			return iPink
		}
		if v < 0.45 {
			return iBrown
		}
		return iRed
	case hue < 45:
		if v < 0.65 {
			return iBrown
		}
		return iOrange
	case hue < 70:
		if v < 0.45 {
			return iBrown
		}
		return iYellow
	case hue < 165:
		return iGreen
	case hue < 200:
		return iTeal
	case hue < 260:
		return iBlue
	case hue < 290:
		return iPurple
	default:
		if v < 0.6 {
			return iPurple
		}
		return iPink
	}
}

// colourName is colourOf's answer as a name.
func colourName(r, g, b uint8) string { return colourNames[colourOf(r, g, b)] }

// aspectName names the shape of a w x h image.
func aspectName(w, h int) string {
	r := float64(w) / float64(h)
	switch {
	case r >= 2:
		return "panorama"
	case r > 1.05:
		return "landscape"
	case r < 0.95:
		return "portrait"
	default:
		return "square"
	}
}

// tag is a name with a confidence, shared by both API versions.
type tag struct {
	name string
	conf float64
}

// round4 keeps confidences short and stable in JSON.
func round4(x float64) float64 { return math.Round(x*10000) / 10000 }

// colourTag is the tag name for a colour ("Grey" is tagged "gray", as US-English tags are).
func colourTag(name string) string {
	if name == colGrey {
		return "gray"
	}
	return strings.ToLower(name)
}

// description is the stand-in's whole verdict on one image.
type description struct {
	width, height int
	format        string
	facts         *facts // nil: pixels not decoded
	tags          []tag
	caption       string
	captionConf   float64
}

func describe(p probed, f *facts) description {
	d := description{width: p.width, height: p.height, format: p.format, facts: f}
	aspect := aspectName(p.width, p.height)
	d.tags = append(d.tags, tag{p.format, 0.99}, tag{aspect, 0.99})
	if f == nil {
		d.caption = withArticle(fmt.Sprintf("%s %s image", aspectWord(aspect), strings.ToUpper(p.format)))
		d.captionConf = 0.3
		sortTags(d.tags)
		return d
	}
	for _, c := range f.dominant {
		d.tags = append(d.tags, tag{colourTag(c), round4(0.5 + 0.5*f.shares[c])})
	}
	brightness := ""
	switch {
	case f.luminance < 0.25:
		brightness = "dark"
		d.tags = append(d.tags, tag{"dark", round4(0.6 + 0.4*math.Min(1, (0.25-f.luminance)/0.25))})
	case f.luminance > 0.75:
		brightness = "bright"
		d.tags = append(d.tags, tag{"bright", round4(0.6 + 0.4*math.Min(1, (f.luminance-0.75)/0.25))})
	}
	if f.grayscale {
		d.tags = append(d.tags, tag{"grayscale", 0.95}, tag{"black and white", 0.95})
	}
	sortTags(d.tags)

	top := f.dominant[0]
	var colour string
	switch {
	case f.bilevel:
		colour = "black and white"
	case f.grayscale && top != colBlack && top != colWhite:
		colour = "grayscale"
	case f.shares[top] >= 0.9:
		colour = "solid " + colourTag(top)
	case f.shares[top] >= 0.5:
		colour = "mostly " + colourTag(top)
	case len(f.dominant) >= 2 && f.shares[f.dominant[1]] >= 0.25:
		colour = colourTag(top) + " and " + colourTag(f.dominant[1])
	default:
		colour = "colorful"
	}
	words := colour + " " + aspectWord(aspect) + " image"
	if brightness != "" {
		words = brightness + ", " + words
	}
	d.caption = withArticle(words)
	d.captionConf = round4(0.5 + 0.4*f.shares[top])
	return d
}

func aspectWord(aspect string) string {
	if aspect == "panorama" {
		return "panoramic"
	}
	return aspect
}

func withArticle(words string) string {
	if strings.ContainsRune("aeiouAEIOU", rune(words[0])) {
		return "an " + words
	}
	return "a " + words
}

func sortTags(t []tag) {
	sort.SliceStable(t, func(i, j int) bool {
		if t[i].conf != t[j].conf {
			return t[i].conf > t[j].conf
		}
		return t[i].name < t[j].name
	})
}

// smartCrop is the largest box of aspect ratio r in a w x h image (centredCrop's size),
// placed where the image's detail is: along the axis it can move on, at the offset whose
// window holds the most edge energy (the luma differences between neighbouring samples),
// the one nearest the centre among equals. Without decoded pixels it is centredCrop.
func smartCrop(w, h int, f *facts, r float64) BoundingBox {
	box := centredCrop(w, h, r)
	if f == nil || (box.W == w && box.H == h) {
		return box
	}
	// Edge energy per sample column and per sample row.
	cols, rows := make([]float64, f.nx), make([]float64, f.ny)
	at := func(i, j int) float64 { return f.lum[j*f.nx+i] }
	for j := 0; j < f.ny; j++ {
		for i := 0; i < f.nx; i++ {
			var e float64
			if i+1 < f.nx {
				e += math.Abs(at(i+1, j) - at(i, j))
			}
			if j+1 < f.ny {
				e += math.Abs(at(i, j+1) - at(i, j))
			}
			cols[i] += e
			rows[j] += e
		}
	}
	// Slide along the free axis: samples sit at the centres of n equal strips of length.
	best := func(length, size, n int, profile []float64) int {
		room := length - size
		steps := min(room, 256)
		bestOff, bestScore := room/2, -1.0
		for k := 0; k <= steps; k++ {
			off := k * room / steps
			var score float64
			for i := 0; i < n; i++ {
				if p := (2*i + 1) * length / (2 * n); p >= off && p < off+size {
					score += profile[i]
				}
			}
			centre := func(o int) int { return max(o-room/2, room/2-o) }
			if score > bestScore || (score == bestScore && centre(off) < centre(bestOff)) {
				bestOff, bestScore = off, score
			}
		}
		return bestOff
	}
	if box.W < w {
		box.X = best(w, box.W, f.nx, cols)
	} else {
		box.Y = best(h, box.H, f.ny, rows)
	}
	return box
}

// centredCrop is the largest box of aspect ratio r (width/height) centred in a w x h image.
func centredCrop(w, h int, r float64) BoundingBox {
	cw, ch := w, int(math.Round(float64(w)/r))
	if ch > h {
		cw, ch = int(math.Round(float64(h)*r)), h
	}
	cw, ch = max(1, min(cw, w)), max(1, min(ch, h))
	return BoundingBox{X: (w - cw) / 2, Y: (h - ch) / 2, W: cw, H: ch}
}
