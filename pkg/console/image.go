package console

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/record"
)

// Image is what the API says about one indexed object: the index's record, a name to show,
// and short-lived presigned URLs for the browser to fetch the pixels from S3 itself.
//
// The fields after Caption are optional: the record does not carry them yet (schema version 1
// has no thumbnail, EXIF or extra Vision features). The page shows each one when present and
// a placeholder thumbnail or nothing otherwise.
type Image struct {
	Bucket            string       `json:"bucket"`
	Key               string       `json:"key"`
	Name              string       `json:"name"`
	Size              int64        `json:"size"`
	ContentType       string       `json:"contentType,omitempty"`
	Format            string       `json:"format,omitempty"`
	Width             int          `json:"width"`
	Height            int          `json:"height"`
	Tags              []record.Tag `json:"tags"`
	Caption           string       `json:"caption,omitempty"`
	CaptionConfidence float64      `json:"captionConfidence,omitempty"`
	ModelVersion      string       `json:"modelVersion,omitempty"`
	APIVersion        string       `json:"apiVersion,omitempty"`
	SchemaVersion     int          `json:"schemaVersion"`
	EventTime         time.Time    `json:"eventTime"`
	AnalyzedAt        time.Time    `json:"analyzedAt,omitzero"`
	IndexedAt         time.Time    `json:"indexedAt"`
	// ImageURL is a presigned GET of the object itself (the detail view only).
	ImageURL string `json:"imageUrl,omitempty"`

	ThumbnailKey  string         `json:"thumbnailKey,omitempty"`
	ThumbnailURL  string         `json:"thumbnailUrl,omitempty"`
	EXIF          *EXIF          `json:"exif,omitempty"`
	Objects       []Object       `json:"objects,omitempty"`
	Text          []TextLine     `json:"text,omitempty"`
	People        []Person       `json:"people,omitempty"`
	DenseCaptions []DenseCaption `json:"denseCaptions,omitempty"`
}

// EXIF is the image's own metadata.
type EXIF struct {
	Make        string `json:"make,omitempty"`
	Model       string `json:"model,omitempty"`
	TakenAt     string `json:"takenAt,omitempty"`
	Orientation int    `json:"orientation,omitempty"`
	GPS         *GPS   `json:"gps,omitempty"`
}

// GPS is a position in decimal degrees.
type GPS struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
}

// Box is a rectangle in pixels of the image.
type Box struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// Object is one detected object.
type Object struct {
	Name       string  `json:"name"`
	Confidence float64 `json:"confidence"`
	Box        Box     `json:"box"`
}

// TextLine is one line of text read in the image.
type TextLine struct {
	Text string `json:"text"`
	Box  *Box   `json:"box,omitempty"`
}

// Person is one detected person.
type Person struct {
	Confidence float64 `json:"confidence"`
	Box        Box     `json:"box"`
}

// DenseCaption describes one region of the image.
type DenseCaption struct {
	Text       string  `json:"text"`
	Confidence float64 `json:"confidence"`
	Box        Box     `json:"box"`
}

// imageOf turns an index document into the API's Image, without URLs. This is the one place
// that maps the record's fields: a richer record adds its fields here.
func imageOf(d *indexstore.Document) Image {
	tags := d.Tags
	if tags == nil {
		tags = []record.Tag{}
	}
	return Image{
		Bucket: d.Bucket, Key: d.Key, Name: path.Base(d.Key), Size: d.Size, ContentType: d.ContentType, Format: d.Format,
		Width: d.Width, Height: d.Height, Tags: tags, Caption: d.Caption, CaptionConfidence: d.CaptionConfidence,
		ModelVersion: d.ModelVersion, APIVersion: d.APIVersion, SchemaVersion: d.SchemaVersion,
		EventTime: d.EventTime, AnalyzedAt: d.AnalyzedAt, IndexedAt: d.IndexedAt,
	}
}

// withURLs adds the presigned URLs of img (the thumbnail's when it has one, the object's
// itself with full). Objects of other buckets than the console's get none.
func (s *Server) withURLs(ctx context.Context, img *Image, full bool) error {
	if img.Bucket != s.bucket {
		return nil
	}
	if img.ThumbnailKey != "" {
		u, err := s.presignGet(ctx, img.ThumbnailKey)
		if err != nil {
			return err
		}
		img.ThumbnailURL = u
	}
	if full {
		u, err := s.presignGet(ctx, img.Key)
		if err != nil {
			return err
		}
		img.ImageURL = u
	}
	return nil
}

func (s *Server) presignGet(ctx context.Context, key string) (string, error) {
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}, s3.WithPresignExpires(s.o.PresignTTL))
	if err != nil {
		return "", fmt.Errorf("presign GET %s: %w", key, err)
	}
	return req.URL, nil
}
