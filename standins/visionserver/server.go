// Package visionserver is a local stand-in for the Azure AI Vision REST API, as far as the
// pipeline depends on it: Image Analysis 4.0 (POST /computervision/imageanalysis:analyze)
// and v3.2 (POST /vision/v3.2/analyze), with Azure's authentication, limits and error
// bodies, and injectable faults (latency, transient errors, throttling, outages, bad keys)
// controlled through Options, methods, or an admin endpoint under /admin/.
//
// Its answers are honest and deterministic: dimensions, format, colours, brightness and
// shape come from the decoded pixels, and smart crops are placed where the pixels' detail is
// (their edge energy); no objects, people or text are invented (those features answer with
// empty lists).
//
// It is for tests and the local stack only. Pipeline code must talk to it over HTTP like
// any Azure endpoint and never import this package.
package visionserver

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"imgpipe/internal/visionstandin"
	"imgpipe/pkg/retry"
)

// Paths of the two analysis operations.
const (
	Path40 = "/computervision/imageanalysis:analyze"
	Path32 = "/vision/v3.2/analyze"
)

// Options configure a Server. A nil *Options, and every zero field, means the default.
type Options struct {
	// Keys are the accepted Ocp-Apim-Subscription-Key values. Default: DefaultKey.
	Keys []string
	// Tokens are the accepted "Authorization: Bearer" tokens. Default: none.
	Tokens []string
	// Faults are in force from the start, and again after Reset. New panics if they are
	// invalid (see Faults.Validate); Start returns an error instead.
	Faults Faults
	// FetchTimeout bounds fetching an image given by URL. Default 10s.
	FetchTimeout time.Duration
	// FetchClient fetches images given by URL. Default: a client without keep-alives, so
	// the stand-in leaves no idle connections (or their goroutines) behind.
	FetchClient *http.Client
	// MaxDecodePixels is the largest width*height whose pixels are decoded; larger images
	// are answered from their format and dimensions alone. Default 40,000,000.
	MaxDecodePixels int
	// MaxConcurrentDecodes bounds how many images are decoded at once. Default 2.
	MaxConcurrentDecodes int
	// Now is the clock for rate limiting and outage windows. Default time.Now.
	Now func() time.Time
	// ManualClock, when not zero, replaces Now with a clock that starts at this time and moves
	// only when PUT /admin/clock sets it (for callers that run on simulated time).
	ManualClock time.Time
}

// Server is the stand-in. It is an http.Handler and safe for concurrent use.
// It starts no goroutines.
type Server struct {
	keys, tokens    map[string]bool
	initial         Faults
	now             func() time.Time
	fetch           *http.Client
	fetchTimeout    time.Duration
	maxDecodePixels int
	decodeSlots     chan struct{}
	manual          *manualClock // nil unless Options.ManualClock is set

	mu     sync.Mutex
	faults Faults
	setAt  time.Time // outage windows are offsets from here
	bucket bucket
	rng    *mrand.Rand
	stats  Stats
}

// New returns a Server. See Options for the defaults.
func New(opts *Options) *Server {
	if opts == nil {
		opts = &Options{}
	}
	if err := opts.Faults.Validate(); err != nil {
		panic(fmt.Sprintf("visionstandin: invalid faults: %v", err))
	}
	s := &Server{
		keys:            set(opts.Keys),
		tokens:          set(opts.Tokens),
		initial:         opts.Faults.Clone(),
		now:             opts.Now,
		fetch:           opts.FetchClient,
		fetchTimeout:    opts.FetchTimeout,
		maxDecodePixels: opts.MaxDecodePixels,
	}
	if len(s.keys) == 0 {
		s.keys = set([]string{visionstandin.DefaultKey})
	}
	if !opts.ManualClock.IsZero() {
		s.manual = &manualClock{t: opts.ManualClock}
		s.now = s.manual.Now
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.fetchTimeout <= 0 {
		s.fetchTimeout = 10 * time.Second
	}
	if s.fetch == nil {
		s.fetch = &http.Client{Transport: &http.Transport{
			Proxy:             nil, // images are fetched directly, as from inside Azure
			DisableKeepAlives: true,
		}}
	}
	if s.maxDecodePixels <= 0 {
		s.maxDecodePixels = 40_000_000
	}
	n := opts.MaxConcurrentDecodes
	if n <= 0 {
		n = 2
	}
	s.decodeSlots = make(chan struct{}, n)
	s.Reset()
	return s
}

func set(xs []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		if x != "" {
			m[x] = true
		}
	}
	return m
}

// SetFaults replaces the faults in force. Outage windows are measured from now, and the
// rate limiter starts with a full bucket. An invalid f is refused and changes nothing.
func (s *Server) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setFaultsLocked(f.Clone())
	return nil
}

func (s *Server) setFaultsLocked(f Faults) {
	s.faults = f
	s.setAt = s.now()
	s.bucket = newBucket(f.RateLimit, s.setAt)
	seed := uint64(f.Seed)
	s.rng = mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Faults returns the faults in force.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.Clone()
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats.Clone()
	_, st.OutageActive = s.outageLocked(s.now())
	return st
}

// Reset restores the faults given in Options and zeroes every counter.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = visionstandin.NewStats()
	s.setFaultsLocked(s.initial.Clone())
}

// endpoint is one of the two analysis operations.
type endpoint int

const (
	noEndpoint endpoint = iota
	endpoint40
	endpoint32
)

// ServeHTTP answers the analysis operations and the admin endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/admin/") {
		s.serveAdmin(w, r)
		return
	}
	reqID := newRequestID()
	w.Header().Set("apim-request-id", reqID)
	rec := &recorder{ResponseWriter: w}

	ep, version := noEndpoint, ""
	switch r.URL.Path {
	case Path40:
		ep, version = endpoint40, r.URL.Query().Get("api-version")
		if version == "" {
			version = "(none)"
		}
	case Path32:
		ep, version = endpoint32, "v3.2"
	}
	s.mu.Lock()
	s.stats.Calls++
	if version != "" {
		s.stats.ByAPIVersion[version]++
	}
	s.mu.Unlock()

	key, dropped := s.serve(rec, r, ep, reqID)

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case dropped: // counted in serve, before the connection closed
	case rec.status == 0:
		s.stats.ByStatus["499"]++ // the caller went away before an answer
	default:
		s.stats.ByStatus[fmt.Sprint(rec.status)]++
	}
	if rec.status == http.StatusTooManyRequests {
		s.stats.Throttled++
	}
	if key != "" && rec.status == http.StatusOK {
		s.stats.Analyses++
		s.stats.ByImage[key]++
	}
}

// serve runs the gateway checks and faults, then the operation. It returns the content key
// of a successfully analysed image, and whether the connection was dropped.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, ep endpoint, reqID string) (key string, dropped bool) {
	if ep == noEndpoint || r.Method != http.MethodPost {
		writeError(w, notFound(), reqID, false)
		return "", false
	}
	bodyID := ep == endpoint32
	now := s.now()

	s.mu.Lock()
	f := s.faults
	mode, down := s.outageLocked(now)
	s.mu.Unlock()

	if down {
		if mode == visionstandin.OutageDrop {
			if conn := hijack(w); conn != nil {
				// Counted before the close, so a caller that sees the connection end
				// also sees it in the stats.
				s.mu.Lock()
				s.stats.Dropped++
				s.mu.Unlock()
				_ = conn.Close()
				return "", true
			}
		}
		writeError(w, transientError(visionstandin.KindServiceUnavailable), reqID, bodyID)
		return "", false
	}
	if f.BadKey || !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(
			`AzureApiManagementKey realm="http://%s%s",name="Ocp-Apim-Subscription-Key",type="header"`, r.Host, r.URL.Path))
		writeError(w, accessDenied(), reqID, false)
		return "", false
	}
	if f.QuotaExceeded {
		writeError(w, quotaExceeded(), reqID, false)
		return "", false
	}

	s.mu.Lock()
	ok, wait := s.bucket.take(now)
	var delay time.Duration
	var failKind string
	if ok {
		delay = f.Latency.Sample(s.rng.Float64(), s.rng.NormFloat64())
		if f.Transient.Rate > 0 && s.rng.Float64() < f.Transient.Rate {
			kinds := f.Transient.Kinds
			if len(kinds) == 0 {
				kinds = visionstandin.TransientKinds()
			}
			failKind = kinds[s.rng.IntN(len(kinds))]
		}
		if delay > 0 {
			s.stats.Delayed++
		}
	}
	s.mu.Unlock()

	if !ok {
		secs := int64(wait / time.Second)
		if wait%time.Second != 0 {
			secs++
		}
		setRetryAfter(w.Header(), f.RetryAfter, wait, now)
		op := "Analyze"
		if ep == endpoint40 {
			op = "Analyze Image"
		}
		writeError(w, throttled(op, max(secs, 1)), reqID, false)
		return "", false
	}
	if delay > 0 {
		// Take the body in first: the server notices a caller that hangs up (and cancels
		// the request's context) only once the body has been read to its end.
		body, err := io.ReadAll(io.LimitReader(r.Body, MaxBytes40+1))
		if err != nil {
			return "", false // the caller went away
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if retry.Sleep(r.Context(), delay) != nil {
			return "", false
		}
	}
	if failKind != "" {
		s.mu.Lock()
		s.stats.Transient++
		s.mu.Unlock()
		writeError(w, transientError(failKind), reqID, bodyID)
		return "", false
	}

	if ep == endpoint40 {
		return s.analyze40(w, r, reqID), false
	}
	return s.analyze32(w, r, reqID), false
}

// outageLocked reports whether an outage window covers now, and its mode.
func (s *Server) outageLocked(now time.Time) (string, bool) {
	elapsed := now.Sub(s.setAt)
	for _, o := range s.faults.Outages {
		if o.Covers(elapsed) {
			if o.Mode == "" {
				return visionstandin.OutageUnavailable, true
			}
			return o.Mode, true
		}
	}
	return "", false
}

// authorized checks the subscription key (header or query) or the bearer token.
func (s *Server) authorized(r *http.Request) bool {
	if k := r.Header.Get("Ocp-Apim-Subscription-Key"); k != "" {
		return s.keys[k]
	}
	if k := r.URL.Query().Get("subscription-key"); k != "" {
		return s.keys[k]
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && s.tokens[strings.TrimSpace(token)]
}

// hijack takes the connection over, so it can be closed without an answer. It returns
// nil when the connection cannot be hijacked (HTTP/2, or a recorder), and the caller
// answers 503 instead.
func hijack(w http.ResponseWriter) net.Conn {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil
	}
	return conn
}

// newRequestID returns a random version-4 UUID, as Azure's request IDs are.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// recorder remembers the status written through it.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (to hijack it).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
