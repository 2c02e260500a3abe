// Package console is the pipeline's web console: a JSON HTTP API (one object's analysis,
// images newest first and by tag with cursors, the status of uploads, the pipeline's queues
// and dead letters, presigned browser uploads) and the page over it, embedded.
//
// It serves from the project's own pieces: the Firestore index (imgpipe/pkg/indexstore), the
// uploader's key scheme and status lookup (imgpipe/pkg/uploader), the SQS depth reading
// (the pipeline's SQS driver, imgpipe/pkg/queue/sqsqueue) and dlq-replay's scan and statistics over its SQS and Pub/Sub
// sources. Image bytes never pass through it: browsers upload to S3 with presigned PUTs
// whose signature fixes the key, the size and the type, and fetch images with presigned GETs.
//
// Safe by default: the API needs a bearer token or a trusted proxy's identity header unless
// the console is bound to loopback (CheckExposure), the page gets no credential, CORS is off
// unless origins are configured, every answer carries a strict CSP (no inline script) and the
// other security headers, each client is rate-limited, and every bad request is answered with
// a 4xx and a JSON error. openapi.yaml documents the API; a test holds the two together.
package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	vkit "cloud.google.com/go/pubsub/v2/apiv1"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/felixge/httpsnoop"
	"go.uber.org/zap"

	"imgpipe/dlq-replay/pubsubdlq"
	"imgpipe/dlq-replay/sqsdlq"
	"imgpipe/pkg/config"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/queue/pubsubqueue"
	"imgpipe/pkg/uploader"
)

// Deps are the clients the console serves from. S3 and Index are required.
type Deps struct {
	S3    *s3.Client
	Index *indexstore.Store
	// SQS reads the queue depths and scans the SQS dead-letter queue; nil: neither.
	SQS *sqs.Client
	// PubSub scans the Pub/Sub dead-letter subscription; nil: not scanned.
	PubSub *vkit.SubscriptionAdminClient
}

// Options tunes the console. A nil *Options, and every zero field, takes the default.
type Options struct {
	Prefix string // drop prefix of browser uploads; default "upload/"
	// QueueURL is the analyzer's source queue, whose depth the pipeline panel shows.
	QueueURL string
	// DLQURL is the analyzer's SQS dead-letter queue.
	DLQURL string
	// DeadLetterSubscription is the full name of the subscription on the indexer's Pub/Sub
	// dead-letter topic.
	DeadLetterSubscription string

	MaxUploadBytes int64         // largest browser upload; default 20,000,000 (Vision 4.0's limit)
	UploadTypes    []string      // content types a browser may upload; default DefaultUploadTypes
	PresignTTL     time.Duration // lifetime of presigned URLs; default 15 minutes

	Auth Auth
	// CORSOrigins are the origins (scheme://host[:port]) other pages may call the API from;
	// none by default.
	CORSOrigins []string
	// RatePerSecond and RateBurst bound each client's API requests; default 20 and 60.
	RatePerSecond float64
	RateBurst     int

	// DLQRefresh is the most a dead-letter view is reused; default 10s. DLQScan bounds the
	// messages one scan looks at per queue; default 1000. DLQHold is how long scanned
	// messages stay invisible if the console dies mid-scan; default 30s (released at once
	// otherwise): whole seconds from 1s to 12h, as dlq-replay's --hold (at most 10m with
	// DeadLetterSubscription, Pub/Sub's longest lease); New refuses anything else.
	DLQRefresh time.Duration
	DLQScan    int
	DLQHold    time.Duration

	Logger *zap.Logger
	Now    func() time.Time
}

// DefaultUploadTypes are the formats the analyzer and Vision 4.0 read.
var DefaultUploadTypes = []string{"image/jpeg", "image/png", "image/gif", "image/bmp", "image/tiff", "image/webp"}

// Limits of the API.
const (
	DefaultPageSize = 24
	MaxPageSize     = 100
	MaxStatusKeys   = 100
	maxUploadBody   = 16 << 10
	maxStatusBody   = 256 << 10
	requestTimeout  = 30 * time.Second
)

// Server is the console's HTTP handler.
type Server struct {
	bucket   string
	o        Options
	deps     Deps
	log      *zap.Logger
	presign  *s3.PresignClient
	lookup   *uploader.Lookup
	dead     *deadLetters
	auth     *authenticator
	limits   *clientLimits
	s3Origin string
	csp      string
	routes   []route
	handler  http.Handler
}

// New returns the console for uploads to bucket.
func New(bucket string, deps Deps, opts *Options) (*Server, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.DLQHold == 0 {
		o.DLQHold = 30 * time.Second
	}
	maxHold := sqsdlq.MaxHold
	if o.DeadLetterSubscription != "" {
		maxHold = pubsubqueue.MaxHold
	}
	if err := config.Seconds(o.DLQHold, time.Second, maxHold); err != nil {
		return nil, fmt.Errorf("console: Options.DLQHold: %w", err)
	}
	if deps.S3 == nil || deps.Index == nil {
		return nil, errors.New("console: the S3 client and the index are required")
	}
	if o.Prefix == "" {
		o.Prefix = "upload/"
	}
	if err := uploader.CheckPrefix(o.Prefix); err != nil {
		return nil, err
	}
	if o.MaxUploadBytes <= 0 {
		o.MaxUploadBytes = 20_000_000
	}
	if len(o.UploadTypes) == 0 {
		o.UploadTypes = DefaultUploadTypes
	}
	if o.PresignTTL <= 0 {
		o.PresignTTL = 15 * time.Minute
	}
	if o.RatePerSecond <= 0 {
		o.RatePerSecond = 20
	}
	if o.RateBurst <= 0 {
		o.RateBurst = 60
	}
	if o.DLQRefresh <= 0 {
		o.DLQRefresh = 10 * time.Second
	}
	if o.DLQScan <= 0 {
		o.DLQScan = 1000
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	for _, origin := range o.CORSOrigins {
		if err := checkOrigin(origin); err != nil {
			return nil, err
		}
	}
	s := &Server{bucket: bucket, o: o, deps: deps, log: o.Logger, presign: s3.NewPresignClient(deps.S3),
		auth: newAuthenticator(o.Auth), limits: newClientLimits(o.RatePerSecond, o.RateBurst, 10000, o.Now)}

	s.dead = &deadLetters{refresh: o.DLQRefresh, max: o.DLQScan, hold: o.DLQHold, timeout: 20 * time.Second,
		now: o.Now, sem: make(chan struct{}, 1)}
	if deps.SQS != nil && o.DLQURL != "" {
		s.dead.queues = append(s.dead.queues, &deadLetterQueue{name: queueName(o.DLQURL), kind: "sqs", src: sqsdlq.New(deps.SQS, o.DLQURL, nil),
			visible: func(ctx context.Context) (int, error) {
				d, err := sqsDepth(ctx, deps.SQS, o.DLQURL)
				return d.Visible, err
			}})
	}
	if deps.PubSub != nil && o.DeadLetterSubscription != "" {
		// Pub/Sub tells no backlog through its API: a scan ends after pubsubdlq.EmptyPulls
		// empty pulls in a row, each kept short.
		s.dead.queues = append(s.dead.queues, &deadLetterQueue{name: queueName(o.DeadLetterSubscription), kind: "pubsub",
			src: pubsubdlq.NewSubscription(deps.PubSub, o.DeadLetterSubscription, &pubsubqueue.Options{Wait: time.Second})})
	}
	lookup, err := uploader.NewLookup(deps.S3, bucket, &uploader.LookupOptions{Index: deps.Index, Failures: s.dead, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	s.lookup = lookup

	// The browser fetches from and uploads to S3 directly: the page's CSP must name S3's
	// origin, which a presigned URL shows (virtual-hosted or path-style, custom endpoints).
	probe, err := s.presignGet(context.Background(), o.Prefix+"probe")
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(probe)
	if err != nil {
		return nil, fmt.Errorf("presigned URL %q: %w", probe, err)
	}
	s.s3Origin = u.Scheme + "://" + u.Host
	s.csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: " + s.s3Origin +
		"; connect-src 'self' " + s.s3Origin + "; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
	s.routes = s.routeTable()
	s.handler = s.serve()
	return s, nil
}

// S3Origin is the origin (scheme://host) of S3 as the browser reaches it: the bucket's CORS
// rules must allow the console's own origin from there (see CORSRule).
func (s *Server) S3Origin() string { return s.s3Origin }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Ready reports whether the index answers.
func (s *Server) Ready(ctx context.Context) error { return s.deps.Index.Ping(ctx) }

// queueName is the last segment of a queue URL or resource name.
func queueName(s string) string {
	return s[strings.LastIndex(s, "/")+1:]
}

func checkOrigin(origin string) error {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("CORS origin %q: want scheme://host[:port]", origin)
	}
	return nil
}

// route is one entry of the API and the page.
type route struct {
	Method, Path string
	// Public routes need no authentication and are not rate-limited (the page and its
	// assets, health, the API's description).
	Public  bool
	handler http.HandlerFunc
}

// Route describes one served route, for tests that compare the routes with openapi.yaml.
type Route struct{ Method, Path string }

// Routes lists the routes of the route table (the page's assets under /assets/ are served
// besides).
func (s *Server) Routes() []Route {
	out := make([]Route, 0, len(s.routes))
	for _, rt := range s.routes {
		out = append(out, Route{rt.Method, rt.Path})
	}
	return out
}

// serve stacks the middleware, outermost first: request ID and access log, panic recovery,
// security headers, then for the API: CORS, authentication, rate limit, per-request timeout.
func (s *Server) serve() http.Handler {
	byPath := map[string]map[string]route{}
	for _, rt := range s.routes {
		if byPath[rt.Path] == nil {
			byPath[rt.Path] = map[string]route{}
		}
		byPath[rt.Path][rt.Method] = rt
	}
	assets := s.assetHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		r = r.WithContext(context.WithValue(r.Context(), keyRequestID, id))
		var who identity
		m := httpsnoop.CaptureMetricsFn(w, func(w http.ResponseWriter) {
			defer func() {
				if p := recover(); p != nil {
					s.log.Error("panic serving request", zap.String("request_id", id), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
					writeError(w, r, &apiError{Status: 500, Code: CodeInternal, Message: "internal error"})
				}
			}()
			s.route(w, r, byPath, assets, &who)
		})
		s.log.Info("request", zap.String("request_id", id), zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.Int("status", m.Code), zap.Duration("took", m.Duration), zap.String("client", remoteIP(r).String()),
			zap.String("auth", who.By), zap.String("user", who.User))
	})
}

// route answers one request; who is set once the request is authenticated.
func (s *Server) route(w http.ResponseWriter, r *http.Request, byPath map[string]map[string]route, assets http.Handler, who *identity) {
	h := w.Header()
	h.Set("X-Request-Id", requestID(r))
	h.Set("Content-Security-Policy", s.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")

	api := strings.HasPrefix(r.URL.Path, "/api/")
	if api {
		h.Set("Cache-Control", "no-store")
		if !s.cors(w, r) {
			return
		}
	}
	methods, ok := byPath[r.URL.Path]
	if !ok && !api && strings.HasPrefix(r.URL.Path, "/assets/") {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeError(w, r, &apiError{Status: 405, Code: CodeMethodNotAllowed, Message: r.Method + " is not allowed here"})
			return
		}
		assets.ServeHTTP(w, r)
		return
	}
	if !ok {
		writeError(w, r, &apiError{Status: 404, Code: CodeNotFound, Message: "no such page or API route"})
		return
	}
	rt, ok := methods[r.Method]
	if !ok && r.Method == http.MethodHead {
		rt, ok = methods[http.MethodGet]
	}
	if !ok {
		var allow []string
		for m := range methods {
			allow = append(allow, m)
		}
		slices.Sort(allow)
		h.Set("Allow", strings.Join(allow, ", "))
		writeError(w, r, &apiError{Status: 405, Code: CodeMethodNotAllowed, Message: r.Method + " is not allowed on " + r.URL.Path})
		return
	}
	if !rt.Public {
		var aerr *apiError
		if *who, aerr = s.auth.identify(r); aerr != nil {
			if aerr.Status == 401 && len(s.o.Auth.Tokens) > 0 {
				h.Set("WWW-Authenticate", `Bearer realm="imgpipe-console"`)
			}
			writeError(w, r, aerr)
			return
		}
		client := "ip:" + remoteIP(r).String()
		if who.By == "proxy" {
			client = "user:" + who.User
		}
		if ok, wait := s.limits.allow(client); !ok {
			h.Set("Retry-After", fmt.Sprint(max(1, int((wait+time.Second-1)/time.Second))))
			writeError(w, r, &apiError{Status: 429, Code: CodeRateLimited, Message: "too many requests; slow down"})
			return
		}
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), keyUser, *who), requestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	rt.handler(w, r)
}

// cors handles the Origin of an API request: a configured origin gets CORS headers (a
// preflight is answered here); a cross-origin request from any other origin that could change
// something is refused. It reports whether to go on.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	allowed := slices.Contains(s.o.CORSOrigins, origin)
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if allowed {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		if preflight {
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return false
		}
		return true
	}
	if preflight || (r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(origin, r.Host)) {
		writeError(w, r, &apiError{Status: 403, Code: CodeCrossOriginDenied, Message: "origin " + origin + " may not call this API (see --cors-origins)"})
		return false
	}
	return true
}

func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host == host
}
