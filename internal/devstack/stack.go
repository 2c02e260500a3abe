// Package devstack starts and stops the local stand-ins for the three clouds and creates the
// pipeline's resources on them.
//
// The stand-ins are: fauxqs for SQS (a node process), the project's own S3 stand-in with event
// notifications behind an HTTP front (s3standin.Front, where tests inject S3 faults), Google's
// Pub/Sub and Firestore emulators (Java processes) behind their gRPC fronts, and the project's
// own Azure AI Vision stand-in. The project's stand-ins are a module of their own
// (standins/), built and started as child processes (see StandinsBinary); tests drive them
// through their admin endpoints (s3standin.Client, visionstandin.Client). Everything binds
// 127.0.0.1. Child processes run in their own process groups and are stopped as a whole.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/zap"

	"imgpipe/internal/grpcfront"
	"imgpipe/internal/s3standin"
	"imgpipe/internal/visionstandin"
	"imgpipe/pkg/awsclient"
)

// Part is one stand-in of the stack; parts combine with |.
type Part uint

const (
	SQS Part = 1 << iota
	S3       // S3 with event notifications; needs SQS to deliver them
	PubSub
	Firestore
	Vision
	All = SQS | S3 | PubSub | Firestore | Vision
)

func (p Part) String() string {
	var names []string
	for _, x := range []struct {
		p    Part
		name string
	}{{SQS, "sqs"}, {S3, "s3"}, {PubSub, "pubsub"}, {Firestore, "firestore"}, {Vision, "vision"}} {
		if p&x.p != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ",")
}

// ParseParts reads a comma-separated list of part names ("sqs,s3" or "all").
func ParseParts(s string) (Part, error) {
	var p Part
	for _, name := range strings.Split(s, ",") {
		switch strings.TrimSpace(strings.ToLower(name)) {
		case "all":
			p |= All
		case "sqs":
			p |= SQS
		case "s3":
			p |= S3
		case "pubsub":
			p |= PubSub
		case "firestore":
			p |= Firestore
		case "vision":
			p |= Vision
		case "":
		default:
			return 0, fmt.Errorf("unknown stack part %q (want sqs, s3, pubsub, firestore, vision or all)", name)
		}
	}
	return p, nil
}

// Ports fixes the port of each part; zero means a free port. For the emulators it is the port
// clients use: the front's when the emulator has one.
type Ports struct {
	SQS, S3, PubSub, Firestore, Vision int
}

// Options configures Start. A nil *Options starts every part on free ports.
type Options struct {
	Parts     Part   // zero means All
	Ports     Ports  // zero ports are chosen free
	LogDir    string // where child processes write their logs; default a new temporary folder
	ProjectID string // Google Cloud project for the emulators; default "imgpipe-local"
	Region    string // AWS region; default "us-east-1"
	VisionKey string // key the Vision stand-in accepts; default "local-vision-key"
	// VisionFaults are the Vision stand-in's faults from the start (changeable later at
	// {VisionEndpoint}/admin/faults, through Stack.VisionServer).
	VisionFaults visionstandin.Faults
	// StartTimeout bounds the start of each part; default 60s (the Firestore emulator takes ~4s
	// on an idle machine, far longer on a loaded one).
	StartTimeout time.Duration
	// NoFronts connects clients to the Pub/Sub and Firestore emulators directly instead of
	// through their gRPC fronts (internal/grpcfront). Without the front, a Pub/Sub subscriber
	// that dies or cancels a stream leaves the emulator handing messages to a dead stream, and
	// Outage and RestartFirestore are not available.
	NoFronts bool
	Logger   *zap.Logger
}

// Default identifiers of the local stack.
const (
	DefaultProjectID = "imgpipe-local"
	DefaultRegion    = "us-east-1"
	DefaultVisionKey = "local-vision-key"
	// AccountID is the account fauxqs puts in queue URLs and ARNs.
	AccountID = "000000000000"
	stopGrace = 5 * time.Second
)

// Stack is a running local stack. Fields for parts that were not started are empty.
type Stack struct {
	Parts     Part
	Region    string
	ProjectID string
	LogDir    string

	SQSEndpoint    string // http://127.0.0.1:PORT
	S3Endpoint     string // http://127.0.0.1:PORT, path-style
	PubSubHost     string // 127.0.0.1:PORT, for PUBSUB_EMULATOR_HOST (the front, if any)
	FirestoreHost  string // 127.0.0.1:PORT, for FIRESTORE_EMULATOR_HOST (the front, if any)
	VisionEndpoint string // http://127.0.0.1:PORT
	VisionKey      string

	// The emulators' own addresses, behind their fronts (equal to PubSubHost and
	// FirestoreHost with NoFronts).
	PubSubEmulatorHost, FirestoreEmulatorHost string

	// The project's stand-ins, through their admin endpoints (and the S3 front), for fault
	// injection and statistics in tests.
	S3Server     *s3standin.Client
	VisionServer *visionstandin.Client
	// The emulators' gRPC fronts (nil with NoFronts), for their statistics.
	PubSubFront, FirestoreFront *grpcfront.Front

	mu        sync.Mutex // guards procs and firestore, which RestartFirestore replaces
	procs     []*process
	standins  []*Standin // stopped before procs: the S3 stand-in delivers to SQS as it stops
	firestore *process
	restarts  int
	closers   []func(context.Context) error
	closeOnce sync.Once
	closeErr  error
}

// Start brings up the requested parts and waits until each answers. On error, whatever was
// started is stopped again.
func Start(ctx context.Context, opts *Options) (_ *Stack, err error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Parts == 0 {
		o.Parts = All
	}
	if o.Parts&S3 != 0 {
		o.Parts |= SQS
	}
	if o.ProjectID == "" {
		o.ProjectID = DefaultProjectID
	}
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	if o.VisionKey == "" {
		o.VisionKey = DefaultVisionKey
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.LogDir == "" {
		o.LogDir, err = os.MkdirTemp("", "imgpipe-stack-")
		if err != nil {
			return nil, fmt.Errorf("log dir: %w", err)
		}
	} else if err := os.MkdirAll(o.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}

	s := &Stack{Parts: o.Parts, Region: o.Region, ProjectID: o.ProjectID, LogDir: o.LogDir}
	defer func() {
		if err != nil {
			_ = s.Close(context.Background())
		}
	}()

	if o.Parts&(S3|Vision) != 0 {
		// Built before anything starts (nothing is left running if it fails), and not bounded
		// by StartTimeout: a first build from a cold cache may take minutes.
		if _, err := StandinsBinary(ctx); err != nil {
			return nil, err
		}
	}
	// The Java emulators are the slow ones: start them first, in parallel with the rest.
	type started struct {
		part Part
		proc *process
		addr string
		err  error
	}
	results := make(chan started, 4)
	pending := 0
	launch := func(part Part, fn func(context.Context) (*process, string, error)) {
		pending++
		go func() {
			sctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
			defer cancel()
			p, addr, err := fn(sctx)
			results <- started{part, p, addr, err}
		}()
	}
	// Behind a front, the emulator takes a free port and the fixed port is the front's.
	emulatorPort := func(fixed int) int {
		if o.NoFronts {
			return fixed
		}
		return 0
	}
	if o.Parts&Firestore != 0 {
		launch(Firestore, func(c context.Context) (*process, string, error) {
			return withPort(emulatorPort(o.Ports.Firestore), func(port int) (*process, string, error) {
				return startFirestore(c, o.LogDir, "firestore.log", port, o.ProjectID, "")
			})
		})
	}
	if o.Parts&PubSub != 0 {
		launch(PubSub, func(c context.Context) (*process, string, error) {
			return withPort(emulatorPort(o.Ports.PubSub), func(port int) (*process, string, error) {
				return startPubSub(c, o.LogDir, port, o.ProjectID)
			})
		})
	}
	if o.Parts&SQS != 0 {
		launch(SQS, func(c context.Context) (*process, string, error) {
			return startSQS(c, o.LogDir, o.Ports.SQS)
		})
	}
	var vision *Standin
	if o.Parts&Vision != 0 {
		launch(Vision, func(c context.Context) (*process, string, error) {
			v, err := StartVision(c, &VisionOptions{Port: o.Ports.Vision, Keys: []string{o.VisionKey}, Faults: o.VisionFaults, LogDir: o.LogDir})
			if err != nil {
				return nil, "", fmt.Errorf("start Vision stand-in: %w", err)
			}
			vision = v // read after the results are in
			return v.p, v.URL, nil
		})
	}
	var errs []error
	for ; pending > 0; pending-- {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		if r.part == Vision {
			s.standins = append(s.standins, vision)
		} else {
			s.procs = append(s.procs, r.proc)
		}
		switch r.part {
		case SQS:
			s.SQSEndpoint = r.addr
		case PubSub:
			s.PubSubEmulatorHost, s.PubSubHost = r.addr, r.addr
		case Firestore:
			s.FirestoreEmulatorHost, s.FirestoreHost = r.addr, r.addr
			s.firestore = r.proc
		case Vision:
			s.VisionEndpoint, s.VisionKey = r.addr, o.VisionKey
			s.VisionServer = visionstandin.NewClient(r.addr, nil)
		}
	}
	if len(errs) > 0 {
		return nil, firstMissing(errs)
	}
	if !o.NoFronts {
		front := func(port int, emulator string, name string) (*grpcfront.Front, error) {
			f, err := grpcfront.Start(fmt.Sprintf("127.0.0.1:%d", port), emulator, &grpcfront.Options{Logger: o.Logger.Named(name)})
			if err != nil {
				return nil, fmt.Errorf("start %s: %w", name, err)
			}
			s.closers = append(s.closers, func(context.Context) error { return f.Close() })
			return f, nil
		}
		if s.PubSubEmulatorHost != "" {
			if s.PubSubFront, err = front(o.Ports.PubSub, s.PubSubEmulatorHost, "pubsub-front"); err != nil {
				return nil, err
			}
			s.PubSubHost = s.PubSubFront.Addr()
		}
		if s.FirestoreEmulatorHost != "" {
			if s.FirestoreFront, err = front(o.Ports.Firestore, s.FirestoreEmulatorHost, "firestore-front"); err != nil {
				return nil, err
			}
			s.FirestoreHost = s.FirestoreFront.Addr()
		}
	}

	if o.Parts&S3 != 0 {
		st, err := StartS3(ctx, &S3Options{
			Region:      o.Region,
			AccountID:   AccountID,
			SQSEndpoint: s.SQSEndpoint,
			// The stack's static credentials (see AWSConfig, Env): presigned URLs are verified.
			Credentials: map[string]string{"test": "test"},
			LogDir:      o.LogDir,
		})
		if err != nil {
			return nil, fmt.Errorf("start S3 stand-in: %w", err)
		}
		s.standins = append(s.standins, st)
		// Clients go through the front (on the fixed port, if any): it forwards every request
		// unchanged unless a test installs a fault.
		front, err := s3standin.StartFront(fmt.Sprintf("127.0.0.1:%d", o.Ports.S3), st.URL)
		if err != nil {
			return nil, fmt.Errorf("start S3 front: %w", err)
		}
		s.closers = append(s.closers, front.Close)
		s.S3Endpoint = front.URL()
		s.S3Server = s3standin.NewClient(st.URL, front, nil)
	}
	return s, nil
}

// withPort calls start with the fixed port, or with free ports until one binds (the Java
// emulators cannot be asked to pick their own).
func withPort(fixed int, start func(port int) (*process, string, error)) (*process, string, error) {
	if fixed != 0 {
		return start(fixed)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, "", err
		}
		p, addr, err := start(port)
		if err == nil || IsMissing(err) {
			return p, addr, err
		}
		lastErr = err
	}
	return nil, "", lastErr
}

// firstMissing puts a missing-prerequisite error first, so the one line printed names it.
func firstMissing(errs []error) error {
	for i, e := range errs {
		if IsMissing(e) {
			errs[0], errs[i] = errs[i], errs[0]
			break
		}
	}
	return errors.Join(errs...)
}

// Close stops every part: the fronts first, then the project's stand-ins (the S3 stand-in
// delivers pending notifications), then the other child processes. Safe to call more than
// once.
func (s *Stack) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		var errs []error
		for i := len(s.closers) - 1; i >= 0; i-- {
			if err := s.closers[i](ctx); err != nil {
				errs = append(errs, err)
			}
		}
		var wg sync.WaitGroup
		for _, st := range s.standins {
			wg.Go(st.Close)
		}
		wg.Wait()
		s.mu.Lock()
		procs := s.procs
		s.mu.Unlock()
		for _, p := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.stop(stopGrace)
			}()
		}
		wg.Wait()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// AWSConfig returns an AWS configuration for the stand-ins: static test credentials and the
// stack's region. Endpoints are set per client (see NewS3Client, NewSQSClient).
func (s *Stack) AWSConfig() aws.Config {
	return aws.Config{
		Region:      s.Region,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		// What config.LoadDefaultConfig gives the binaries: checksums calculated and validated
		// when the operation supports them (a bare aws.Config leaves them off).
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
		// And the binaries' connection pool.
		HTTPClient: awsclient.HTTPClient(),
	}
}

// NewSQSClient returns an SQS client for the stack's SQS stand-in, with optFns applied
// after the endpoint is set (awsclient.CountCalls, say).
func (s *Stack) NewSQSClient(optFns ...func(*sqs.Options)) *sqs.Client {
	return sqs.NewFromConfig(s.AWSConfig(), append([]func(*sqs.Options){func(o *sqs.Options) {
		o.BaseEndpoint = aws.String(s.SQSEndpoint)
	}}, optFns...)...)
}

// NewS3Client returns a path-style S3 client for the stack's S3 stand-in.
func (s *Stack) NewS3Client() *s3.Client {
	return s3.NewFromConfig(s.AWSConfig(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.S3Endpoint)
		o.UsePathStyle = true
	})
}

// SetEmulatorEnv sets PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST in this process, which
// the Google clients read when they are created.
func (s *Stack) SetEmulatorEnv() {
	if s.PubSubHost != "" {
		os.Setenv("PUBSUB_EMULATOR_HOST", s.PubSubHost)
	}
	if s.FirestoreHost != "" {
		os.Setenv("FIRESTORE_EMULATOR_HOST", s.FirestoreHost)
	}
}

// ping checks that every started part still answers.
func (s *Stack) ping(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	check := func(name, url string) error {
		if url == "" {
			return nil
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		resp.Body.Close()
		return nil
	}
	hostURL := func(h string) string {
		if h == "" {
			return ""
		}
		return "http://" + h + "/"
	}
	dial := func(name, host string) error {
		if host == "" {
			return nil
		}
		c, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", host)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return c.Close()
	}
	return errors.Join(
		check("sqs", s.SQSEndpoint),
		check("s3", s.S3Endpoint),
		check("pubsub", hostURL(s.PubSubEmulatorHost)),
		check("firestore", hostURL(s.FirestoreEmulatorHost)),
		dial("pubsub front", s.PubSubHost),
		dial("firestore front", s.FirestoreHost),
		check("vision", s.VisionEndpoint),
	)
}

// PIDs returns the process IDs of the stack's child processes (each leads its own process
// group), for tests that check a stop leaves nothing behind.
func (s *Stack) PIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pids []int
	for _, p := range s.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	for _, st := range s.standins {
		pids = append(pids, st.PID())
	}
	return pids
}
