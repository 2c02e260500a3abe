package vision

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const secretKey = "k3y-VERY-secret-0123456789"

// verbs are every fmt verb a careless log line might use.
var verbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"}

func assertRedacted(t *testing.T, what string, v any, secret string) {
	t.Helper()
	for _, verb := range verbs {
		for _, s := range []string{fmt.Sprintf(verb, v), fmt.Sprintf(verb, []any{v}), fmt.Sprintf(verb, struct{ C any }{v})} {
			if strings.Contains(s, secret) || strings.Contains(strings.ToLower(s), strings.ToLower(fmt.Sprintf("%x", secret))) {
				t.Errorf("%s printed with %s reveals the secret: %s", what, verb, s)
			}
		}
	}
}

func writeFile(t *testing.T, path, content string, mod time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func TestKeyCredential(t *testing.T) {
	if _, err := NewKeyCredential("  \n"); err == nil {
		t.Fatal("empty key accepted")
	}
	c, err := NewKeyCredential(" " + secretKey + "\n")
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if err := c.authorize(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if got := h.Get(HeaderSubscriptionKey); got != secretKey {
		t.Fatalf("header = %q", got)
	}
	if changed, err := c.refresh(context.Background()); changed || err != nil {
		t.Fatalf("refresh = %v, %v; want false, nil", changed, err)
	}
	assertRedacted(t, "key credential", c, secretKey)
}

func TestKeyFileCredentialReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	if _, err := NewKeyFileCredential(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
	writeFile(t, path, "\n", t0)
	if _, err := NewKeyFileCredential(path); err == nil {
		t.Fatal("empty file accepted")
	}

	writeFile(t, path, "key-one\n", t0)
	c, err := NewKeyFileCredential(path)
	if err != nil {
		t.Fatal(err)
	}
	key := func() string {
		h := http.Header{}
		if err := c.authorize(context.Background(), h); err != nil {
			t.Fatal(err)
		}
		return h.Get(HeaderSubscriptionKey)
	}
	if got := key(); got != "key-one" {
		t.Fatalf("key = %q, want key-one", got)
	}
	// Rotated: new mtime.
	writeFile(t, path, "key-two", t0.Add(time.Minute))
	if got := key(); got != "key-two" {
		t.Fatalf("after rotation key = %q, want key-two", got)
	}
	// Same size and mtime: not re-read until a refresh forces it.
	writeFile(t, path, "key-3x3", t0.Add(time.Minute))
	if got := key(); got != "key-two" {
		t.Fatalf("unchanged stat re-read the file: key = %q", got)
	}
	changed, err := c.refresh(context.Background())
	if err != nil || !changed {
		t.Fatalf("refresh = %v, %v; want true, nil", changed, err)
	}
	if got := key(); got != "key-3x3" {
		t.Fatalf("after refresh key = %q, want key-3x3", got)
	}
	if changed, _ := c.refresh(context.Background()); changed {
		t.Fatal("refresh of an unchanged file reported a change")
	}
	// The file disappears mid-rotation: keep the last good key.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := key(); got != "key-3x3" {
		t.Fatalf("missing file: key = %q, want the last good key", got)
	}
	if _, err := c.refresh(context.Background()); err == nil {
		t.Fatal("refresh of a missing file succeeded")
	}
	writeFile(t, path, secretKey, t0)
	c2, err := NewKeyFileCredential(path)
	if err != nil {
		t.Fatal(err)
	}
	assertRedacted(t, "key file credential", c2, secretKey)
	if !strings.Contains(fmt.Sprint(c2), path) {
		t.Errorf("String() should name the file: %s", c2)
	}
}

func TestKeyFileFollowsSymlinkSwap(t *testing.T) {
	// A Kubernetes secret volume: key -> ..data/key, and ..data is swapped atomically.
	dir := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "v1", "key"), "old-key", time.Unix(1000, 0))
	writeFile(t, filepath.Join(dir, "v2", "key"), "new-key", time.Unix(2000, 0))
	if err := os.Symlink("v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "key"), filepath.Join(dir, "key")); err != nil {
		t.Fatal(err)
	}
	c, err := NewKeyFileCredential(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if err := c.authorize(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if got := h.Get(HeaderSubscriptionKey); got != "new-key" {
		t.Fatalf("key after swap = %q, want new-key", got)
	}
}

type fakeTokens struct {
	tokens []string
	exp    time.Time
	calls  int
	err    error
}

func (f *fakeTokens) Token(context.Context) (string, time.Time, error) {
	if f.err != nil {
		return "", time.Time{}, f.err
	}
	tok := f.tokens[min(f.calls, len(f.tokens)-1)]
	f.calls++
	return tok, f.exp, nil
}

func TestTokenCredentialCaches(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	src := &fakeTokens{tokens: []string{"tok-1", "tok-2"}, exp: now.Add(time.Hour)}
	c := NewTokenCredential(src).(*tokenCredential)
	c.now = func() time.Time { return now }
	auth := func() string {
		h := http.Header{}
		if err := c.authorize(context.Background(), h); err != nil {
			t.Fatal(err)
		}
		return h.Get("Authorization")
	}
	if got := auth(); got != "Bearer tok-1" {
		t.Fatalf("Authorization = %q", got)
	}
	auth()
	if src.calls != 1 {
		t.Fatalf("token fetched %d times, want 1 (cached)", src.calls)
	}
	// Within the refresh margin of expiry: fetch again.
	now = now.Add(59 * time.Minute)
	if got := auth(); got != "Bearer tok-2" {
		t.Fatalf("near expiry Authorization = %q, want tok-2", got)
	}
	// After a 401: drop the cache; an identical token is reported as unchanged.
	changed, err := c.refresh(context.Background())
	if err != nil || changed {
		t.Fatalf("refresh = %v, %v; want false (same token), nil", changed, err)
	}
	assertRedacted(t, "token credential", c, "tok-2")

	// Unknown expiry: never cached.
	src2 := &fakeTokens{tokens: []string{"a"}}
	c2 := NewTokenCredential(src2)
	for range 3 {
		if err := c2.authorize(context.Background(), http.Header{}); err != nil {
			t.Fatal(err)
		}
	}
	if src2.calls != 3 {
		t.Fatalf("token with unknown expiry fetched %d times, want 3", src2.calls)
	}
	// A failing source is a transient NoCredential error.
	c3 := NewTokenCredential(&fakeTokens{err: fmt.Errorf("sidecar down")})
	err = c3.authorize(context.Background(), http.Header{})
	if err == nil || !strings.Contains(err.Error(), "NoCredential (transient)") {
		t.Fatalf("authorize = %v, want NoCredential (transient)", err)
	}
}

func jwt(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(payload)) + "." + enc([]byte("sig"))
}

func TestJWTExpiry(t *testing.T) {
	tests := []struct {
		tok  string
		want time.Time
	}{
		{jwt(`{"exp":1700000000,"aud":"https://cognitiveservices.azure.com"}`), time.Unix(1700000000, 0)},
		{jwt(`{"exp":1700000000.5}`), time.Unix(1700000000, 0)},
		{jwt(`{"aud":"x"}`), time.Time{}},
		{jwt(`{"exp":"soon"}`), time.Time{}},
		{jwt(`{"exp":-5}`), time.Time{}},
		{jwt(`not json`), time.Time{}},
		{"opaque-token", time.Time{}},
		{"a.b!.c", time.Time{}},
	}
	for _, tt := range tests {
		if got := jwtExpiry(tt.tok); !got.Equal(tt.want) {
			t.Errorf("jwtExpiry(%q) = %v, want %v", tt.tok, got, tt.want)
		}
	}
}

func FuzzJWTExpiry(f *testing.F) {
	f.Add(jwt(`{"exp":1700000000}`))
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		if exp := jwtExpiry(tok); !exp.IsZero() && exp.Before(time.Unix(0, 0)) {
			t.Fatalf("negative expiry %v", exp)
		}
	})
}

func TestFileTokenSource(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	s := NewFileTokenSource(path)
	if _, _, err := s.Token(context.Background()); err == nil {
		t.Fatal("missing file accepted")
	}
	tok1 := jwt(`{"exp":1700000000}`)
	writeFile(t, path, tok1+"\n", time.Unix(1000, 0))
	got, exp, err := s.Token(context.Background())
	if err != nil || got != tok1 || !exp.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("Token = %q, %v, %v", got, exp, err)
	}
	writeFile(t, path, "opaque", time.Unix(2000, 0))
	got, exp, err = s.Token(context.Background())
	if err != nil || got != "opaque" || !exp.IsZero() {
		t.Fatalf("after rewrite Token = %q, %v, %v", got, exp, err)
	}
	writeFile(t, path, "", time.Unix(3000, 0))
	if _, _, err := s.Token(context.Background()); err == nil {
		t.Fatal("empty token file accepted")
	}
	writeFile(t, path, "opaque", time.Unix(4000, 0))
	if _, _, err := s.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertRedacted(t, "file token source", s, "opaque")
}
