package vision

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
)

// Result is one image's analysis, the same shape whichever API version produced it.
// Only the requested features are filled in.
type Result struct {
	// APIVersion is the API version that answered: "2024-02-01", "2023-10-01" or "v3.2".
	APIVersion string
	// Features are the features that were requested.
	Features []Feature
	// ModelVersion is the model that produced the analysis.
	ModelVersion string
	// RequestID is the service's request id (apim-request-id), for support cases.
	RequestID string
	// Width and Height are the image's dimensions in pixels.
	Width, Height int
	// Tags are content tags, highest confidence first.
	Tags []Tag
	// Caption is a one-sentence description; empty when not requested or none came back.
	Caption           string
	CaptionConfidence float64
	// DenseCaptions describe regions of the image (4.0 only), highest confidence first.
	DenseCaptions []Region
	// Objects are detected objects, highest confidence first.
	Objects []Region
	// Text is the text read in the image (4.0 only), line by line in reading order.
	Text []TextLine
	// People are detected people (4.0 only), highest confidence first; Region.Text is empty.
	People []Region
	// SmartCrops are the suggested crops (4.0 only), one per requested aspect ratio.
	SmartCrops []Crop
	// Color is the colour scheme (v3.2 only); nil when not requested.
	Color *Color
}

// Tag is a content tag.
type Tag struct {
	Name       string
	Confidence float64
}

// Region is a captioned or named part of the image.
type Region struct {
	// Text is the dense caption or the object's name.
	Text       string
	Confidence float64
	Box        Box
}

// TextLine is one line of text and the rectangle around its bounding polygon.
type TextLine struct {
	Text string
	Box  Box
}

// Crop is a suggested crop at an aspect ratio (width / height).
type Crop struct {
	AspectRatio float64
	Box         Box
}

// Box is a bounding box in pixels.
type Box struct {
	X, Y, W, H int
}

// Color is v3.2's colour analysis.
type Color struct {
	Dominant      []string // dominant colour names
	Foreground    string
	Background    string
	Accent        string // hex RGB without '#'
	BlackAndWhite bool
}

// ---- Image Analysis 4.0 ----

type box40 struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

type named40 struct {
	Name       string  `json:"name"`
	Confidence float64 `json:"confidence"`
}

type response40 struct {
	ModelVersion string `json:"modelVersion"`
	Metadata     struct {
		Width  int `json:"width"`
		Height int `json:"height"`
	} `json:"metadata"`
	TagsResult *struct {
		Values []named40 `json:"values"`
	} `json:"tagsResult"`
	CaptionResult *struct {
		Text       string  `json:"text"`
		Confidence float64 `json:"confidence"`
	} `json:"captionResult"`
	DenseCaptionsResult *struct {
		Values []struct {
			Text        string  `json:"text"`
			Confidence  float64 `json:"confidence"`
			BoundingBox box40   `json:"boundingBox"`
		} `json:"values"`
	} `json:"denseCaptionsResult"`
	ObjectsResult *struct {
		Values []struct {
			BoundingBox box40     `json:"boundingBox"`
			Tags        []named40 `json:"tags"`
		} `json:"values"`
	} `json:"objectsResult"`
	ReadResult *struct {
		Blocks []struct {
			Lines []struct {
				Text            string    `json:"text"`
				BoundingPolygon []point40 `json:"boundingPolygon"`
			} `json:"lines"`
		} `json:"blocks"`
	} `json:"readResult"`
	PeopleResult *struct {
		Values []struct {
			BoundingBox box40   `json:"boundingBox"`
			Confidence  float64 `json:"confidence"`
		} `json:"values"`
	} `json:"peopleResult"`
	SmartCropsResult *struct {
		Values []struct {
			AspectRatio float64 `json:"aspectRatio"`
			BoundingBox box40   `json:"boundingBox"`
		} `json:"values"`
	} `json:"smartCropsResult"`
}

type point40 struct {
	X int `json:"x"`
	Y int `json:"y"`
}

// boxAround returns the smallest rectangle holding every point; the zero Box for none.
func boxAround(ps []point40) Box {
	if len(ps) == 0 {
		return Box{}
	}
	x0, y0, x1, y1 := ps[0].X, ps[0].Y, ps[0].X, ps[0].Y
	for _, p := range ps[1:] {
		x0, y0, x1, y1 = min(x0, p.X), min(y0, p.Y), max(x1, p.X), max(y1, p.Y)
	}
	return Box{X: x0, Y: y0, W: x1 - x0, H: y1 - y0}
}

func decode40(body []byte) (*Result, error) {
	var r response40
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decode 4.0 response: %w", err)
	}
	res := &Result{ModelVersion: r.ModelVersion, Width: r.Metadata.Width, Height: r.Metadata.Height}
	if r.TagsResult != nil {
		for _, t := range r.TagsResult.Values {
			res.Tags = append(res.Tags, Tag(t))
		}
	}
	if r.CaptionResult != nil {
		res.Caption, res.CaptionConfidence = r.CaptionResult.Text, r.CaptionResult.Confidence
	}
	if r.DenseCaptionsResult != nil {
		for _, c := range r.DenseCaptionsResult.Values {
			res.DenseCaptions = append(res.DenseCaptions, Region{Text: c.Text, Confidence: c.Confidence, Box: Box(c.BoundingBox)})
		}
	}
	if r.ObjectsResult != nil {
		for _, o := range r.ObjectsResult.Values {
			reg := Region{Box: Box(o.BoundingBox)}
			// An object carries candidate names; the most confident one names it.
			for _, t := range o.Tags {
				if reg.Text == "" || t.Confidence > reg.Confidence {
					reg.Text, reg.Confidence = t.Name, t.Confidence
				}
			}
			res.Objects = append(res.Objects, reg)
		}
	}
	if r.ReadResult != nil {
		res.Text = []TextLine{}
		for _, b := range r.ReadResult.Blocks {
			for _, l := range b.Lines {
				res.Text = append(res.Text, TextLine{Text: l.Text, Box: boxAround(l.BoundingPolygon)})
			}
		}
	}
	if r.PeopleResult != nil {
		res.People = []Region{}
		for _, p := range r.PeopleResult.Values {
			res.People = append(res.People, Region{Confidence: p.Confidence, Box: Box(p.BoundingBox)})
		}
	}
	if r.SmartCropsResult != nil {
		res.SmartCrops = []Crop{}
		for _, c := range r.SmartCropsResult.Values {
			res.SmartCrops = append(res.SmartCrops, Crop{AspectRatio: c.AspectRatio, Box: Box(c.BoundingBox)})
		}
	}
	res.sort()
	return res, nil
}

// ---- v3.2 ----

type response32 struct {
	RequestID    string `json:"requestId"`
	ModelVersion string `json:"modelVersion"`
	Metadata     struct {
		Width  int `json:"width"`
		Height int `json:"height"`
	} `json:"metadata"`
	Tags []struct {
		Name       string  `json:"name"`
		Confidence float64 `json:"confidence"`
	} `json:"tags"`
	Description *struct {
		Captions []struct {
			Text       string  `json:"text"`
			Confidence float64 `json:"confidence"`
		} `json:"captions"`
	} `json:"description"`
	Objects []struct {
		Rectangle  box40   `json:"rectangle"`
		Object     string  `json:"object"`
		Confidence float64 `json:"confidence"`
	} `json:"objects"`
	Color *struct {
		DominantColorForeground string   `json:"dominantColorForeground"`
		DominantColorBackground string   `json:"dominantColorBackground"`
		DominantColors          []string `json:"dominantColors"`
		AccentColor             string   `json:"accentColor"`
		IsBWImg                 bool     `json:"isBWImg"`
		IsBwImg                 bool     `json:"isBwImg"`
	} `json:"color"`
}

func decode32(body []byte) (*Result, error) {
	var r response32
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decode v3.2 response: %w", err)
	}
	res := &Result{RequestID: r.RequestID, ModelVersion: r.ModelVersion, Width: r.Metadata.Width, Height: r.Metadata.Height}
	for _, t := range r.Tags {
		res.Tags = append(res.Tags, Tag{Name: t.Name, Confidence: t.Confidence})
	}
	if r.Description != nil {
		for _, c := range r.Description.Captions {
			if res.Caption == "" || c.Confidence > res.CaptionConfidence {
				res.Caption, res.CaptionConfidence = c.Text, c.Confidence
			}
		}
	}
	for _, o := range r.Objects {
		res.Objects = append(res.Objects, Region{Text: o.Object, Confidence: o.Confidence, Box: Box(o.Rectangle)})
	}
	if c := r.Color; c != nil {
		res.Color = &Color{
			Dominant:      c.DominantColors,
			Foreground:    c.DominantColorForeground,
			Background:    c.DominantColorBackground,
			Accent:        c.AccentColor,
			BlackAndWhite: c.IsBWImg || c.IsBwImg,
		}
	}
	res.sort()
	return res, nil
}

// sort orders every list by confidence, highest first, keeping the service's order on ties.
func (r *Result) sort() {
	slices.SortStableFunc(r.Tags, func(a, b Tag) int { return cmp.Compare(b.Confidence, a.Confidence) })
	byConf := func(a, b Region) int { return cmp.Compare(b.Confidence, a.Confidence) }
	slices.SortStableFunc(r.DenseCaptions, byConf)
	slices.SortStableFunc(r.Objects, byConf)
	slices.SortStableFunc(r.People, byConf)
}
