// Package gcpauth gives the Google Cloud clients (Pub/Sub, Firestore) keyless credentials
// from AWS that work wherever the AWS SDK finds credentials.
//
// Google's auth library reads an external_account configuration file (workload identity
// federation) named by GOOGLE_APPLICATION_CREDENTIALS by itself, but its built-in AWS
// credential source only knows environment variables and EC2 instance metadata: it fails on
// EKS with IRSA (web identity), on ECS and Fargate (container credentials) and with SSO
// profiles. When the file is an AWS external_account configuration, Load replaces that
// source with one backed by the AWS SDK's default credential chain, so one file works on
// EKS, ECS, Lambda and EC2 alike. Any other file (service account, other external sources)
// and an unset GOOGLE_APPLICATION_CREDENTIALS are left to Application Default Credentials.
package gcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials/externalaccount"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"google.golang.org/api/option"

	"imgpipe/pkg/failure"
)

// EnvCredentials is the variable Application Default Credentials read the file name from.
const EnvCredentials = "GOOGLE_APPLICATION_CREDENTIALS"

// Scope is the OAuth scope the federated tokens carry; it covers Pub/Sub and Firestore.
const Scope = "https://www.googleapis.com/auth/cloud-platform"

// AWSCredentialsExpiryWindow is how long before their expiry the AWS credentials are renewed,
// so that Google's token service never verifies a request signed with credentials about to
// expire.
const AWSCredentialsExpiryWindow = 5 * time.Minute

// maxConfigSize bounds how much of the configuration file is read.
const maxConfigSize = 64 << 10

// Options tunes Load. A nil *Options takes the defaults.
type Options struct {
	// HTTPClient makes the calls to the token and impersonation endpoints. Default: a client
	// with a 30 s timeout.
	HTTPClient *http.Client
	// Getenv reads the environment. Default: os.Getenv.
	Getenv func(string) string
	// AWSConfigOptions are added to the AWS SDK's LoadDefaultConfig (tests point it at
	// stand-ins with them; the SDK's own variables work too).
	AWSConfigOptions []func(*awsconfig.LoadOptions) error
}

// Credentials are the Google credentials a binary uses. The zero value, and the one Load
// returns for anything but an AWS external_account file, leaves the choice to Application
// Default Credentials.
type Credentials struct {
	creds  *auth.Credentials
	desc   string
	getenv func(string) string
}

// ClientOptions returns the options to pass to pubsub.NewClient or firestore.NewClient: none
// when Application Default Credentials decide, or when emulatorEnv (PUBSUB_EMULATOR_HOST,
// FIRESTORE_EMULATOR_HOST) is set, since the clients talk to an emulator without credentials.
func (c *Credentials) ClientOptions(emulatorEnv string) []option.ClientOption {
	if c == nil || c.creds == nil || (emulatorEnv != "" && c.getenv(emulatorEnv) != "") {
		return nil
	}
	return []option.ClientOption{option.WithAuthCredentials(c.creds)}
}

// Token returns a Google access token, for checks and tests. It fails when Application
// Default Credentials decide.
func (c *Credentials) Token(ctx context.Context) (*auth.Token, error) {
	if c == nil || c.creds == nil {
		return nil, errors.New("gcpauth: credentials are left to Application Default Credentials")
	}
	return c.creds.Token(ctx)
}

// String says which credentials are used, never a secret: it is what the binaries log.
func (c *Credentials) String() string {
	if c == nil || c.desc == "" {
		return "application default credentials"
	}
	return c.desc
}

// config is the part of an external_account file this package reads.
type config struct {
	Type                           string `json:"type"`
	Audience                       string `json:"audience"`
	SubjectTokenType               string `json:"subject_token_type"`
	TokenURL                       string `json:"token_url"`
	ServiceAccountImpersonationURL string `json:"service_account_impersonation_url"`
	ServiceAccountImpersonation    struct {
		TokenLifetimeSeconds int `json:"token_lifetime_seconds"`
	} `json:"service_account_impersonation"`
	QuotaProjectID   string `json:"quota_project_id"`
	UniverseDomain   string `json:"universe_domain"`
	CredentialSource *struct {
		EnvironmentID string `json:"environment_id"`
	} `json:"credential_source"`
}

// Load reads the file GOOGLE_APPLICATION_CREDENTIALS names. For an AWS external_account
// configuration it returns credentials whose AWS side is the SDK's default chain (region from
// AWS_REGION or the shared config); for anything else, credentials that leave the choice to
// Application Default Credentials. A file that cannot be read or parsed, or an AWS
// configuration without a region, is an error naming the setting.
func Load(ctx context.Context, opts *Options) (*Credentials, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	path := o.Getenv(EnvCredentials)
	if path == "" {
		return &Credentials{}, nil
	}
	cfg, err := readConfig(path)
	if err != nil {
		return nil, fmt.Errorf("invalid setting %s: %w", EnvCredentials, err)
	}
	if cfg.Type != "external_account" || cfg.CredentialSource == nil || !strings.HasPrefix(cfg.CredentialSource.EnvironmentID, "aws") {
		return &Credentials{}, nil
	}
	if cfg.CredentialSource.EnvironmentID != "aws1" {
		return nil, fmt.Errorf("invalid setting %s: %s: credential_source.environment_id %q is not supported (want aws1)", EnvCredentials, path, cfg.CredentialSource.EnvironmentID)
	}
	if cfg.Audience == "" || cfg.SubjectTokenType == "" {
		return nil, fmt.Errorf("invalid setting %s: %s: audience and subject_token_type are required", EnvCredentials, path)
	}

	awsOpts := append([]func(*awsconfig.LoadOptions) error{
		awsconfig.WithCredentialsCacheOptions(func(o *aws.CredentialsCacheOptions) {
			o.ExpiryWindow = AWSCredentialsExpiryWindow
		}),
	}, o.AWSConfigOptions...)
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration for %s: %w", EnvCredentials, err)
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("missing setting AWS_REGION: %s is an AWS external_account file, and the GetCallerIdentity request it signs needs the AWS region", EnvCredentials)
	}
	if awsCfg.Credentials == nil {
		return nil, fmt.Errorf("load AWS configuration for %s: no credential provider", EnvCredentials)
	}

	sec := &secrets{}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	hc = &http.Client{
		Transport:     &statusTransport{next: transportOf(hc), secrets: sec},
		CheckRedirect: hc.CheckRedirect,
		Jar:           hc.Jar,
		Timeout:       hc.Timeout,
	}
	sup := &awsSupplier{region: awsCfg.Region, creds: awsCfg.Credentials, secrets: sec}
	inner, err := externalaccount.NewCredentials(&externalaccount.Options{
		Audience:                       cfg.Audience,
		SubjectTokenType:               cfg.SubjectTokenType,
		TokenURL:                       cfg.TokenURL,
		ServiceAccountImpersonationURL: cfg.ServiceAccountImpersonationURL,
		ServiceAccountImpersonationLifetimeSeconds: cfg.ServiceAccountImpersonation.TokenLifetimeSeconds,
		QuotaProjectID:                 cfg.QuotaProjectID,
		UniverseDomain:                 cfg.UniverseDomain,
		Scopes:                         []string{Scope},
		AwsSecurityCredentialsProvider: sup,
		Client:                         hc,
	})
	if err != nil {
		return nil, fmt.Errorf("invalid setting %s: %s: %w", EnvCredentials, path, err)
	}
	copts := &auth.CredentialsOptions{TokenProvider: &classifyingProvider{inner: inner, secrets: sec}}
	if cfg.QuotaProjectID != "" {
		copts.QuotaProjectIDProvider = staticProperty(cfg.QuotaProjectID)
	}
	if cfg.UniverseDomain != "" {
		copts.UniverseDomainProvider = staticProperty(cfg.UniverseDomain)
	}
	return &Credentials{creds: auth.NewCredentials(copts), desc: describe(path, cfg), getenv: o.Getenv}, nil
}

func readConfig(path string) (*config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxConfigSize)
	}
	var c config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s is not a JSON credentials file: %w", path, err)
	}
	return &c, nil
}

// describe names the file, the pool provider and the impersonated service account.
func describe(path string, c *config) string {
	d := fmt.Sprintf("workload identity federation from AWS (file %s, audience %s", path, c.Audience)
	if sa := impersonatedAccount(c.ServiceAccountImpersonationURL); sa != "" {
		d += ", service account " + sa
	}
	return d + "; AWS credentials from the SDK's default chain)"
}

// impersonatedAccount extracts EMAIL from .../serviceAccounts/EMAIL:generateAccessToken.
func impersonatedAccount(u string) string {
	_, rest, ok := strings.Cut(u, "/serviceAccounts/")
	if !ok {
		return ""
	}
	email, _, _ := strings.Cut(rest, ":")
	return email
}

type staticProperty string

func (p staticProperty) GetProperty(context.Context) (string, error) { return string(p), nil }

func transportOf(c *http.Client) http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	return http.DefaultTransport
}

// ---- the AWS side ----

// awsSupplier implements the Google library's AWS credential provider with the AWS SDK's
// credential chain (its cache renews the credentials before they expire).
type awsSupplier struct {
	region  string
	creds   aws.CredentialsProvider
	secrets *secrets
}

func (s *awsSupplier) AwsRegion(context.Context, *externalaccount.RequestOptions) (string, error) {
	return s.region, nil
}

func (s *awsSupplier) AwsSecurityCredentials(ctx context.Context, _ *externalaccount.RequestOptions) (*externalaccount.AwsSecurityCredentials, error) {
	c, err := s.creds.Retrieve(ctx)
	if err != nil {
		return nil, failure.New(failure.Transient, "AWSCredentials", fmt.Errorf("AWS credentials from the default chain: %w", err))
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return nil, failure.Transientf("AWSCredentials", "AWS credentials from the default chain (%s) are empty", c.Source)
	}
	s.secrets.add(c.SecretAccessKey, c.SessionToken)
	return &externalaccount.AwsSecurityCredentials{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
	}, nil
}

// ---- errors: classified, never carrying a secret ----

const redacted = "[REDACTED]"

// secrets remembers the secrets that went into subject tokens and came back as access
// tokens, so that no error message repeats them, whatever an endpoint echoes.
type secrets struct {
	mu   sync.Mutex
	list []string
}

// maxSecrets bounds the list: old credentials drop out once they can no longer appear.
const maxSecrets = 16

func (s *secrets) add(vals ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vals {
		if len(v) < 4 {
			continue
		}
		s.list = append(s.list, v)
	}
	if len(s.list) > maxSecrets {
		s.list = s.list[len(s.list)-maxSecrets:]
	}
}

func (s *secrets) scrub(msg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.list {
		msg = strings.ReplaceAll(msg, v, redacted)
	}
	return msg
}

// EndpointError is an error answer of the token or impersonation endpoint. It carries the
// status and the OAuth or Google error code and description, never the raw body.
type EndpointError struct {
	URL         string
	StatusCode  int
	Code        string
	Description string
}

func (e *EndpointError) Error() string {
	s := fmt.Sprintf("%s answered %d", e.URL, e.StatusCode)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// maxDescription bounds the description kept from an error answer.
const maxDescription = 300

// statusTransport turns error answers into *EndpointError before the Google library quotes
// their bodies in its messages.
type statusTransport struct {
	next    http.RoundTripper
	secrets *secrets
}

func (t *statusTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	u := *req.URL
	u.RawQuery, u.User = "", nil
	e := &EndpointError{URL: u.String(), StatusCode: resp.StatusCode}
	code, desc := errorFields(body)
	// Scrub before cutting, so that no secret survives in part.
	e.Code, e.Description = t.secrets.scrub(code), t.secrets.scrub(desc)
	if len(e.Code) > maxDescription {
		e.Code = e.Code[:maxDescription] + "..."
	}
	if len(e.Description) > maxDescription {
		e.Description = e.Description[:maxDescription] + "..."
	}
	return nil, e
}

// errorFields reads the OAuth ({"error": CODE, "error_description": ...}) and the Google
// API ({"error": {"status": CODE, "message": ...}}) error shapes.
func errorFields(body []byte) (code, desc string) {
	var oauth struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &oauth) == nil && oauth.Error != "" {
		return oauth.Error, oauth.Description
	}
	var google struct {
		Error struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &google) == nil {
		return google.Error.Status, google.Error.Message
	}
	return "", ""
}

// classifyingProvider classifies token errors with pkg/failure and scrubs every secret the
// package has seen from their messages.
type classifyingProvider struct {
	inner   auth.TokenProvider
	secrets *secrets
}

func (p *classifyingProvider) Token(ctx context.Context) (*auth.Token, error) {
	tok, err := p.inner.Token(ctx)
	if err == nil {
		p.secrets.add(tok.Value)
		return tok, nil
	}
	return nil, classify(&scrubbed{msg: p.secrets.scrub(err.Error()), err: err})
}

// scrubbed shows a message with the secrets removed and keeps the chain for errors.As.
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// classify: the endpoints' 429 is throttling; a refused federation (4xx) and an unreachable
// endpoint (5xx, network) are transient for the pipeline, since they are not a message's
// fault and an operator can fix them while the queues hold the work.
func classify(err error) error {
	var fe *failure.Error
	if errors.As(err, &fe) {
		return &failure.Error{Class: fe.Class, Reason: fe.Reason, RetryAfter: fe.RetryAfter, Err: err}
	}
	var ee *EndpointError
	if errors.As(err, &ee) {
		switch {
		case ee.StatusCode == http.StatusTooManyRequests:
			return failure.ThrottledAfter("GoogleTokenThrottled", 0, err)
		case ee.StatusCode >= 500:
			return failure.New(failure.Transient, "GoogleTokenUnavailable", err)
		default:
			return failure.New(failure.Transient, "GoogleTokenRejected", err)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return failure.New(failure.Transient, "GoogleTokenUnavailable", err)
}
