package console_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"imgpipe/pkg/console"
)

const token = "0123456789abcdef-test-token"

// With tokens, the API needs one; the page, its assets and health do not. A token is never
// in any answer.
func TestBearerToken(t *testing.T) {
	e := newEnv(t, func(o *console.Options) { o.Auth.Tokens = []string{token, "another-token-0123456789"} })
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"none", "", 401},
		{"wrong token", "Bearer wrong-token-0123456789", 401},
		{"token as basic", "Basic " + token, 401},
		{"empty bearer", "Bearer ", 401},
		{"prefix of the token", "Bearer " + token[:10], 401},
		{"the token", "Bearer " + token, 200},
		{"the other token", "Bearer another-token-0123456789", 200},
		{"scheme in lower case", "bearer " + token, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "GET", "/api/v1/info", nil, "Authorization", tc.auth)
			if r.StatusCode != tc.status {
				t.Fatalf("%d, want %d: %s", r.StatusCode, tc.status, r.body)
			}
			if tc.status == 401 && (r.errorCode(t) != console.CodeUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer")) {
				t.Fatalf("401 without code or challenge: %v %s", r.Header, r.body)
			}
			if strings.Contains(string(r.body), token) {
				t.Fatal("the answer contains the token")
			}
		})
	}
	for _, path := range []string{"/", "/assets/app.js", "/healthz", "/api/v1/openapi.yaml"} {
		if r := e.do(t, "GET", path, nil); r.StatusCode != 200 {
			t.Errorf("public %s without a token: %d", path, r.StatusCode)
		}
	}
	for _, path := range []string{"/api/v1/images", "/api/v1/pipeline", "/api/v1/analysis?bucket=b&key=k"} {
		if r := e.do(t, "GET", path, nil); r.StatusCode != 401 {
			t.Errorf("%s without a token: %d", path, r.StatusCode)
		}
	}
	if r := e.do(t, "POST", "/api/v1/uploads", console.UploadRequest{Name: "a.png", Size: 5, Type: "image/png"}); r.StatusCode != 401 {
		t.Errorf("upload without a token: %d", r.StatusCode)
	}
}

// A trusted proxy's identity header is believed from its addresses only.
func TestTrustedProxy(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	e := newEnv(t, func(o *console.Options) {
		o.Auth.TrustedProxies = loopback
		o.Auth.IdentityHeader = "X-Auth-Request-User"
	})
	var info console.Info
	r := e.do(t, "GET", "/api/v1/info", nil, "X-Auth-Request-User", "alice@example.com")
	r.decode(t, &info)
	if r.StatusCode != 200 || info.User != "alice@example.com" || info.Auth != "proxy" {
		t.Fatalf("from the proxy: %d %+v", r.StatusCode, info)
	}
	if r := e.do(t, "GET", "/api/v1/info", nil); r.StatusCode != 401 {
		t.Fatalf("from the proxy without a user: %d", r.StatusCode)
	}
	for _, bad := range []string{"eve\u200b", strings.Repeat("e", 300)} {
		if r := e.do(t, "GET", "/api/v1/info", nil, "X-Auth-Request-User", bad); r.StatusCode != 401 {
			t.Fatalf("user name %q: %d", bad, r.StatusCode)
		}
	}

	// The same header from an address that is no trusted proxy counts for nothing.
	e = newEnv(t, func(o *console.Options) { o.Auth.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
	r = e.do(t, "GET", "/api/v1/info", nil, "X-Forwarded-User", "mallory")
	if r.StatusCode != 401 || !strings.Contains(string(r.body), "not a trusted proxy") {
		t.Fatalf("identity header from an untrusted address: %d %s", r.StatusCode, r.body)
	}
}

// Each client has its own budget; over it the answer is 429 with Retry-After.
func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	e := newEnv(t, func(o *console.Options) {
		o.RatePerSecond, o.RateBurst, o.Now = 1, 3, clock
		o.Auth.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	for i := range 3 {
		if r := e.do(t, "GET", "/api/v1/info", nil, "X-Forwarded-User", "alice"); r.StatusCode != 200 {
			t.Fatalf("request %d: %d", i+1, r.StatusCode)
		}
	}
	r := e.do(t, "GET", "/api/v1/info", nil, "X-Forwarded-User", "alice")
	if r.StatusCode != 429 || r.errorCode(t) != console.CodeRateLimited || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("fourth request: %d %v %s", r.StatusCode, r.Header, r.body)
	}
	if r := e.do(t, "GET", "/api/v1/info", nil, "X-Forwarded-User", "bob"); r.StatusCode != 200 {
		t.Fatalf("another user: %d", r.StatusCode)
	}
	if r := e.do(t, "GET", "/healthz", nil); r.StatusCode != 200 {
		t.Fatalf("health is not rate-limited: %d", r.StatusCode)
	}
	now = now.Add(time.Second)
	if r := e.do(t, "GET", "/api/v1/info", nil, "X-Forwarded-User", "alice"); r.StatusCode != 200 {
		t.Fatalf("a second later: %d", r.StatusCode)
	}
}

func TestCheckExposure(t *testing.T) {
	none := &console.Auth{}
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "127.0.0.2:1": true,
		"0.0.0.0:8080": false, ":8080": false, "10.1.2.3:8080": false, "[::]:8080": false, "example.com:80": false, "nonsense": false,
	} {
		if err := console.CheckExposure(addr, none); (err == nil) != ok {
			t.Errorf("CheckExposure(%q) without auth = %v, want ok=%v", addr, err, ok)
		}
	}
	if err := console.CheckExposure("0.0.0.0:8080", &console.Auth{Tokens: []string{token}}); err != nil {
		t.Errorf("with a token: %v", err)
	}
	if err := console.CheckExposure(":8080", &console.Auth{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}}); err != nil {
		t.Errorf("with a proxy: %v", err)
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := console.ParsePrefixes(" 10.0.0.0/8, 127.0.0.1 ,::1,192.168.1.77/24")
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range got {
		s = append(s, p.String())
	}
	if strings.Join(s, " ") != "10.0.0.0/8 127.0.0.1/32 ::1/128 192.168.1.0/24" {
		t.Fatalf("prefixes %v", s)
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", "1.2.3"} {
		if _, err := console.ParsePrefixes(bad); err == nil {
			t.Errorf("ParsePrefixes(%q) accepted", bad)
		}
	}
}
