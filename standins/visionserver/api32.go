package visionserver

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"

	"imgpipe/internal/visionstandin"
)

// ModelVersion32 is the model version v3.2 answers report.
const ModelVersion32 = "2021-05-01"

// Result32 is the body of a successful v3.2 analyze answer. Only the requested visual
// features' members are present; requestId, metadata and modelVersion always are.
type Result32 struct {
	Categories   []Category32   `json:"categories,omitzero"`
	Adult        *Adult32       `json:"adult,omitempty"`
	Color        *Color32       `json:"color,omitempty"`
	ImageType    *ImageType32   `json:"imageType,omitempty"`
	Tags         []Tag          `json:"tags,omitzero"`
	Description  *Description32 `json:"description,omitempty"`
	Faces        []Face32       `json:"faces,omitzero"`
	Objects      []Object32     `json:"objects,omitzero"`
	Brands       []Brand32      `json:"brands,omitzero"`
	RequestID    string         `json:"requestId"`
	Metadata     Metadata32     `json:"metadata"`
	ModelVersion string         `json:"modelVersion"`
}

// Category32 is a category from Azure's 86-category taxonomy.
type Category32 struct {
	Name  string  `json:"name"`
	Score float64 `json:"score"`
}

// Adult32 is the adult-content verdict; the stand-in never flags anything.
type Adult32 struct {
	IsAdultContent bool    `json:"isAdultContent"`
	IsRacyContent  bool    `json:"isRacyContent"`
	IsGoryContent  bool    `json:"isGoryContent"`
	AdultScore     float64 `json:"adultScore"`
	RacyScore      float64 `json:"racyScore"`
	GoreScore      float64 `json:"goreScore"`
}

// Color32 is the colour scheme. The service has been seen to send the black-and-white flag
// under both spellings, isBwImg and isBWImg; so does the stand-in.
type Color32 struct {
	DominantColorForeground string   `json:"dominantColorForeground"`
	DominantColorBackground string   `json:"dominantColorBackground"`
	DominantColors          []string `json:"dominantColors"`
	AccentColor             string   `json:"accentColor"`
	IsBwImg                 bool     `json:"isBwImg"`
	IsBWImg                 bool     `json:"isBWImg"`
}

// ImageType32 says whether the image is clip art (0-3) or a line drawing (0-1).
type ImageType32 struct {
	ClipArtType     int `json:"clipArtType"`
	LineDrawingType int `json:"lineDrawingType"`
}

// Caption32 is a caption with its confidence.
type Caption32 struct {
	Text       string  `json:"text"`
	Confidence float64 `json:"confidence"`
}

// Description32 is the description feature: tag names and captions.
type Description32 struct {
	Tags     []string    `json:"tags"`
	Captions []Caption32 `json:"captions"`
}

// Rectangle32 is a v3.2 bounding box.
type Rectangle32 struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// Face32 is a face; the stand-in never reports any.
type Face32 struct {
	Age           int         `json:"age"`
	FaceRectangle Rectangle32 `json:"faceRectangle"`
}

// Object32 is an object; the stand-in never reports any.
type Object32 struct {
	Rectangle  Rectangle32 `json:"rectangle"`
	Object     string      `json:"object"`
	Confidence float64     `json:"confidence"`
}

// Brand32 is a brand logo; the stand-in never reports any.
type Brand32 struct {
	Name       string      `json:"name"`
	Confidence float64     `json:"confidence"`
	Rectangle  Rectangle32 `json:"rectangle"`
}

// Metadata32 is the image's size and format ("Jpeg", "Png", "Gif" or "Bmp").
type Metadata32 struct {
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Format string `json:"format"`
}

// features32 maps the lower-case visual feature names to their canonical spelling.
var features32 = map[string]string{
	"categories": "Categories", "tags": "Tags", "description": "Description", "faces": "Faces",
	"imagetype": "ImageType", "color": "Color", "adult": "Adult", "objects": "Objects", "brands": "Brands",
}

var languages32 = map[string]bool{"en": true, "es": true, "ja": true, "pt": true, "zh": true}

func parseQuery32(q url.Values) (map[string]bool, *apiError) {
	raw, _ := queryValue(q, "visualFeatures")
	if strings.TrimSpace(raw) == "" {
		raw = "Categories" // the documented default
	}
	feats := map[string]bool{}
	for _, f := range strings.Split(raw, ",") {
		name, ok := features32[strings.ToLower(strings.TrimSpace(f))]
		if !ok {
			e := invalid(CodeNotSupportedVisualFeature, "Specified feature type is not valid")
			e.message = "Analyze query is invalid."
			return nil, e
		}
		feats[name] = true
	}
	if v, ok := queryValue(q, "details"); ok && strings.TrimSpace(v) != "" {
		for _, d := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "celebrities", "landmarks":
			default:
				return nil, invalid("InvalidDetails", fmt.Sprintf("The detail '%s' is not valid.", strings.TrimSpace(d)))
			}
		}
	}
	if v, ok := queryValue(q, "language"); ok && v != "" && !languages32[strings.ToLower(v)] {
		return nil, invalid(CodeNotSupportedLanguage, fmt.Sprintf("The language '%s' is not supported.", v))
	}
	if v, ok := queryValue(q, "model-version"); ok && v != "" && !strings.EqualFold(v, "latest") {
		if !dateRE.MatchString(v) {
			return nil, badArgument("The model version '%s' is not valid.", v)
		}
		if v != "2021-04-01" && v != ModelVersion32 {
			return nil, invalid(CodeInvalidModel, fmt.Sprintf("The model version '%s' is not available.", v))
		}
	}
	return feats, nil
}

// analyze32 answers POST /vision/v3.2/analyze once the gateway has let the call through.
// It returns the content key of the image it analysed, or "" after an error.
func (s *Server) analyze32(w http.ResponseWriter, r *http.Request, reqID string) string {
	feats, aerr := parseQuery32(r.URL.Query())
	if aerr != nil {
		writeError(w, aerr, reqID, true)
		return ""
	}
	b, d, aerr := s.image(r, spec32)
	if aerr != nil {
		writeError(w, aerr, reqID, true)
		return ""
	}
	res := build32(d, feats)
	res.RequestID = reqID
	writeJSON(w, http.StatusOK, res)
	return visionstandin.ContentKey(b)
}

// format32 is the v3.2 spelling of a format name.
func format32(f string) string {
	switch f {
	case FormatJPEG, FormatMPO:
		return "Jpeg"
	case FormatPNG:
		return "Png"
	case FormatGIF:
		return "Gif"
	case FormatBMP:
		return "Bmp"
	}
	return strings.ToUpper(f[:1]) + f[1:]
}

func build32(d description, feats map[string]bool) Result32 {
	res := Result32{
		ModelVersion: ModelVersion32,
		Metadata:     Metadata32{Width: d.width, Height: d.height, Format: format32(d.format)},
	}
	f := d.facts
	if feats["Categories"] {
		res.Categories = []Category32{category32(f)}
	}
	if feats["Adult"] {
		res.Adult = &Adult32{}
	}
	if feats["Color"] {
		c := &Color32{DominantColors: []string{}}
		if f != nil {
			c.DominantColorForeground, c.DominantColorBackground = f.foreground, f.background
			c.DominantColors = append(c.DominantColors, f.dominant...)
			c.AccentColor = f.accent
			c.IsBwImg, c.IsBWImg = f.grayscale, f.grayscale
		}
		res.Color = c
	}
	if feats["ImageType"] {
		res.ImageType = imageType32(f)
	}
	if feats["Tags"] {
		res.Tags = make([]Tag, 0, len(d.tags))
		for _, t := range d.tags {
			res.Tags = append(res.Tags, Tag{Name: t.name, Confidence: t.conf})
		}
	}
	if feats["Description"] {
		names := make([]string, 0, len(d.tags))
		for _, t := range d.tags {
			names = append(names, t.name)
		}
		res.Description = &Description32{Tags: names, Captions: []Caption32{{Text: d.caption, Confidence: d.captionConf}}}
	}
	if feats["Faces"] {
		res.Faces = []Face32{}
	}
	if feats["Objects"] {
		res.Objects = []Object32{}
	}
	if feats["Brands"] {
		res.Brands = []Brand32{}
	}
	return res
}

// category32 picks from Azure's taxonomy only what pixels can tell: "dark_" for dark
// images, "abstract_" for (nearly) flat colour, "others_" otherwise.
func category32(f *facts) Category32 {
	switch {
	case f == nil:
		return Category32{Name: "others_", Score: 0.3}
	case f.luminance < 0.25:
		return Category32{Name: "dark_", Score: round4(0.5 + 0.4*math.Min(1, (0.25-f.luminance)/0.25))}
	case f.shares[f.dominant[0]] >= 0.9:
		return Category32{Name: "abstract_", Score: round4(0.5 + 0.4*f.shares[f.dominant[0]])}
	}
	return Category32{Name: "others_", Score: 0.5}
}

// imageType32 grades clip art by how few distinct colours the samples hold, and calls a
// (nearly) pure black-on-white image a line drawing.
func imageType32(f *facts) *ImageType32 {
	t := &ImageType32{}
	if f == nil {
		return t
	}
	switch {
	case f.distinct <= 8:
		t.ClipArtType = 3
	case f.distinct <= 64:
		t.ClipArtType = 2
	case f.distinct <= 256:
		t.ClipArtType = 1
	}
	if f.bilevel && f.shares[colWhite] >= 0.6 {
		t.LineDrawingType = 1
	}
	return t
}
