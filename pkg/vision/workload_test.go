package vision

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"imgpipe/pkg/failure"

	"imgpipe/internal/devstack"
)

const (
	testTenant = "11111111-2222-3333-4444-555555555555"
	testClient = "66666666-7777-8888-9999-000000000000"
)

// entraStandIn is a local Entra ID: OpenID discovery and the v2.0 token endpoint, over TLS
// (azidentity refuses an authority without https). It accepts a client credentials grant
// whose client assertion is the federated token in the file.
type entraStandIn struct {
	t         *testing.T
	srv       *httptest.Server
	assertion string // the federated token the pod holds
	expiresIn int    // lifetime of issued access tokens, seconds

	mu      sync.Mutex
	issued  int
	fail    int
	seenFed []string
}

func newEntraStandIn(t *testing.T, assertion string) *entraStandIn {
	e := &entraStandIn{t: t, assertion: assertion, expiresIn: 3600}
	e.srv = httptest.NewTLSServer(e)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *entraStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	base := e.srv.URL + "/" + testTenant
	switch r.URL.Path {
	case "/" + testTenant + "/v2.0/.well-known/openid-configuration":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token_endpoint":%q,"authorization_endpoint":%q,"issuer":%q,"jwks_uri":%q,"response_types_supported":["code"],"subject_types_supported":["pairwise"],"id_token_signing_alg_values_supported":["RS256"]}`,
			base+"/oauth2/v2.0/token", base+"/oauth2/v2.0/authorize", "https://login.microsoftonline.com/"+testTenant+"/v2.0", base+"/discovery/v2.0/keys")
	case "/" + testTenant + "/oauth2/v2.0/token":
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		f := r.PostForm
		e.seenFed = append(e.seenFed, f.Get("client_assertion"))
		w.Header().Set("Content-Type", "application/json")
		if e.fail != 0 {
			w.WriteHeader(e.fail)
			fmt.Fprintf(w, `{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found for presented assertion %s","error_codes":[700213]}`, f.Get("client_assertion"))
			return
		}
		want := map[string]string{
			"grant_type":            "client_credentials",
			"client_id":             testClient,
			"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
			"client_assertion":      e.assertion,
		}
		for k, v := range want {
			if f.Get(k) != v {
				e.t.Errorf("token request %s = %q, want %q", k, f.Get(k), v)
			}
		}
		if !strings.Contains(f.Get("scope"), CognitiveServicesScope) {
			e.t.Errorf("token request scope %q, want %s", f.Get("scope"), CognitiveServicesScope)
		}
		e.issued++
		fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":%d,"ext_expires_in":%d,"access_token":"entra-token-%d"}`, e.expiresIn, e.expiresIn, e.issued)
	default:
		e.t.Errorf("unexpected Entra request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	}
}

func (e *entraStandIn) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.issued
}

func workloadCredential(t *testing.T, e *entraStandIn, tokenFile string) Credential {
	t.Helper()
	c, err := NewWorkloadIdentityCredential(testTenant, testClient, tokenFile, &WorkloadIdentityOptions{
		AuthorityHost: e.srv.URL + "/", HTTPClient: e.srv.Client(), DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func federatedTokenFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The whole path: the federated token from the file is exchanged at the (stand-in) Entra
// token endpoint, and the Vision stand-in accepts the access token.
func TestWorkloadIdentityAgainstStandIns(t *testing.T) {
	fed := "eyJhbGciOiJSUzI1NiJ9.projected-ksa-token.sig"
	e := newEntraStandIn(t, fed)
	cred := workloadCredential(t, e, federatedTokenFile(t, fed))
	s := newStandin(t, &devstack.VisionOptions{Tokens: []string{"entra-token-1"}}, nil, cred)
	for range 3 {
		if _, err := s.client.AnalyzeStream(context.Background(), streamBytes(testPNG(t))); err != nil {
			t.Fatalf("analyze with an Entra token: %v", err)
		}
	}
	if n := e.count(); n != 1 {
		t.Fatalf("%d token requests for 3 calls, want 1 (cached)", n)
	}
	str := fmt.Sprint(cred)
	for _, want := range []string{"workload identity", testTenant, testClient} {
		if !strings.Contains(str, want) {
			t.Fatalf("credential %q does not say %q", str, want)
		}
	}
	assertRedacted(t, "workload identity credential", cred, "entra-token-1")
	assertRedacted(t, "workload identity credential", cred, fed)
}

// A token close to its expiry is replaced before it expires.
func TestWorkloadIdentityRefreshesBeforeExpiry(t *testing.T) {
	fed := "federated"
	e := newEntraStandIn(t, fed)
	e.expiresIn = 90 // valid for 90 s: inside both refresh margins
	cred := workloadCredential(t, e, federatedTokenFile(t, fed))
	var got []string
	for range 3 {
		h := http.Header{}
		if err := cred.authorize(context.Background(), h); err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Get("Authorization"))
	}
	want := []string{"Bearer entra-token-1", "Bearer entra-token-2", "Bearer entra-token-3"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("headers %v, want a new token each time (%v)", got, want)
	}
}

// A refused federation is a transient NoCredential error (an operator fixes the federated
// credential; the message is not at fault) and never repeats the federated token.
func TestWorkloadIdentityRefused(t *testing.T) {
	fed := "eyJ.federated-secret-assertion.sig"
	e := newEntraStandIn(t, fed)
	e.fail = 401
	cred := workloadCredential(t, e, federatedTokenFile(t, fed))
	err := cred.authorize(context.Background(), http.Header{})
	if err == nil {
		t.Fatal("authorize succeeded")
	}
	if failure.ClassOf(err) != failure.Transient || failure.ReasonOf(err) != "NoCredential" {
		t.Fatalf("err %v: want a transient NoCredential", err)
	}
	if msg := fmt.Sprintf("%v %+v", err, err); strings.Contains(msg, fed) {
		t.Fatalf("error repeats the federated token: %s", msg)
	}
}

func TestWorkloadIdentityInvalidSettings(t *testing.T) {
	file := federatedTokenFile(t, "x")
	cases := map[string]struct{ tenant, client, file, authority, want string }{
		"no tenant":       {"", testClient, file, "", "tenant ID"},
		"no client":       {testTenant, "", file, "", "client ID"},
		"no file":         {testTenant, testClient, "", "", "federated token file"},
		"missing file":    {testTenant, testClient, file + ".nope", "", "no such file"},
		"plain authority": {testTenant, testClient, file, "http://127.0.0.1:1/", "https"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewWorkloadIdentityCredential(tc.tenant, tc.client, tc.file, &WorkloadIdentityOptions{AuthorityHost: tc.authority})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}
