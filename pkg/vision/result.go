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
}
