package gcpauth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/gcpauth"
)

func load(t *testing.T) *gcpauth.Credentials {
	t.Helper()
	c, err := gcpauth.Load(context.Background(), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(c.ClientOptions("")) != 1 {
		t.Fatalf("an AWS external_account file must give the clients one credentials option, got %d", len(c.ClientOptions("")))
	}
	return c
}

// The whole path: the AWS SDK's default chain finds credentials through web identity (a
// projected token file and AssumeRoleWithWebIdentity, as on EKS), the subject token is a
// GetCallerIdentity request signed with them (verified by the token stand-in with the AWS
// SDK's own signer), the federated token is exchanged for a service account token.
func TestWebIdentityChainSignsSubjectToken(t *testing.T) {
	f := newFixture(t)
	c := load(t)
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if tok.Value != "sa-token-1" {
		t.Fatalf("token %q, want the impersonated service account's sa-token-1", tok.Value)
	}
	if f.aws.calls() != 1 || f.google.calls() != 1 || f.imp.calls() != 1 {
		t.Fatalf("calls: AWS STS %d, token exchange %d, impersonation %d; want 1 each", f.aws.calls(), f.google.calls(), f.imp.calls())
	}
	if got := f.google.keyIDs[0]; got != f.aws.issued[0].id {
		t.Fatalf("subject token signed with %s, want the web identity credentials %s", got, f.aws.issued[0].id)
	}
	if got := f.imp.bears[0]; got != "Bearer federated-1" {
		t.Fatalf("impersonation authorised with %q, want the federated token", got)
	}
	if s := c.String(); !strings.Contains(s, testSA) || !strings.Contains(s, "AWS") {
		t.Fatalf("description %q does not name the service account and AWS", s)
	}
}

func TestTokensAreCached(t *testing.T) {
	f := newFixture(t)
	c := load(t)
	for i := 0; i < 5; i++ {
		tok, err := c.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if tok.Value != "sa-token-1" {
			t.Fatalf("call %d: token %q, want the cached sa-token-1", i, tok.Value)
		}
	}
	if f.aws.calls() != 1 || f.google.calls() != 1 || f.imp.calls() != 1 {
		t.Fatalf("calls after 5 tokens: AWS STS %d, token exchange %d, impersonation %d; want 1 each", f.aws.calls(), f.google.calls(), f.imp.calls())
	}
}

// A token inside its refresh window is replaced while it is still valid: the caller gets the
// old one at once, and a later caller the new one.
func TestRefreshBeforeExpiry(t *testing.T) {
	f := newFixture(t)
	f.imp.lifetime = 2 * time.Minute // inside Google's 225 s refresh window, yet valid
	f.google.expiresIn = 120         // the federated token too
	c := load(t)
	first, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if first.Value != "sa-token-1" || !first.Expiry.After(time.Now().Add(time.Minute)) {
		t.Fatalf("first token %q expiring %s", first.Value, first.Expiry)
	}
	var got string
	waitFor(t, func() bool {
		tok, err := c.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = tok.Value
		return got != "sa-token-1"
	})
	if got != "sa-token-2" {
		t.Fatalf("token %q after the refresh window opened, want sa-token-2", got)
	}
	if f.imp.calls() != 2 || f.google.calls() != 2 {
		t.Fatalf("impersonation %d, token exchange %d calls; want 2 of each", f.imp.calls(), f.google.calls())
	}
}

// AWS credentials inside the renewal window are renewed for every new subject token.
func TestAWSCredentialsRenewed(t *testing.T) {
	f := newFixture(t)
	f.aws.lifetime = time.Minute // inside AWSCredentialsExpiryWindow: stale at once
	f.google.expiresIn = 60      // Google tokens stale at once too
	f.imp.lifetime = time.Minute
	c := load(t)
	for i := 0; i < 3; i++ {
		// Each token is inside Google's refresh window; wait until the background refresh
		// has happened before asking again, so that each round makes one exchange.
		before := f.google.calls()
		if _, err := c.Token(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return f.google.calls() > before })
	}
	if f.aws.calls() < 3 {
		t.Fatalf("AWS STS called %d times for %d exchanges; stale AWS credentials were reused", f.aws.calls(), f.google.calls())
	}
	seen := map[string]bool{}
	for _, id := range f.google.keyIDs {
		seen[id] = true
	}
	if len(seen) < 3 {
		t.Fatalf("subject tokens signed with %d distinct AWS keys (%v), want a new key per exchange", len(seen), f.google.keyIDs)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Failures are classified, and no message repeats a secret, even when an endpoint echoes the
// subject token (which carries the AWS session token) back.
func TestFailuresClassifiedWithoutSecrets(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(f *fixture)
		reason string
		class  failure.Class
	}{
		{"token exchange refuses", func(f *fixture) {
			f.google.fail = 400
			f.google.failBody = `{"error":"invalid_grant","error_description":"session SESSION: the given subject token SUBJECT is not trusted"}`
		}, "GoogleTokenRejected", failure.Transient},
		{"token exchange down", func(f *fixture) {
			f.google.fail = 503
			f.google.failBody = `{"error":{"status":"UNAVAILABLE","message":"backend error for SESSION in SUBJECT"}}`
		}, "GoogleTokenUnavailable", failure.Transient},
		{"token exchange throttles", func(f *fixture) {
			f.google.fail = 429
			f.google.failBody = `{"error":"rate_limit","error_description":"slow down"}`
		}, "GoogleTokenThrottled", failure.Throttled},
		{"AWS STS refuses the web identity token", func(f *fixture) { f.aws.fail = 400 }, "AWSCredentials", failure.Transient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			c := load(t)
			_, err := c.Token(context.Background())
			if err == nil {
				t.Fatal("Token succeeded")
			}
			if got := failure.ReasonOf(err); got != tc.reason {
				t.Fatalf("reason %q, want %q (%v)", got, tc.reason, err)
			}
			if got := failure.ClassOf(err); got != tc.class {
				t.Fatalf("class %s, want %s", got, tc.class)
			}
			var ee *gcpauth.EndpointError
			if tc.reason != "AWSCredentials" && !errors.As(err, &ee) {
				t.Fatalf("no *EndpointError in %v", err)
			}
			msg := err.Error() + fmt.Sprintf(" %v %+v %#v", err, err, err.Error())
			if ee != nil {
				msg += " " + ee.Code + " " + ee.Description
			}
			for _, secret := range []string{"secret-key-1-xyz", "session-token-1-abc", webIdentity} {
				if strings.Contains(msg, secret) {
					t.Fatalf("error leaks %q: %s", secret, msg)
				}
			}
		})
	}
}

func TestLeftToApplicationDefaultCredentials(t *testing.T) {
	dir := t.TempDir()
	sa := filepath.Join(dir, "sa.json")
	if err := os.WriteFile(sa, []byte(`{"type":"service_account","client_email":"x@p.iam.gserviceaccount.com"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	oidc := filepath.Join(dir, "oidc.json")
	if err := os.WriteFile(oidc, []byte(`{"type":"external_account","audience":"a","subject_token_type":"urn:ietf:params:oauth:token-type:jwt","credential_source":{"file":"/var/run/token"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"unset": "", "service account": sa, "file-sourced external account": oidc} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(gcpauth.EnvCredentials, path)
			c, err := gcpauth.Load(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(c.ClientOptions("")); n != 0 {
				t.Fatalf("%d client options, want none (Application Default Credentials)", n)
			}
			if c.String() != "application default credentials" {
				t.Fatalf("description %q", c.String())
			}
		})
	}
}

func TestEmulatorTakesNoCredentials(t *testing.T) {
	newFixture(t)
	c := load(t)
	t.Setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
	if n := len(c.ClientOptions("PUBSUB_EMULATOR_HOST")); n != 0 {
		t.Fatalf("%d options with the emulator set, want none", n)
	}
}

func TestInvalidSettings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]struct {
		path, region, want string
	}{
		"missing file":   {filepath.Join(dir, "nope.json"), testRegion, "invalid setting GOOGLE_APPLICATION_CREDENTIALS"},
		"not JSON":       {write("bad.json", "{"), testRegion, "not a JSON credentials file"},
		"aws2":           {write("aws2.json", `{"type":"external_account","audience":"a","subject_token_type":"t","credential_source":{"environment_id":"aws2"}}`), testRegion, `"aws2" is not supported`},
		"no audience":    {write("noaud.json", `{"type":"external_account","subject_token_type":"t","credential_source":{"environment_id":"aws1"}}`), testRegion, "audience and subject_token_type are required"},
		"no AWS region":  {write("ok.json", `{"type":"external_account","audience":"a","subject_token_type":"t","credential_source":{"environment_id":"aws1"}}`), "", "missing setting AWS_REGION"},
		"oversized file": {write("big.json", `{"type":"`+strings.Repeat("x", 70<<10)+`"}`), testRegion, "larger than"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			newFixture(t)
			t.Setenv(gcpauth.EnvCredentials, tc.path)
			t.Setenv("AWS_REGION", tc.region)
			t.Setenv("AWS_DEFAULT_REGION", "")
			_, err := gcpauth.Load(context.Background(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}
