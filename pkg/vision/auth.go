package vision

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"imgpipe/pkg/failure"
)

// HeaderSubscriptionKey is the header that carries a subscription key.
const HeaderSubscriptionKey = "Ocp-Apim-Subscription-Key"

const redacted = "[REDACTED]"

// maxSecretFileSize bounds how much of a key or token file is read.
const maxSecretFileSize = 64 << 10

// Credential authorises requests to Azure AI Vision. Build one with NewKeyCredential,
// NewKeyFileCredential, NewTokenCredential or NewWorkloadIdentityCredential. Every implementation redacts its secret
// when printed with any fmt verb.
type Credential interface {
	// authorize sets the request's auth header.
	authorize(ctx context.Context, h http.Header) error
	// refresh is called after a 401: it drops cached material, reloads it and reports
	// whether what authorize sends has changed (so one more attempt may succeed).
	refresh(ctx context.Context) (changed bool, err error)
	// scrub removes the current secret from s, for messages echoed by the server.
	scrub(s string) string
}

// errNoCredential classifies a missing or unreadable credential: an operator must fix it,
// and it is not the image's fault, so it is transient.
func errNoCredential(err error) error {
	return failure.New(failure.Transient, "NoCredential", err)
}

// scrubSecret replaces every occurrence of secret in s.
func scrubSecret(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, redacted)
}

// ---- a key supplied directly ----

type keyCredential struct{ key string }

// NewKeyCredential returns a credential that sends key in the Ocp-Apim-Subscription-Key
// header. Surrounding white space is trimmed; an empty key is an error.
func NewKeyCredential(key string) (Credential, error) {
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, errors.New("vision: empty subscription key")
	}
	return &keyCredential{key: key}, nil
}

func (k *keyCredential) authorize(_ context.Context, h http.Header) error {
	h.Set(HeaderSubscriptionKey, k.key)
	return nil
}

func (k *keyCredential) refresh(context.Context) (bool, error) { return false, nil }
func (k *keyCredential) scrub(s string) string                 { return scrubSecret(s, k.key) }

// String redacts the key.
func (k *keyCredential) String() string { return "vision.KeyCredential(" + redacted + ")" }

// GoString redacts the key.
func (k *keyCredential) GoString() string { return k.String() }

// Format redacts the key for every verb.
func (k *keyCredential) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// ---- a key read from a file ----

// keyFileCredential reads the key from a file and reloads it when the file changes (a
// Kubernetes secret volume swaps a symlink, which changes the target's mtime), and after
// every 401.
type keyFileCredential struct {
	path string

	mu      sync.Mutex
	key     string
	modTime time.Time
	size    int64
}

// NewKeyFileCredential returns a credential that sends the key held in the file at path
// (white space trimmed). The file is read now, so that a missing or empty file is reported
// at start, and read again whenever its modification time or size changes, and after a 401.
func NewKeyFileCredential(path string) (Credential, error) {
	k := &keyFileCredential{path: path}
	if _, err := k.load(true); err != nil {
		return nil, err
	}
	return k, nil
}

// load reads the file when force is set or it changed since the last read, and reports
// whether the key changed. On a read failure it keeps the last good key, if any.
func (k *keyFileCredential) load(force bool) (changed bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fi, err := os.Stat(k.path)
	if err != nil {
		return false, fmt.Errorf("vision key file: %w", err)
	}
	if !force && k.key != "" && fi.ModTime().Equal(k.modTime) && fi.Size() == k.size {
		return false, nil
	}
	key, err := readSecretFile(k.path)
	if err != nil {
		return false, fmt.Errorf("vision key file: %w", err)
	}
	if key == "" {
		return false, fmt.Errorf("vision key file %s is empty", k.path)
	}
	changed = key != k.key
	k.key, k.modTime, k.size = key, fi.ModTime(), fi.Size()
	return changed, nil
}

func (k *keyFileCredential) authorize(_ context.Context, h http.Header) error {
	if _, err := k.load(false); err != nil {
		k.mu.Lock()
		key := k.key
		k.mu.Unlock()
		if key == "" {
			return errNoCredential(err)
		}
		// A file briefly missing mid-rotation: keep using the last good key.
	}
	k.mu.Lock()
	h.Set(HeaderSubscriptionKey, k.key)
	k.mu.Unlock()
	return nil
}

func (k *keyFileCredential) refresh(context.Context) (bool, error) {
	changed, err := k.load(true)
	if err != nil {
		return false, errNoCredential(err)
	}
	return changed, nil
}

func (k *keyFileCredential) scrub(s string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return scrubSecret(s, k.key)
}

// String names the file and redacts the key.
func (k *keyFileCredential) String() string {
	return fmt.Sprintf("vision.KeyFileCredential(%s, key %s)", k.path, redacted)
}

// GoString names the file and redacts the key.
func (k *keyFileCredential) GoString() string { return k.String() }

// Format names the file and redacts the key for every verb.
func (k *keyFileCredential) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretFileSize {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecretFileSize)
	}
	return string(bytes.TrimSpace(b)), nil
}

// ---- an Entra ID bearer token ----

// TokenSource supplies Entra ID access tokens for the scope
// https://cognitiveservices.azure.com/.default. Token returns the token and when it
// expires; a zero expiry means unknown, and the token is then asked for on every request.
// Implementations must be safe for concurrent use.
type TokenSource interface {
	Token(ctx context.Context) (token string, expires time.Time, err error)
}

// tokenRefreshMargin is how long before its expiry a cached token is replaced.
const tokenRefreshMargin = 2 * time.Minute

type tokenCredential struct {
	src  TokenSource
	now  func() time.Time
	desc string // what the token comes from, never the token

	mu      sync.Mutex
	token   string
	expires time.Time
}

// NewTokenCredential returns a credential that sends "Authorization: Bearer <token>" with
// tokens from src, cached until two minutes before they expire and dropped after a 401.
func NewTokenCredential(src TokenSource) Credential {
	desc := ""
	if fs, ok := src.(*FileTokenSource); ok {
		desc = "token file " + fs.path
	}
	return newTokenCredential(src, desc)
}

func newTokenCredential(src TokenSource, desc string) *tokenCredential {
	return &tokenCredential{src: src, now: time.Now, desc: desc}
}

func (c *tokenCredential) current(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && !c.expires.IsZero() && c.now().Before(c.expires.Add(-tokenRefreshMargin)) {
		return c.token, nil
	}
	if c.src == nil {
		return "", errNoCredential(errors.New("vision: nil TokenSource"))
	}
	tok, exp, err := c.src.Token(ctx)
	if err != nil {
		return "", errNoCredential(fmt.Errorf("vision token: %w", err))
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", errNoCredential(errors.New("vision token: empty"))
	}
	c.token, c.expires = tok, exp
	return tok, nil
}

func (c *tokenCredential) authorize(ctx context.Context, h http.Header) error {
	tok, err := c.current(ctx)
	if err != nil {
		return err
	}
	h.Set("Authorization", "Bearer "+tok)
	return nil
}

func (c *tokenCredential) refresh(ctx context.Context) (bool, error) {
	c.mu.Lock()
	old := c.token
	c.token, c.expires = "", time.Time{}
	c.mu.Unlock()
	tok, err := c.current(ctx)
	if err != nil {
		return false, err
	}
	return tok != old, nil
}

func (c *tokenCredential) scrub(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return scrubSecret(s, c.token)
}

// String says where the tokens come from and redacts the token.
func (c *tokenCredential) String() string {
	if c.desc == "" {
		return "vision.TokenCredential(" + redacted + ")"
	}
	return "vision.TokenCredential(" + c.desc + ", token " + redacted + ")"
}

// GoString redacts the token.
func (c *tokenCredential) GoString() string { return c.String() }

// Format redacts the token for every verb.
func (c *tokenCredential) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// FileTokenSource reads an access token from a file, such as one a sidecar or an init
// container keeps fresh. It re-reads the file when its modification time or size changes.
// The expiry is the token's "exp" claim when the token is a JWT, otherwise unknown (zero).
// It is not a workload identity federation flow: the file must hold an access token for
// Azure AI Vision, not a federated token to exchange.
type FileTokenSource struct {
	path string

	mu      sync.Mutex
	token   string
	expires time.Time
	modTime time.Time
	size    int64
}

// NewFileTokenSource returns a FileTokenSource for the file at path. It does not read it yet.
func NewFileTokenSource(path string) *FileTokenSource { return &FileTokenSource{path: path} }

// Token returns the token in the file and its expiry.
func (s *FileTokenSource) Token(context.Context) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.path)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token file: %w", err)
	}
	if s.token != "" && fi.ModTime().Equal(s.modTime) && fi.Size() == s.size {
		return s.token, s.expires, nil
	}
	tok, err := readSecretFile(s.path)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token file: %w", err)
	}
	if tok == "" {
		return "", time.Time{}, fmt.Errorf("token file %s is empty", s.path)
	}
	s.token, s.expires, s.modTime, s.size = tok, jwtExpiry(tok), fi.ModTime(), fi.Size()
	return s.token, s.expires, nil
}

// String names the file and redacts the token.
func (s *FileTokenSource) String() string {
	return fmt.Sprintf("vision.FileTokenSource(%s, token %s)", s.path, redacted)
}

// GoString names the file and redacts the token.
func (s *FileTokenSource) GoString() string { return s.String() }

// Format names the file and redacts the token for every verb.
func (s *FileTokenSource) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// jwtExpiry returns the "exp" claim of a JWT without verifying it (the server does), or
// the zero time when tok is not a JWT with a numeric exp.
func jwtExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return time.Time{}
	}
	f, err := claims.Exp.Float64()
	if err != nil || f <= 0 || f > 1<<40 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}

// ---- Entra ID workload identity federation (no key, no token file to keep fresh) ----

// CognitiveServicesScope is the scope of Entra ID access tokens for Azure AI Vision.
const CognitiveServicesScope = "https://cognitiveservices.azure.com/.default"

// WorkloadIdentityOptions tunes NewWorkloadIdentityCredential. A nil *WorkloadIdentityOptions
// takes the defaults.
type WorkloadIdentityOptions struct {
	// AuthorityHost is the Entra ID authority, https only. Default: AZURE_AUTHORITY_HOST,
	// else the public cloud's https://login.microsoftonline.com/.
	AuthorityHost string
	// HTTPClient sends the discovery and token requests. Default: the Azure SDK's.
	HTTPClient *http.Client
	// DisableInstanceDiscovery skips the authority validation request to the public cloud,
	// for disconnected or private authorities (and the tests' local one).
	DisableInstanceDiscovery bool
}

// NewWorkloadIdentityCredential returns a credential that sends Entra ID access tokens for
// Azure AI Vision obtained by workload identity federation: azidentity exchanges the
// federated token in tokenFile (a projected Kubernetes service account token on AKS, EKS or
// GKE; any OIDC token the app registration or managed identity trusts) for an access token of
// clientID in tenantID. The file is re-read as the kubelet rotates it; tokens are cached and
// replaced before they expire (azidentity renews them when less than five minutes are left,
// this package two minutes before expiry at the latest).
func NewWorkloadIdentityCredential(tenantID, clientID, tokenFile string, opts *WorkloadIdentityOptions) (Credential, error) {
	switch {
	case strings.TrimSpace(tenantID) == "":
		return nil, errors.New("vision: workload identity needs a tenant ID")
	case strings.TrimSpace(clientID) == "":
		return nil, errors.New("vision: workload identity needs a client ID")
	case strings.TrimSpace(tokenFile) == "":
		return nil, errors.New("vision: workload identity needs a federated token file")
	}
	if _, err := os.Stat(tokenFile); err != nil {
		return nil, fmt.Errorf("vision federated token file: %w", err)
	}
	o := WorkloadIdentityOptions{}
	if opts != nil {
		o = *opts
	}
	wo := &azidentity.WorkloadIdentityCredentialOptions{
		TenantID: tenantID, ClientID: clientID, TokenFilePath: tokenFile,
		DisableInstanceDiscovery: o.DisableInstanceDiscovery,
	}
	if o.AuthorityHost != "" {
		wo.ClientOptions.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: o.AuthorityHost}
	}
	if o.HTTPClient != nil {
		wo.ClientOptions.Transport = o.HTTPClient
	}
	cred, err := azidentity.NewWorkloadIdentityCredential(wo)
	if err != nil {
		return nil, fmt.Errorf("vision workload identity: %w", err)
	}
	src := &entraTokenSource{
		cred: cred, file: tokenFile,
		desc: fmt.Sprintf("workload identity federation, tenant %s, client %s, federated token file %s", tenantID, clientID, tokenFile),
	}
	return newTokenCredential(src, src.desc), nil
}

// entraTokenSource adapts an azcore.TokenCredential to TokenSource.
type entraTokenSource struct {
	cred azcore.TokenCredential
	file string // the federated token, scrubbed from errors
	desc string
}

func (s *entraTokenSource) Token(ctx context.Context) (string, time.Time, error) {
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{CognitiveServicesScope}})
	if err != nil {
		// azidentity quotes the token endpoint's whole answer, which may echo the
		// federated token: keep the message, without it.
		msg := err.Error()
		if fed, rerr := readSecretFile(s.file); rerr == nil {
			msg = scrubSecret(msg, fed)
		}
		return "", time.Time{}, errors.New("entra workload identity: " + msg)
	}
	return tok.Token, tok.ExpiresOn, nil
}
