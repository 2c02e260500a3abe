package gcpauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Stand-ins of the three endpoints a federated token passes through: AWS STS (the SDK's web
// identity provider calls AssumeRoleWithWebIdentity on it), Google's security token service
// (token_url: it checks the signed GetCallerIdentity request in the subject token) and the
// IAM credentials service (the impersonation URL).

const (
	testRegion   = "eu-west-1"
	testRoleARN  = "arn:aws:iam::123456789012:role/imgpipe-analyzer"
	testAudience = "//iam.googleapis.com/projects/42/locations/global/workloadIdentityPools/imgpipe/providers/aws"
	testSA       = "imgpipe-analyzer@proj.iam.gserviceaccount.com"
	webIdentity  = "eyJhbGciOiJSUzI1NiJ9.projected-service-account-token.sig"
)

// issued AWS credentials, one set per AssumeRoleWithWebIdentity call.
type awsCreds struct{ id, secret, session string }

type awsSTS struct {
	t *testing.T
	// lifetime of the issued credentials.
	lifetime time.Duration

	mu     sync.Mutex
	issued []awsCreds
	fail   int // answer this status instead, when set
}

func (s *awsSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != 0 {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(s.fail)
		fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>token rejected</Message></Error><RequestId>r</RequestId></ErrorResponse>`)
		return
	}
	if r.Form.Get("Action") != "AssumeRoleWithWebIdentity" || r.Form.Get("RoleArn") != testRoleARN || r.Form.Get("WebIdentityToken") != webIdentity {
		s.t.Errorf("AWS STS got %v", r.Form)
		http.Error(w, "unexpected request", 400)
		return
	}
	n := len(s.issued) + 1
	c := awsCreds{id: fmt.Sprintf("ASIATEST%04d", n), secret: fmt.Sprintf("secret-key-%d-xyz", n), session: fmt.Sprintf("session-token-%d-abc", n)}
	s.issued = append(s.issued, c)
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult>
<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/imgpipe-analyzer/s</Arn><AssumedRoleId>AROATEST:s</AssumedRoleId></AssumedRoleUser>
<SubjectFromWebIdentityToken>system:serviceaccount:imgpipe:analyzer</SubjectFromWebIdentityToken>
</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r%d</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
		c.id, c.secret, c.session, time.Now().Add(s.lifetime).UTC().Format(time.RFC3339), n)
}

func (s *awsSTS) credsByID(id string) (awsCreds, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.issued {
		if c.id == id {
			return c, true
		}
	}
	return awsCreds{}, false
}

func (s *awsSTS) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.issued)
}

// googleSTS is the token exchange endpoint. It verifies the subject token: a URL-encoded JSON
// GetCallerIdentity request whose SigV4 signature must match the one the AWS SDK's own signer
// computes with the credentials AWS STS issued.
type googleSTS struct {
	t   *testing.T
	aws *awsSTS
	// expiresIn of the issued federated tokens, seconds.
	expiresIn int

	mu       sync.Mutex
	n        int
	keyIDs   []string // access key ID that signed each accepted subject token
	fail     int
	failBody string
}

func (s *googleSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.fail)
		body := strings.ReplaceAll(s.failBody, "SUBJECT", r.Form.Get("subject_token"))
		if n := s.aws.calls(); n > 0 {
			body = strings.ReplaceAll(body, "SESSION", s.aws.issued[n-1].session)
		}
		fmt.Fprint(w, body)
		return
	}
	f := r.Form
	want := map[string]string{
		"grant_type":           "urn:ietf:params:oauth:grant-type:token-exchange",
		"requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"subject_token_type":   "urn:ietf:params:aws:token-type:aws4_request",
		"audience":             testAudience,
	}
	for k, v := range want {
		if f.Get(k) != v {
			s.t.Errorf("token exchange: %s = %q, want %q", k, f.Get(k), v)
		}
	}
	keyID, err := s.verify(f.Get("subject_token"))
	if err != nil {
		s.t.Errorf("subject token: %v", err)
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":%q}`, err.Error())
		return
	}
	s.n++
	s.keyIDs = append(s.keyIDs, keyID)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"federated-%d","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":%d}`, s.n, s.expiresIn)
}

func (s *googleSTS) verify(subject string) (string, error) {
	raw, err := url.QueryUnescape(subject)
	if err != nil {
		return "", err
	}
	var req struct {
		URL     string `json:"url"`
		Method  string `json:"method"`
		Headers []struct {
			Key, Value string
		} `json:"headers"`
	}
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		return "", err
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		return "", err
	}
	if u.Host != "sts."+testRegion+".amazonaws.com" || u.Query().Get("Action") != "GetCallerIdentity" || req.Method != "POST" {
		return "", fmt.Errorf("not a GetCallerIdentity request: %s %s", req.Method, req.URL)
	}
	h := http.Header{}
	for _, kv := range req.Headers {
		h.Add(kv.Key, kv.Value)
	}
	if got := h.Get("X-Goog-Cloud-Target-Resource"); got != testAudience {
		return "", fmt.Errorf("x-goog-cloud-target-resource %q", got)
	}
	authz := h.Get("Authorization")
	_, after, ok := strings.Cut(authz, "Credential=")
	if !ok {
		return "", fmt.Errorf("no credential in %q", authz)
	}
	keyID, scope, _ := strings.Cut(after, "/")
	if !strings.Contains(scope, "/"+testRegion+"/sts/aws4_request,") {
		return "", fmt.Errorf("credential scope %q", scope)
	}
	creds, ok := s.aws.credsByID(keyID)
	if !ok {
		return "", fmt.Errorf("signed with %s, which AWS STS never issued", keyID)
	}
	if h.Get("X-Amz-Security-Token") != creds.session {
		return "", fmt.Errorf("session token is not the one issued with %s", keyID)
	}
	signedAt, err := time.Parse("20060102T150405Z", h.Get("X-Amz-Date"))
	if err != nil {
		return "", err
	}
	if d := time.Since(signedAt); d > 15*time.Minute || d < -time.Minute {
		return "", fmt.Errorf("signed %s ago", d)
	}
	// Sign the same request with the AWS SDK's signer and compare.
	check, err := http.NewRequest(req.Method, req.URL, nil)
	if err != nil {
		return "", err
	}
	for k, vs := range h {
		if k == "Authorization" {
			continue
		}
		check.Header[k] = vs
	}
	empty := sha256.Sum256(nil)
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{
		AccessKeyID: creds.id, SecretAccessKey: creds.secret, SessionToken: creds.session,
	}, check, hex.EncodeToString(empty[:]), "sts", testRegion, signedAt)
	if err != nil {
		return "", err
	}
	if got, want := authz, check.Header.Get("Authorization"); got != want {
		return "", fmt.Errorf("signature mismatch:\n got %s\nwant %s", got, want)
	}
	return keyID, nil
}

func (s *googleSTS) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// impersonation is the IAM credentials generateAccessToken endpoint.
type impersonation struct {
	t *testing.T
	// lifetime of the issued service account tokens.
	lifetime time.Duration

	mu    sync.Mutex
	n     int
	bears []string
}

func (s *impersonation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/projects/-/serviceAccounts/"+testSA+":generateAccessToken" {
		s.t.Errorf("impersonation path %s", r.URL.Path)
	}
	var body struct {
		Scope []string `json:"scope"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.bears = append(s.bears, r.Header.Get("Authorization"))
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"accessToken":"sa-token-%d","expireTime":%q}`, s.n, time.Now().Add(s.lifetime).UTC().Format(time.RFC3339))
}

func (s *impersonation) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// fixture is the three stand-ins and an environment pointing the AWS SDK's default chain at
// the web identity path.
type fixture struct {
	aws    *awsSTS
	google *googleSTS
	imp    *impersonation
	file   string // the external_account file
	env    map[string]string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{}
	f.aws = &awsSTS{t: t, lifetime: time.Hour}
	f.google = &googleSTS{t: t, aws: f.aws, expiresIn: 3600}
	f.imp = &impersonation{t: t, lifetime: time.Hour}
	awsSrv := httptest.NewServer(f.aws)
	googleSrv := httptest.NewServer(f.google)
	impSrv := httptest.NewServer(f.imp)
	t.Cleanup(awsSrv.Close)
	t.Cleanup(googleSrv.Close)
	t.Cleanup(impSrv.Close)

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(webIdentity), 0o600); err != nil {
		t.Fatal(err)
	}
	f.file = filepath.Join(dir, "external-account.json")
	writeConfig(t, f.file, googleSrv.URL+"/v1/token", impSrv.URL+"/v1/projects/-/serviceAccounts/"+testSA+":generateAccessToken")

	// Only the web identity path of the default chain can find credentials.
	f.env = map[string]string{
		"GOOGLE_APPLICATION_CREDENTIALS":         f.file,
		"AWS_REGION":                             testRegion,
		"AWS_ROLE_ARN":                           testRoleARN,
		"AWS_ROLE_SESSION_NAME":                  "s",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            tokenFile,
		"AWS_ENDPOINT_URL_STS":                   awsSrv.URL,
		"AWS_ACCESS_KEY_ID":                      "",
		"AWS_SECRET_ACCESS_KEY":                  "",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_PROFILE":                            "",
		"AWS_CONFIG_FILE":                        filepath.Join(dir, "no-config"),
		"AWS_SHARED_CREDENTIALS_FILE":            filepath.Join(dir, "no-credentials"),
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
	}
	for k, v := range f.env {
		t.Setenv(k, v)
	}
	return f
}

func writeConfig(t *testing.T, path, tokenURL, impURL string) {
	t.Helper()
	cfg := map[string]any{
		"type":                              "external_account",
		"audience":                          testAudience,
		"subject_token_type":                "urn:ietf:params:aws:token-type:aws4_request",
		"token_url":                         tokenURL,
		"service_account_impersonation_url": impURL,
		"credential_source": map[string]any{
			"environment_id":                 "aws1",
			"region_url":                     "http://169.254.169.254/latest/meta-data/placement/availability-zone",
			"url":                            "http://169.254.169.254/latest/meta-data/iam/security-credentials",
			"regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
		},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
