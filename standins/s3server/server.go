package s3server

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/johannesboyne/gofakes3"
	"go.uber.org/zap"

	"imgpipe/pkg/s3event"

	"imgpipe/internal/s3standin"
)

// Options configures a Server. A nil *Options, and every zero field, means the default.
type Options struct {
	// Region is the awsRegion of event records. Default "us-east-1".
	Region string
	// AccountID is the bucket owner written in event records. Default "000000000000".
	AccountID string
	// SQSEndpoint is the base URL of the SQS service events are sent to, for example
	// "http://127.0.0.1:4566". Without it (and without SQSClient) the stand-in serves S3 but
	// refuses every notification configuration.
	SQSEndpoint string
	// SQSClient, when set, is used instead of a client built for SQSEndpoint. Its own retry
	// settings apply on top of the stand-in's retries.
	SQSClient *sqs.Client
	// Logger receives delivery problems and gofakes3's own log. Default: no logging.
	Logger *zap.Logger
	// QueueCapacity is how many undelivered event messages the stand-in holds before it
	// starts holding S3 writers back. Default 10000.
	QueueCapacity int
	// Credentials maps access key IDs to their secret keys. With it, requests authenticated
	// in the query string (presigned URLs) are verified as S3 verifies them (see presign.go);
	// without it they are served unchecked. Requests signed in the Authorization header are
	// never verified.
	Credentials map[string]string
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Region == "" {
		out.Region = "us-east-1"
	}
	if out.AccountID == "" {
		out.AccountID = "000000000000"
	}
	if out.Logger == nil {
		out.Logger = zap.NewNop()
	}
	if out.QueueCapacity <= 0 {
		out.QueueCapacity = 10000
	}
	return out
}

// Server is an S3 endpoint (gofakes3's protocol layer over the stand-in's own versioned
// in-memory storage, path-style addressing only) that also delivers S3 event notifications to
// SQS queues. It is an http.Handler.
type Server struct {
	opts    Options
	log     *zap.Logger
	backend *store
	fake    http.Handler
	sender  *sender // nil when no SQS is configured

	mu      sync.RWMutex
	configs map[string][]queueConfig // bucket -> its validated queue configurations
	cors    map[string][]corsRule    // bucket -> its CORS rules

	locks     keyLocks
	mp        multipartChecksums
	seqMu     sync.Mutex
	lastSeq   uint64
	requestID atomic.Uint64
	closed    atomic.Bool
}

// New returns a Server with empty in-memory storage. Its delivery goroutine runs until Close.
func New(opts *Options) (*Server, error) {
	o := opts.withDefaults()
	backend := newStore(nil)
	s := &Server{
		opts:    o,
		log:     o.Logger,
		backend: backend,
		fake:    gofakes3.New(backend, gofakes3.WithLogger(zapLogger{o.Logger})).Server(),
		configs: make(map[string][]queueConfig),
		cors:    make(map[string][]corsRule),
	}
	s.locks.m = make(map[string]*keyLock)
	// Request IDs of the stand-in's own answers live in a range gofakes3's counter never reaches.
	s.requestID.Store(1 << 60)
	client := o.SQSClient
	if client == nil && o.SQSEndpoint != "" {
		if _, err := url.Parse(o.SQSEndpoint); err != nil {
			return nil, fmt.Errorf("sqs endpoint %q: %w", o.SQSEndpoint, err)
		}
		client = sqs.New(sqs.Options{
			Region:       o.Region,
			BaseEndpoint: aws.String(o.SQSEndpoint),
			Credentials:  credentials.NewStaticCredentialsProvider("s3standin", "s3standin", ""),
			// The sender retries every failed message itself, with backoff, until Close.
			Retryer: aws.NopRetryer{},
		})
	}
	if client != nil {
		s.sender = newSender(client, o.Logger, o.QueueCapacity)
	}
	return s, nil
}

// Flush waits until every event message enqueued before the call has been delivered to SQS
// (or dropped, which makes it return an error), or until ctx ends.
func (s *Server) Flush(ctx context.Context) error {
	if s.sender == nil {
		return nil
	}
	return s.sender.flush(ctx)
}

// Close makes the Server refuse further object writes (503) and notification configurations,
// delivers pending event messages until ctx ends, and stops the delivery goroutine. It
// returns an error when messages were left undelivered. Calling it again returns the same
// result.
func (s *Server) Close(ctx context.Context) error {
	s.closed.Store(true)
	if s.sender == nil {
		return nil
	}
	return s.sender.close(ctx)
}

// Stats returns the notification counters.
func (s *Server) Stats() Stats {
	if s.sender == nil {
		return Stats{}
	}
	return Stats{
		Enqueued:       s.sender.enqueued.Load(),
		Sent:           s.sender.sent.Load(),
		TestEvents:     s.sender.testEvents.Load(),
		FailedAttempts: s.sender.failedAttempts.Load(),
		Dropped:        s.sender.dropped.Load(),
		Pending:        s.sender.pending(),
	}
}

// op is the kind of request, as far as notifications care.
type op int

const (
	opOther         op = iota // served by gofakes3 alone
	opPut                     // PUT /bucket/key
	opCopy                    // PUT /bucket/key with x-amz-copy-source
	opPost                    // POST /bucket (browser form upload)
	opComplete                // POST /bucket/key?uploadId=...
	opDelete                  // DELETE /bucket/key
	opDeleteVersion           // DELETE /bucket/key?versionId=...
	opMultiDelete             // POST /bucket?delete
	opDeleteBucket            // DELETE /bucket
)

var createdEventName = map[op]string{
	opPut:      "ObjectCreated:Put",
	opCopy:     "ObjectCreated:Copy",
	opPost:     "ObjectCreated:Post",
	opComplete: "ObjectCreated:CompleteMultipartUpload",
}

// classify mirrors gofakes3's router (routing.go) so that the stand-in sees each request as
// gofakes3 will serve it.
func classify(r *http.Request, bucket, object string, q url.Values) op {
	switch {
	case q.Get("uploadId") != "":
		if r.Method == http.MethodPost && object != "" {
			return opComplete
		}
	case q.Has("uploads"), q.Has("versioning"), q.Has("versions"):
	case q.Get("versionId") != "":
		if r.Method == http.MethodDelete {
			return opDeleteVersion
		}
	case bucket != "" && object != "":
		switch r.Method {
		case http.MethodPut:
			if r.Header.Get("X-Amz-Copy-Source") != "" {
				return opCopy
			}
			return opPut
		case http.MethodDelete:
			return opDelete
		}
	case bucket != "":
		switch r.Method {
		case http.MethodPost:
			if q.Has("delete") {
				return opMultiDelete
			}
			return opPost
		case http.MethodDelete:
			return opDeleteBucket
		}
	}
	return opOther
}

// routeVersion prepares a request naming a version (?versionId=) for gofakes3, or answers it
// itself; it reports whether the request still has to be served. gofakes3 reads
// ?versionId=null as "no version" and acts on the current version instead of the null one,
// so "null" is passed on as an alias the storage resolves. A GET or HEAD of a version that is
// a delete marker is answered here as S3 does (405 with x-amz-delete-marker), and a HEAD of a
// version is served as a GET without body (gofakes3's HEAD ignores the version).
func (s *Server) routeVersion(w http.ResponseWriter, r *http.Request, bucket, object string) (*http.Request, bool) {
	q := r.URL.Query()
	id := q.Get("versionId")
	if id == "" || object == "" || q.Has("uploadId") || q.Has("uploads") {
		return r, true
	}
	if id == nullVersion {
		q.Set("versionId", nullVersionAlias)
		r = r.Clone(r.Context())
		r.URL.RawQuery = q.Encode()
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return r, true
	}
	if s.backend.isDeleteMarker(bucket, object, gofakes3.VersionID(q.Get("versionId"))) {
		w.Header().Set("x-amz-delete-marker", "true")
		w.Header().Set("x-amz-version-id", id)
		s.writeError(w, r, &argError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed",
			Message: "The specified method is not allowed against this resource."})
		return nil, false
	}
	if r.Method == http.MethodHead {
		// The server discards the body of an answer to a HEAD request.
		r = r.Clone(r.Context())
		r.Method = http.MethodGet
	}
	return r, true
}

// ServeHTTP serves the S3 API (path-style: /bucket/key).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_standin/") {
		s.serveAdmin(w, r)
		return
	}
	bucket, object, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	if isPreflight(r) {
		s.servePreflight(w, r, bucket)
		return
	}
	w = s.withCORS(w, r, bucket)
	if err := s.verifyPresigned(r, time.Now()); err != nil {
		s.writeError(w, r, err)
		return
	}
	if bucket != "" && object == "" && q.Has("cors") {
		s.serveCORSConfig(w, r, bucket)
		return
	}
	if bucket != "" && object == "" && q.Has("notification") {
		s.serveNotification(w, r, bucket)
		return
	}
	if bucket != "" && object == "" && q.Has("lifecycle") {
		s.serveLifecycle(w, r, bucket)
		return
	}
	if bucket != "" && object == "" && q.Has("uploads") && r.Method == http.MethodGet {
		s.serveListUploads(w, r, bucket)
		return
	}
	r, ok := s.routeVersion(w, r, bucket, object)
	if !ok {
		return
	}
	if object != "" {
		switch {
		case r.Method == http.MethodPut && q.Get("uploadId") != "" && q.Has("partNumber") && r.Header.Get("X-Amz-Copy-Source") == "":
			s.servePart(w, r)
			return
		case r.Method == http.MethodPost && q.Has("uploads"):
			s.serveCreateMultipart(w, r)
			return
		case r.Method == http.MethodDelete && q.Get("uploadId") != "":
			s.serveAbort(w, r)
			return
		}
	}
	o := classify(r, bucket, object, q)
	if o == opOther {
		if r.Method == http.MethodGet && r.Header.Get("Range") != "" {
			// gofakes3 sends the whole object's stored checksum with a partial body, which
			// makes the SDK's response validation fail; S3 sends no full-object checksum on a
			// ranged GET.
			w = &rangeChecksumFilter{ResponseWriter: w}
		}
		s.fake.ServeHTTP(w, r)
		return
	}
	if s.closed.Load() {
		s.writeError(w, r, &argError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
			Message: "s3standin is closed: writes are refused so that none happens without its event"})
		return
	}
	s.serveWrite(w, r, o, bucket, object)
}

// deleteRequestXML is the body of DeleteObjects.
type deleteRequestXML struct {
	Objects []struct {
		Key       string `xml:"Key"`
		VersionID string `xml:"VersionId"`
	} `xml:"Object"`
}

// deleteResultXML is the part of DeleteObjects' answer the stand-in reads: which keys failed.
type deleteResultXML struct {
	Errors []struct {
		Key       string `xml:"Key"`
		VersionID string `xml:"VersionId"`
	} `xml:"Error"`
}

const (
	maxMultiDeleteBody = 4 << 20
	postFormMemory     = 24 << 20 // what gofakes3 uses for browser uploads
)

// serveWrite serves a request that may cause events. The object keys it touches are locked
// for its duration, so that events on one key get sequencers in the order of the writes and
// the object's size and ETag read after the write are the write's own. The answer is held
// back until the events are enqueued: once a client sees success, Flush covers its events.
func (s *Server) serveWrite(w http.ResponseWriter, r *http.Request, o op, bucket, object string) {
	var keys []string
	var del deleteRequestXML
	switch o {
	case opPut:
		// Verified before the key is locked: reading a large body takes time.
		if _, err := checkedBody(r); err != nil {
			s.writeError(w, r, err)
			return
		}
	case opComplete:
		if err := s.checkComplete(r); err != nil {
			s.writeError(w, r, err)
			return
		}
	case opPost:
		// Parse the form here to learn the key; gofakes3 then reuses the parsed form.
		if err := r.ParseMultipartForm(postFormMemory); err == nil {
			if v := r.MultipartForm.Value["key"]; len(v) == 1 {
				object = v[0]
			}
		}
	case opMultiDelete:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxMultiDeleteBody))
		r.Body.Close()
		if err != nil {
			s.writeError(w, r, &argError{Status: 400, Code: "IncompleteBody", Message: "read body: " + err.Error()})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if xml.Unmarshal(body, &del) == nil {
			for _, obj := range del.Objects {
				keys = append(keys, obj.Key)
			}
		}
	}
	if object != "" && o != opDeleteBucket {
		keys = append(keys, object)
	}
	unlock := s.locks.lock(bucket, keys)
	defer unlock()

	rec := &recorder{header: w.Header(), status: http.StatusOK}
	s.fake.ServeHTTP(rec, r)
	if rec.status >= 200 && rec.status < 300 {
		switch o {
		case opPut:
			// S3 answers with the checksum it verified.
			if algo, v, _ := headerChecksum(r.Header, false); algo != nil {
				rec.header.Set(algo.header(), v)
			}
		case opComplete:
			s.mp.forget(r.URL.Query().Get("uploadId"))
		}
		s.afterWrite(r, rec, o, bucket, object, &del)
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

// afterWrite turns a successful write into events.
func (s *Server) afterWrite(r *http.Request, rec *recorder, o op, bucket, object string, del *deleteRequestXML) {
	if o == opDeleteBucket {
		s.mu.Lock()
		delete(s.configs, bucket)
		delete(s.cors, bucket)
		s.mu.Unlock()
		return
	}
	configs := s.configsOf(bucket)
	if len(configs) == 0 || s.sender == nil {
		return
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	principal, ip := principalOf(r), sourceIP(r)
	event := func(name, key string) s3event.Record {
		rc := s3event.NewRecord(name, bucket, key, now)
		rc.Region = s.opts.Region
		rc.BucketOwner = s.opts.AccountID
		rc.PrincipalID = principal
		rc.SourceIP = ip
		rc.RequestID = rec.header.Get("x-amz-request-id")
		rc.HostID = rec.header.Get("x-amz-id-2")
		return rc
	}

	switch o {
	case opPut, opCopy, opPost, opComplete:
		if object == "" {
			return
		}
		rc := event(createdEventName[o], object)
		s.describeObject(&rc, o, rec)
		s.emit(configs, &rc)
	case opDelete, opDeleteVersion:
		var rc s3event.Record
		switch {
		case o == opDeleteVersion:
			rc = event("ObjectRemoved:Delete", object)
			rc.VersionID = resolveVersion(gofakes3.VersionID(r.URL.Query().Get("versionId")))
		case rec.header.Get("x-amz-delete-marker") == "true":
			rc = event("ObjectRemoved:DeleteMarkerCreated", object)
			rc.VersionID = rec.header.Get("x-amz-version-id")
		default:
			rc = event("ObjectRemoved:Delete", object)
		}
		s.emit(configs, &rc)
	case opMultiDelete:
		var res deleteResultXML
		_ = xml.Unmarshal(rec.body.Bytes(), &res)
		failed := make(map[[2]string]bool, len(res.Errors))
		for _, e := range res.Errors {
			failed[[2]string{e.Key, e.VersionID}] = true
		}
		versioned := s.backend.versioning(bucket) != gofakes3.VersioningNone
		seen := make(map[[2]string]bool, len(del.Objects))
		for _, obj := range del.Objects {
			id := [2]string{obj.Key, obj.VersionID}
			if failed[id] || seen[id] || obj.Key == "" {
				continue
			}
			seen[id] = true
			var rc s3event.Record
			switch {
			case obj.VersionID != "":
				rc = event("ObjectRemoved:Delete", obj.Key)
				rc.VersionID = obj.VersionID
			case versioned:
				rc = event("ObjectRemoved:DeleteMarkerCreated", obj.Key)
				rc.VersionID = s.backend.latestDeleteMarker(bucket, obj.Key)
			default:
				rc = event("ObjectRemoved:Delete", obj.Key)
			}
			s.emit(configs, &rc)
		}
	}
}

// describeObject fills size, ETag and version ID of a created object. The key is locked, so
// the object read back is the one just written.
func (s *Server) describeObject(rc *s3event.Record, o op, rec *recorder) {
	if size, etag, version, ok := s.backend.currentInfo(rc.Bucket, rc.Key); ok {
		rc.Size, rc.ETag, rc.VersionID = size, etag, version
	} else {
		s.log.Error("read back written object: not found", zap.String("bucket", rc.Bucket), zap.String("key", rc.Key))
	}
	if o == opComplete {
		// A multipart upload's ETag ("md5-of-md5s-N") is only in the answer; the backend
		// stores the MD5 of the whole body.
		var res struct {
			ETag string `xml:"ETag"`
		}
		if xml.Unmarshal(rec.body.Bytes(), &res) == nil && res.ETag != "" {
			rc.ETag = res.ETag
		}
	}
	rc.ETag = strings.Trim(rc.ETag, `"`)
}

// emit gives rc a sequencer and enqueues one message per configuration that selects it.
func (s *Server) emit(configs []queueConfig, rc *s3event.Record) {
	var seq string
	for i := range configs {
		c := &configs[i]
		if !c.matches(rc.EventName, rc.Key) {
			continue
		}
		if seq == "" {
			seq = s.nextSequencer()
		}
		r := *rc
		r.Sequencer = seq
		r.ConfigurationID = c.ID
		body, err := s3event.MarshalEvent([]s3event.Record{r})
		if err != nil {
			s.sender.dropped.Add(1)
			s.log.Error("notification dropped: encode event", zap.String("bucket", r.Bucket),
				zap.String("key", r.Key), zap.Error(err))
			continue
		}
		if err := s.sender.enqueue(c.QueueARN, body); err != nil {
			s.sender.dropped.Add(1)
			s.log.Error("notification dropped", zap.String("bucket", r.Bucket), zap.String("key", r.Key),
				zap.String("event", r.EventName), zap.Error(err))
		}
	}
}

// nextSequencer returns a sequencer greater than every one before it. It follows the clock
// (nanoseconds) so that a restarted stand-in keeps producing newer sequencers than the
// events an index saw before the restart.
func (s *Server) nextSequencer() string {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	n := max(s.lastSeq+1, uint64(time.Now().UnixNano()))
	s.lastSeq = n
	return s3event.FormatSequencer(n)
}

func (s *Server) configsOf(bucket string) []queueConfig {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.configs[bucket]
}

// serveListUploads serves ListMultipartUploads. gofakes3 answers 404 NoSuchUpload for a bucket
// that never had an upload; S3 answers an empty list.
func (s *Server) serveListUploads(w http.ResponseWriter, r *http.Request, bucket string) {
	rec := &recorder{header: w.Header(), status: http.StatusOK}
	s.fake.ServeHTTP(rec, r)
	if rec.status == http.StatusNotFound && bytes.Contains(rec.body.Bytes(), []byte("NoSuchUpload")) {
		if !s.bucketExists(w, r, bucket) {
			return
		}
		q := r.URL.Query()
		body, err := xml.Marshal(gofakes3.ListMultipartUploadsResult{Bucket: bucket, Prefix: q.Get("prefix"),
			Delimiter: q.Get("delimiter"), MaxUploads: 1000})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write(append([]byte(xml.Header), body...))
		return
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

// bucketExists answers 404 NoSuchBucket, as S3 does, when bucket does not exist.
func (s *Server) bucketExists(w http.ResponseWriter, r *http.Request, bucket string) bool {
	if ok, _ := s.backend.BucketExists(bucket); !ok {
		s.writeError(w, r, &argError{Status: http.StatusNotFound, Code: "NoSuchBucket",
			Message: "The specified bucket does not exist", ArgumentName: "BucketName", ArgumentValue: bucket})
		return false
	}
	return true
}

// configBody reads the body of a bucket configuration request (at most 1 MiB).
func (s *Server) configBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		s.writeError(w, r, &argError{Status: 400, Code: "IncompleteBody", Message: "read body: " + err.Error()})
		return nil, false
	}
	return body, true
}

// serveNotification serves GET and PUT /bucket?notification.
func (s *Server) serveNotification(w http.ResponseWriter, r *http.Request, bucket string) {
	if !s.bucketExists(w, r, bucket) {
		return
	}
	switch r.Method {
	case http.MethodGet:
		body, err := marshalNotification(s.configsOf(bucket))
		if err != nil {
			s.writeError(w, r, &argError{Status: 500, Code: "InternalError", Message: err.Error()})
			return
		}
		s.setRequestHeaders(w)
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write(body)
	case http.MethodPut:
		if s.closed.Load() {
			s.writeError(w, r, &argError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
				Message: "s3standin is closed"})
			return
		}
		body, ok := s.configBody(w, r)
		if !ok {
			return
		}
		configs, err := parseNotification(body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		skip := strings.EqualFold(r.Header.Get("X-Amz-Skip-Destination-Validation"), "true")
		if err := s.validateDestinations(r.Context(), bucket, configs, skip); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.mu.Lock()
		if len(configs) == 0 {
			delete(s.configs, bucket)
		} else {
			s.configs[bucket] = configs
		}
		s.mu.Unlock()
		s.setRequestHeaders(w)
		w.WriteHeader(http.StatusOK)
	default:
		s.writeError(w, r, &argError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed",
			Message: "The specified method is not allowed against this resource."})
	}
}

// validateDestinations checks each destination queue as S3 does: by sending it an
// s3:TestEvent. With skip (x-amz-skip-destination-validation) only the ARNs' form is checked
// and no test event is sent.
func (s *Server) validateDestinations(ctx context.Context, bucket string, configs []queueConfig, skip bool) error {
	var arns []string
	for _, c := range configs {
		if !slices.Contains(arns, c.QueueARN) {
			arns = append(arns, c.QueueARN)
		}
	}
	for _, arn := range arns {
		if _, ok := parseQueueARN(arn); !ok {
			return destinationError(arn, "Invalid ARN: expected arn:aws:sqs:REGION:ACCOUNT:QUEUE")
		}
	}
	if len(arns) == 0 {
		return nil
	}
	if s.sender == nil {
		return destinationError(arns[0], "s3standin has no SQS endpoint configured (Options.SQSEndpoint or Options.SQSClient)")
	}
	if skip {
		return nil
	}
	body, err := s3event.MarshalTestEvent(bucket, time.Now().UTC().Truncate(time.Millisecond))
	if err != nil {
		return &argError{Status: 500, Code: "InternalError", Message: err.Error()}
	}
	for _, arn := range arns {
		if err := s.sender.sendNow(ctx, arn, body); err != nil {
			reason := "Permissions on the destination queue do not allow S3 to publish notifications from this bucket"
			if isMissingQueue(err) {
				reason = "The destination queue does not exist"
			}
			s.log.Warn("notification destination rejected", zap.String("bucket", bucket),
				zap.String("queue_arn", arn), zap.Error(err))
			return destinationError(arn, reason+": "+err.Error())
		}
	}
	return nil
}

// destinationError is S3's answer for a destination it cannot validate. S3 puts the details in
// ArgumentName1/ArgumentValue1, which SDK errors do not show; the stand-in also appends them
// to the message so that they reach the developer.
func destinationError(arn, reason string) *argError {
	const msg = "Unable to validate the following destination configurations"
	return invalidArgument(msg+" ("+arn+": "+reason+")", arn, reason)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *argError
	if !errors.As(err, &ae) {
		ae = &argError{Status: 500, Code: "InternalError", Message: err.Error()}
	}
	id, host := s.setRequestHeaders(w)
	s3standin.ErrorDocument{Code: ae.Code, Message: ae.Message, ArgumentName: ae.ArgumentName,
		ArgumentValue: ae.ArgumentValue, RequestID: id, HostID: host}.Write(w, r, ae.Status)
}

// setRequestHeaders sets x-amz-request-id and x-amz-id-2 as gofakes3 does for its answers.
func (s *Server) setRequestHeaders(w http.ResponseWriter) (id, host string) {
	id = fmt.Sprintf("%016X", s.requestID.Add(1))
	host = fmt.Sprintf("%x", []byte(id+id))
	w.Header().Set("x-amz-request-id", id)
	w.Header().Set("x-amz-id-2", host)
	w.Header().Set("Server", "AmazonS3")
	return id, host
}

// sourceIP is requestParameters.sourceIPAddress: the client's address.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// principalOf returns "AWS:<access key id>" from a SigV4 Authorization header (or a
// presigned URL), the closest the stand-in gets to userIdentity.principalId.
func principalOf(r *http.Request) string {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if auth := r.Header.Get("Authorization"); auth != "" {
		if _, after, ok := strings.Cut(auth, "Credential="); ok {
			cred, _, _ = strings.Cut(after, ",")
		}
	}
	if akid, _, ok := strings.Cut(cred, "/"); ok && akid != "" {
		return "AWS:" + akid
	}
	return ""
}

// recorder holds a write's answer until its events are enqueued.
type recorder struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = status, true
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	return r.body.Write(p)
}

// keyLocks serialises writes per bucket and key.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks every key of bucket in keys (deduplicated, in sorted order so that two
// multi-key requests never deadlock) and returns the function that unlocks them.
func (k *keyLocks) lock(bucket string, keys []string) func() {
	names := make([]string, 0, len(keys))
	for _, key := range keys {
		names = append(names, bucket+"\x00"+key)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	held := make([]*keyLock, 0, len(names))
	for _, n := range names {
		k.mu.Lock()
		l := k.m[n]
		if l == nil {
			l = &keyLock{}
			k.m[n] = l
		}
		l.refs++
		k.mu.Unlock()
		l.mu.Lock()
		held = append(held, l)
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].mu.Unlock()
			k.mu.Lock()
			held[i].refs--
			if held[i].refs == 0 {
				delete(k.m, names[i])
			}
			k.mu.Unlock()
		}
	}
}

// zapLogger adapts zap to gofakes3's Logger.
type zapLogger struct{ log *zap.Logger }

func (z zapLogger) Print(level gofakes3.LogLevel, v ...any) {
	msg := strings.TrimSuffix(fmt.Sprintln(v...), "\n")
	switch level {
	case gofakes3.LogErr:
		z.log.Error(msg, zap.String("source", "gofakes3"))
	case gofakes3.LogWarn:
		z.log.Warn(msg, zap.String("source", "gofakes3"))
	default:
		z.log.Debug(msg, zap.String("source", "gofakes3"))
	}
}

// rangeChecksumFilter drops x-amz-checksum-* headers from a partial (206) response.
type rangeChecksumFilter struct {
	http.ResponseWriter
}

func (f *rangeChecksumFilter) WriteHeader(code int) {
	if code == http.StatusPartialContent {
		for name := range f.Header() {
			if strings.HasPrefix(strings.ToLower(name), "x-amz-checksum-") {
				f.Header().Del(name)
			}
		}
	}
	f.ResponseWriter.WriteHeader(code)
}

func (f *rangeChecksumFilter) Write(b []byte) (int, error) {
	// A handler that writes without WriteHeader sends 200: nothing to filter.
	return f.ResponseWriter.Write(b)
}
