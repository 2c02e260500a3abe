package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"imgpipe/internal/devstack"
	"imgpipe/internal/stacktest"
	"imgpipe/pkg/config"
	"imgpipe/pkg/console"
)

func TestMain(m *testing.M) { stacktest.Main(m, devstack.S3|devstack.SQS|devstack.Firestore) }

// clearEnv empties every variable the console reads, then sets the given ones.
func clearEnv(t *testing.T, kv ...string) {
	t.Helper()
	for _, name := range newSet(&settings{}).Env() {
		t.Setenv(name, "")
	}
	for i := 0; i+1 < len(kv); i += 2 {
		t.Setenv(kv[i], kv[i+1])
	}
}

// A missing or invalid setting stops the console at start with one line naming it.
func TestBadSettingsAreOneClearLine(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("# no token here\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An AWS external_account file as the Terraform writes it for pods outside GKE, but of a
	// version Google's library does not know.
	federation := filepath.Join(dir, "credentials.json")
	if err := os.WriteFile(federation, []byte(`{"type": "external_account",
		"audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/imgpipe-aws/providers/aws",
		"subject_token_type": "urn:ietf:params:aws:token-type:aws4_request", "token_url": "https://sts.googleapis.com/v1/token",
		"credential_source": {"environment_id": "aws2", "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
		env  []string // besides the valid settings below
	}{
		{"no bucket", []string{"--bucket", ""}, "missing setting --bucket (IMGPIPE_BUCKET)", nil},
		{"exposed without auth", []string{"--addr", "0.0.0.0:8080"}, "invalid setting --addr (IMGPIPE_CONSOLE_ADDR)", nil},
		{"exposed on all interfaces", []string{"--addr", ":8080"}, "is not loopback", nil},
		{"no token file", []string{"--token-file", filepath.Join(dir, "none")}, "invalid setting --token-file (IMGPIPE_CONSOLE_TOKEN_FILE)", nil},
		{"short token", []string{"--token-file", short}, "use at least 16", nil},
		{"file without token", []string{"--token-file", empty}, "holds no token", nil},
		{"bad proxies", []string{"--trusted-proxies", "10.0.0.0/8,proxy.internal"}, "invalid setting --trusted-proxies (IMGPIPE_CONSOLE_TRUSTED_PROXIES)", nil},
		{"presigned URLs for too long", []string{"--presign-ttl", "200h"}, "invalid setting --presign-ttl (IMGPIPE_CONSOLE_PRESIGN_TTL)", nil},
		{"bad rate", []string{"--rate", "0"}, "invalid setting --rate (IMGPIPE_CONSOLE_RATE)", nil},
		{"bad prefix", []string{"--prefix", "/upload/"}, "invalid setting --prefix (IMGPIPE_PREFIX)", nil},
		{"bad queue URL", []string{"--queue-url", "image-events"}, "invalid setting --queue-url (IMGPIPE_QUEUE_URL)", nil},
		{"bad CORS origin", []string{"--cors-origins", "dashboard.example.com"}, "CORS origin", nil},
		{"an argument", []string{"serve"}, "takes no arguments", nil},
		{"unreadable Google credentials", nil, "invalid setting GOOGLE_APPLICATION_CREDENTIALS",
			[]string{"GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(dir, "none.json")}},
		// pkg/gcpauth reads AWS external_account files itself (their AWS side is the SDK's chain).
		{"AWS federation of an unknown version", nil, `environment_id "aws2" is not supported`,
			[]string{"GOOGLE_APPLICATION_CREDENTIALS", federation}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t, append([]string{"IMGPIPE_BUCKET", "images", "GOOGLE_CLOUD_PROJECT", "p", "AWS_REGION", "us-east-1",
				"AWS_ACCESS_KEY_ID", "x", "AWS_SECRET_ACCESS_KEY", "x", "FIRESTORE_EMULATOR_HOST", "127.0.0.1:1"}, tc.env...)...)
			// Bounded: a console that wrongly starts serving returns nil when this ends.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line containing %q", err, tc.want)
			}
		})
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	clearEnv(t)
	var b strings.Builder
	if err := run(context.Background(), []string{"--help"}, &b); !errors.Is(err, config.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, name := range newSet(&settings{}).Names() {
		if !strings.Contains(b.String(), "--"+name) {
			t.Errorf("--help lacks --%s", name)
		}
	}
}

// The command on the local stack: it serves on the address it prints, sets the bucket's CORS
// rule when asked, and stops cleanly when its context ends.
func TestServesAndStops(t *testing.T) {
	st := stacktest.Get(t)
	res := stacktest.Bootstrap(t, st, devstack.Resources{})
	env := []string{"IMGPIPE_CONSOLE_ADDR", "127.0.0.1:0", "IMGPIPE_CONSOLE_BUCKET_CORS", "http://127.0.0.1:8080,http://localhost:8080"}
	for _, e := range st.Env(res) {
		env = append(env, e.Name, e.Value)
	}
	clearEnv(t, env...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, nil, w)
		w.Close()
		done <- err
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("no address printed: %v (run: %v)", err, <-done)
	}
	go io.Copy(io.Discard, out)
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "console: serving ")
	if !ok {
		t.Fatalf("printed %q", line)
	}
	resp, err := http.Get(url + "api/v1/info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %sapi/v1/info: %d", url, resp.StatusCode)
	}
	cors, err := st.NewS3Client().GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: &res.Bucket})
	if err != nil || len(cors.CORSRules) != 1 || aws.ToString(cors.CORSRules[0].ID) != console.CORSRuleID || len(cors.CORSRules[0].AllowedOrigins) != 2 {
		t.Fatalf("bucket CORS: %v %+v", err, cors)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the console did not stop")
	}
}
