package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestCheckKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"upload/a.jpg": true, "upload/ünï cødé+&=.png": true, "upload/a//b.png": true, "upload/..x/y.png": true, "a": true,
		"": false, "/upload/a.jpg": false, "upload/../b.jpg": false, "upload/./b.jpg": false, "..": false, "upload/..": false,
		"upload/\x00.jpg": false, "upload/\x7f.jpg": false, "upload/\n.jpg": false, "upload/\xff.jpg": false,
		strings.Repeat("k", 1024): true, strings.Repeat("k", 1025): false,
	} {
		if err := checkKey(key); (err == nil) != ok {
			t.Errorf("checkKey(%q) = %v, want ok=%v", key, err, ok)
		}
	}
}

func TestCheckNameTagBucketLimit(t *testing.T) {
	for name, ok := range map[string]bool{"a.jpg": true, "../../x.jpg": true, "": false, "   ": false, "a\xff.jpg": false, strings.Repeat("n", 1025): false} {
		if err := checkName(name); (err == nil) != ok {
			t.Errorf("checkName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
	for tag, ok := range map[string]bool{"": true, "cat": true, "sea water": true, "cat\t": false, "\xff": false, strings.Repeat("t", 257): false} {
		if err := checkTag(tag); (err == nil) != ok {
			t.Errorf("checkTag(%q) = %v, want ok=%v", tag, err, ok)
		}
	}
	for bucket, status := range map[string]int{"images": 0, "other": 404, "": 400, "Images": 400, "a": 400, "../x": 400, "-bad-": 400} {
		err := checkBucket(bucket, "images")
		got := 0
		if err != nil {
			got = err.Status
		}
		if got != status {
			t.Errorf("checkBucket(%q) = %v, want status %d", bucket, err, status)
		}
	}
	for in, want := range map[string]int{"": 24, "1": 1, "100": 100, "0": -1, "101": -1, "-3": -1, "x": -1, "10.5": -1} {
		n, err := parseLimit(in, 24, 100)
		if want < 0 && err == nil || want >= 0 && (err != nil || n != want) {
			t.Errorf("parseLimit(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
}

// The limiter map stays bounded, dropping the clients idle longest.
func TestClientLimitsBounded(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	c := newClientLimits(0.001, 1, 8, func() time.Time { return now })
	for i := range 8 {
		now = now.Add(time.Second)
		c.allow(string(rune('a' + i)))
	}
	if ok, _ := c.allow("a"); ok {
		t.Fatal("a second request of a within its budget")
	}
	now = now.Add(time.Millisecond)
	c.allow("new") // full: the idlest quarter (b, c, and one more) goes
	if n := c.size(); n > 8 || n < 5 {
		t.Fatalf("%d limiters after eviction", n)
	}
	if _, kept := c.m["a"]; !kept {
		t.Fatal("a was used last but one and was dropped")
	}
	if _, kept := c.m["b"]; kept {
		t.Fatal("b, idle longest, was kept")
	}
}

// A handler that panics answers 500 with a JSON error; the server goes on.
func TestPanicIsA500(t *testing.T) {
	s := &Server{log: zap.NewNop(), auth: newAuthenticator(Auth{}), limits: newClientLimits(10, 10, 10, time.Now), o: Options{Now: time.Now}}
	s.routes = []route{{Method: "GET", Path: "/api/v1/boom", handler: func(http.ResponseWriter, *http.Request) { panic("boom") }}}
	s.handler = s.serve()
	for range 2 {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/boom", nil))
		var body errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 500 || body.Error.Code != CodeInternal || body.Error.RequestID == "" {
			t.Fatalf("%d %s (%v)", rec.Code, rec.Body, err)
		}
	}
}
