package visionserver

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"imgpipe/internal/visionstandin"
)

// APIVersions40 are the Image Analysis 4.0 api-version values the stand-in serves.
var APIVersions40 = []string{"2024-02-01", "2023-10-01"}

// ModelVersion40 is the model version 4.0 answers report.
const ModelVersion40 = "2023-10-01"

// Result40 is the body of a successful Image Analysis 4.0 answer. Only the requested
// features' members are present.
type Result40 struct {
	ModelVersion        string                 `json:"modelVersion"`
	Metadata            Metadata40             `json:"metadata"`
	CaptionResult       *CaptionResult40       `json:"captionResult,omitempty"`
	DenseCaptionsResult *DenseCaptionsResult40 `json:"denseCaptionsResult,omitempty"`
	TagsResult          *TagsResult40          `json:"tagsResult,omitempty"`
	ObjectsResult       *ObjectsResult40       `json:"objectsResult,omitempty"`
	ReadResult          *ReadResult40          `json:"readResult,omitempty"`
	PeopleResult        *PeopleResult40        `json:"peopleResult,omitempty"`
	SmartCropsResult    *SmartCropsResult40    `json:"smartCropsResult,omitempty"`
}

// Metadata40 is the image's size.
type Metadata40 struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// BoundingBox is a rectangle in pixels.
type BoundingBox struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// Point is a pixel position.
type Point struct {
	X int `json:"x"`
	Y int `json:"y"`
}

// Tag is a content tag with its confidence (0..1).
type Tag struct {
	Name       string  `json:"name"`
	Confidence float64 `json:"confidence"`
}

// CaptionResult40 is the caption feature.
type CaptionResult40 struct {
	Text       string  `json:"text"`
	Confidence float64 `json:"confidence"`
}

// DenseCaption is a caption of a region; the first always covers the whole image.
type DenseCaption struct {
	Text        string      `json:"text"`
	Confidence  float64     `json:"confidence"`
	BoundingBox BoundingBox `json:"boundingBox"`
}

// DenseCaptionsResult40 is the denseCaptions feature.
type DenseCaptionsResult40 struct {
	Values []DenseCaption `json:"values"`
}

// TagsResult40 is the tags feature.
type TagsResult40 struct {
	Values []Tag `json:"values"`
}

// DetectedObject40 is an object; the stand-in never reports any.
type DetectedObject40 struct {
	BoundingBox BoundingBox `json:"boundingBox"`
	Tags        []Tag       `json:"tags"`
}

// ObjectsResult40 is the objects feature; its Values are always empty here.
type ObjectsResult40 struct {
	Values []DetectedObject40 `json:"values"`
}

// ReadWord40 is a word found by OCR.
type ReadWord40 struct {
	Text            string  `json:"text"`
	BoundingPolygon []Point `json:"boundingPolygon"`
	Confidence      float64 `json:"confidence"`
}

// ReadLine40 is a line found by OCR.
type ReadLine40 struct {
	Text            string       `json:"text"`
	BoundingPolygon []Point      `json:"boundingPolygon"`
	Words           []ReadWord40 `json:"words"`
}

// ReadBlock40 is a block of lines found by OCR.
type ReadBlock40 struct {
	Lines []ReadLine40 `json:"lines"`
}

// ReadResult40 is the read (OCR) feature; its Blocks are always empty here.
type ReadResult40 struct {
	Blocks []ReadBlock40 `json:"blocks"`
}

// DetectedPerson40 is a person; the stand-in never reports any.
type DetectedPerson40 struct {
	BoundingBox BoundingBox `json:"boundingBox"`
	Confidence  float64     `json:"confidence"`
}

// PeopleResult40 is the people feature; its Values are always empty here.
type PeopleResult40 struct {
	Values []DetectedPerson40 `json:"values"`
}

// CropRegion is a suggested crop at an aspect ratio (width / height).
type CropRegion struct {
	AspectRatio float64     `json:"aspectRatio"`
	BoundingBox BoundingBox `json:"boundingBox"`
}

// SmartCropsResult40 is the smartCrops feature: crops placed where the pixels' detail is
// (see smartCrop).
type SmartCropsResult40 struct {
	Values []CropRegion `json:"values"`
}

// features40 maps the lower-case feature names to their canonical spelling.
var features40 = map[string]string{
	"tags": "tags", "caption": "caption", "densecaptions": "denseCaptions", "objects": "objects",
	"read": "read", "people": "people", "smartcrops": "smartCrops",
}

var (
	languageRE = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)
	dateRE     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)
)

// query40 is a validated 4.0 query.
type query40 struct {
	features map[string]bool
	ratios   []float64 // nil: one crop at a ratio of the service's choosing
}

// queryValue reads a query parameter by case-insensitive name.
func queryValue(q url.Values, name string) (string, bool) {
	for k, v := range q {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

func parseQuery40(q url.Values) (query40, *apiError) {
	var out query40
	raw, _ := queryValue(q, "features")
	if strings.TrimSpace(raw) == "" {
		return out, badArgument("Either 'features' or 'model-name' needs to be specified in the query parameter.")
	}
	out.features = map[string]bool{}
	for _, f := range strings.Split(raw, ",") {
		name, ok := features40[strings.ToLower(strings.TrimSpace(f))]
		if !ok {
			return out, badArgument("The feature '%s' is not supported. Supported features: tags, caption, "+
				"denseCaptions, objects, read, people, smartCrops.", strings.TrimSpace(f))
		}
		out.features[name] = true
	}
	lang, hasLang := queryValue(q, "language")
	if hasLang {
		if !languageRE.MatchString(lang) {
			return out, badArgument("The language '%s' is not valid.", lang)
		}
		if !strings.EqualFold(lang, "en") && (out.features["caption"] || out.features["denseCaptions"]) {
			return out, invalid(CodeNotSupportedLanguage, fmt.Sprintf(
				"The language '%s' is not supported for the caption and denseCaptions features; use 'en'.", lang))
		}
	}
	if v, ok := queryValue(q, "gender-neutral-caption"); ok {
		if _, err := strconv.ParseBool(v); err != nil {
			return out, badArgument("The value '%s' of 'gender-neutral-caption' is not a boolean.", v)
		}
	}
	if v, ok := queryValue(q, "model-version"); ok && v != "" && !strings.EqualFold(v, "latest") {
		if !dateRE.MatchString(v) {
			return out, badArgument("The model version '%s' is not valid.", v)
		}
		if v != ModelVersion40 {
			return out, invalid(CodeInvalidModel, fmt.Sprintf("The model version '%s' is not available.", v))
		}
	}
	if v, ok := queryValue(q, "smartcrops-aspect-ratios"); ok && strings.TrimSpace(v) != "" {
		for _, part := range strings.Split(v, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
			if err != nil || math.IsNaN(r) || r < 0.75 || r > 1.8 {
				return out, badArgument("The smart crops aspect ratio '%s' is not valid: "+
					"each must be a number between 0.75 and 1.8.", strings.TrimSpace(part))
			}
			out.ratios = append(out.ratios, r)
		}
	}
	return out, nil
}

// analyze40 answers POST /computervision/imageanalysis:analyze once the gateway has let the
// call through. It returns the content key of the image it analysed, or "" after an error.
func (s *Server) analyze40(w http.ResponseWriter, r *http.Request, reqID string) string {
	version, _ := queryValue(r.URL.Query(), "api-version")
	if !slices.Contains(APIVersions40, version) {
		writeError(w, notFound(), reqID, false)
		return ""
	}
	q, aerr := parseQuery40(r.URL.Query())
	if aerr != nil {
		writeError(w, aerr, reqID, false)
		return ""
	}
	b, d, aerr := s.image(r, spec40)
	if aerr != nil {
		writeError(w, aerr, reqID, false)
		return ""
	}
	writeJSON(w, http.StatusOK, build40(d, q))
	return visionstandin.ContentKey(b)
}

func build40(d description, q query40) Result40 {
	res := Result40{ModelVersion: ModelVersion40, Metadata: Metadata40{Width: d.width, Height: d.height}}
	f := q.features
	if f["tags"] {
		tags := make([]Tag, 0, len(d.tags))
		for _, t := range d.tags {
			tags = append(tags, Tag{Name: t.name, Confidence: t.conf})
		}
		res.TagsResult = &TagsResult40{Values: tags}
	}
	if f["caption"] {
		res.CaptionResult = &CaptionResult40{Text: d.caption, Confidence: d.captionConf}
	}
	if f["denseCaptions"] {
		res.DenseCaptionsResult = &DenseCaptionsResult40{Values: []DenseCaption{{
			Text: d.caption, Confidence: d.captionConf,
			BoundingBox: BoundingBox{W: d.width, H: d.height},
		}}}
	}
	if f["objects"] {
		res.ObjectsResult = &ObjectsResult40{Values: []DetectedObject40{}}
	}
	if f["read"] {
		res.ReadResult = &ReadResult40{Blocks: []ReadBlock40{}}
	}
	if f["people"] {
		res.PeopleResult = &PeopleResult40{Values: []DetectedPerson40{}}
	}
	if f["smartCrops"] {
		ratios := q.ratios
		if ratios == nil {
			// The service picks a ratio between 0.5 and 2.0: the image's own, clamped.
			r := float64(d.width) / float64(d.height)
			ratios = []float64{math.Round(math.Min(2, math.Max(0.5, r))*100) / 100}
		}
		crops := make([]CropRegion, 0, len(ratios))
		for _, r := range ratios {
			crops = append(crops, CropRegion{AspectRatio: r, BoundingBox: smartCrop(d.width, d.height, d.facts, r)})
		}
		res.SmartCropsResult = &SmartCropsResult40{Values: crops}
	}
	return res
}
