package console

import (
	"context"
	"errors"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/tracing"
	"imgpipe/pkg/uploader"
)

func (s *Server) routeTable() []route {
	return []route{
		{Method: "GET", Path: "/", Public: true, handler: s.servePage},
		{Method: "GET", Path: "/healthz", Public: true, handler: s.serveHealth},
		{Method: "GET", Path: "/readyz", Public: true, handler: s.serveReady},
		{Method: "GET", Path: "/api/v1/openapi.yaml", Public: true, handler: serveOpenAPI},
		{Method: "GET", Path: "/api/v1/info", handler: s.serveInfo},
		{Method: "GET", Path: "/api/v1/images", handler: s.serveImages},
		{Method: "GET", Path: "/api/v1/analysis", handler: s.serveAnalysis},
		{Method: "POST", Path: "/api/v1/uploads", handler: s.serveUpload},
		{Method: "POST", Path: "/api/v1/uploads/status", handler: s.serveUploadStatus},
		{Method: "GET", Path: "/api/v1/pipeline", handler: s.servePipeline},
	}
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		s.log.Warn("not ready", zap.Error(err))
		writeError(w, r, &apiError{Status: 503, Code: CodeUnavailable, Message: "the index does not answer"})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready\n"))
}

// Info is what the page needs to know about the console.
type Info struct {
	Bucket         string   `json:"bucket"`
	Prefix         string   `json:"prefix"`
	MaxUploadBytes int64    `json:"maxUploadBytes"`
	UploadTypes    []string `json:"uploadTypes"`
	PresignTTL     int      `json:"presignTtlSeconds"`
	Auth           string   `json:"auth"`
	User           string   `json:"user,omitempty"`
	Version        string   `json:"version"`
}

// Version is the console's version, set at build time like the uploader's.
var Version = "dev"

func (s *Server) serveInfo(w http.ResponseWriter, r *http.Request) {
	who, _ := r.Context().Value(keyUser).(identity)
	writeJSON(w, http.StatusOK, Info{
		Bucket: s.bucket, Prefix: s.o.Prefix, MaxUploadBytes: s.o.MaxUploadBytes, UploadTypes: s.o.UploadTypes,
		PresignTTL: int(s.o.PresignTTL / time.Second), Auth: s.auth.mode, User: who.User, Version: Version,
	})
}

// ImagePage is one page of images, newest analysis first.
type ImagePage struct {
	Images []Image `json:"images"`
	// Next continues the listing (the cursor parameter); absent on the last page.
	Next string `json:"next,omitempty"`
}

func (s *Server) serveImages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tag, aerr := single(q, "tag")
	if aerr == nil {
		aerr = checkTag(tag)
	}
	var limitText, cursor string
	if aerr == nil {
		limitText, aerr = single(q, "limit")
	}
	limit := 0
	if aerr == nil {
		limit, aerr = parseLimit(limitText, DefaultPageSize, MaxPageSize)
	}
	if aerr == nil {
		cursor, aerr = single(q, "cursor")
	}
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	page, err := s.deps.Index.Newest(r.Context(), limit, &indexstore.PageOptions{Tag: strings.TrimSpace(tag), Cursor: cursor})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := ImagePage{Images: make([]Image, 0, len(page.Documents)), Next: page.Next}
	for i := range page.Documents {
		img := imageOf(&page.Documents[i])
		if err := s.withURLs(r.Context(), &img, false); err != nil {
			s.fail(w, r, err)
			return
		}
		out.Images = append(out.Images, img)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) serveAnalysis(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bucket, aerr := single(q, "bucket")
	if aerr == nil {
		aerr = checkBucket(bucket, s.bucket)
	}
	var key string
	if aerr == nil {
		key, aerr = single(q, "key")
	}
	if aerr == nil {
		aerr = checkKey(key)
	}
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	doc, err := s.deps.Index.Get(r.Context(), bucket, key)
	if errors.Is(err, indexstore.ErrNotFound) {
		writeError(w, r, &apiError{Status: 404, Code: CodeNotIndexed, Message: "the index holds no analysis of this object (see /api/v1/uploads/status)"})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	img := imageOf(doc)
	if err := s.withURLs(r.Context(), &img, true); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, img)
}

// UploadRequest asks for a presigned PUT of one file.
type UploadRequest struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	Type string `json:"type"`
}

// Upload is a presigned PUT: the browser sends the file's bytes to URL with exactly these
// headers (its Content-Length is the signed size); S3 refuses anything else.
type Upload struct {
	Key       string            `json:"key"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expiresAt"`
}

func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	var req UploadRequest
	if aerr := decodeJSON(w, r, maxUploadBody, &req); aerr != nil {
		writeError(w, r, aerr)
		return
	}
	if aerr := s.checkUpload(&req); aerr != nil {
		writeError(w, r, aerr)
		return
	}
	// The uploader's collision-free scheme: a new time-ordered ID and the file's base name.
	key := uploader.KeyFor(uploader.KeysUUID, s.o.Prefix, req.Name, "")
	meta := map[string]string{
		uploader.MetaOriginalName: uploader.EncodeName(path.Base(strings.ReplaceAll(req.Name, `\`, "/"))),
		uploader.MetaUploader:     "imgpipe-console/" + Version,
	}
	// With tracing on, the browser's upload starts its image's trace: the span console.upload
	// (the signing), its context in the signed metadata, which the browser must send.
	ctx, span := tracing.Tracer("imgpipe/pkg/console").Start(r.Context(), "console.upload", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("imgpipe.key", key)))
	defer span.End()
	tracing.Inject(ctx, meta)
	expires := s.o.Now().Add(s.o.PresignTTL)
	signed, err := s.presign.PresignPutObject(r.Context(), &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key, ContentType: &req.Type, ContentLength: &req.Size, Metadata: meta,
	}, s3.WithPresignExpires(s.o.PresignTTL))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	up := Upload{Key: key, Method: signed.Method, URL: signed.URL, Headers: map[string]string{}, ExpiresAt: expires.UTC()}
	for name, values := range signed.SignedHeader {
		// The browser sets Host and Content-Length itself (and may not set them).
		if strings.EqualFold(name, "Host") || strings.EqualFold(name, "Content-Length") || len(values) == 0 {
			continue
		}
		up.Headers[name] = values[0]
	}
	s.log.Info("upload signed", zap.String("key", key), zap.Int64("size", req.Size), zap.String("type", req.Type), zap.String("request_id", requestID(r)))
	writeJSON(w, http.StatusCreated, up)
}

// checkUpload enforces the limits the signature will then carry.
func (s *Server) checkUpload(req *UploadRequest) *apiError {
	if aerr := checkName(req.Name); aerr != nil {
		return aerr
	}
	switch {
	case req.Size == 0:
		return badRequest(CodeEmptyFile, "%s is empty", req.Name)
	case req.Size < 0:
		return badRequest(CodeBadRequest, "size %d is negative", req.Size)
	case req.Size > s.o.MaxUploadBytes:
		return &apiError{Status: 413, Code: CodeTooLarge,
			Message: uploader.FormatBytes(req.Size) + " is larger than the largest upload, " + uploader.FormatBytes(s.o.MaxUploadBytes)}
	case !slices.Contains(s.o.UploadTypes, req.Type):
		t := req.Type
		if t == "" {
			t = "(no type)"
		}
		return &apiError{Status: 415, Code: CodeUnsupportedType,
			Message: t + " is not an image type the pipeline analyses (" + strings.Join(s.o.UploadTypes, ", ") + ")"}
	}
	return nil
}

// StatusRequest asks what became of uploads.
type StatusRequest struct {
	Keys []string `json:"keys"`
}

// UploadStatus is what became of one upload.
type UploadStatus struct {
	Key   string `json:"key"`
	State string `json:"state"` // pending, indexed or failed
	InS3  bool   `json:"inS3"`
	// Image is the analysis of an indexed upload.
	Image *Image `json:"image,omitempty"`
	// Failure says why a failed upload was dead-lettered.
	Failure *uploader.FailureInfo `json:"failure,omitempty"`
}

// StatusList answers a StatusRequest, in its order.
type StatusList struct {
	Uploads []UploadStatus `json:"uploads"`
}

func (s *Server) serveUploadStatus(w http.ResponseWriter, r *http.Request) {
	var req StatusRequest
	if aerr := decodeJSON(w, r, maxStatusBody, &req); aerr != nil {
		writeError(w, r, aerr)
		return
	}
	switch {
	case len(req.Keys) == 0:
		writeError(w, r, badRequest(CodeBadRequest, "no keys"))
		return
	case len(req.Keys) > MaxStatusKeys:
		writeError(w, r, badRequest(CodeTooManyKeys, "%d keys: at most %d per request", len(req.Keys), MaxStatusKeys))
		return
	}
	for _, k := range req.Keys {
		if aerr := checkKey(k); aerr != nil {
			writeError(w, r, aerr)
			return
		}
	}
	statuses, err := s.lookup.Status(r.Context(), req.Keys)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := StatusList{Uploads: make([]UploadStatus, 0, len(statuses))}
	for _, st := range statuses {
		us := UploadStatus{Key: st.Key, State: string(st.State), InS3: st.InS3, Failure: st.Failure}
		if st.Document != nil {
			img := imageOf(st.Document)
			if err := s.withURLs(r.Context(), &img, false); err != nil {
				s.fail(w, r, err)
				return
			}
			us.Image = &img
		}
		out.Uploads = append(out.Uploads, us)
	}
	writeJSON(w, http.StatusOK, out)
}
