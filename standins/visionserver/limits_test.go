package visionserver

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"imgpipe/internal/visionstandin"
)

func TestAnalyze40Errors(t *testing.T) {
	goodPNG := solidPNG(t, 100, 100, red)
	images := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok.png":
			_, _ = w.Write(goodPNG)
		case "/text":
			_, _ = w.Write([]byte("hello, not an image"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer images.Close()
	// An address where nothing listens: take a port, then free it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	_ = ln.Close()

	jsonHeader := map[string]string{"Ocp-Apim-Subscription-Key": visionstandin.DefaultKey, "Content-Type": "application/json"}
	tests := []struct {
		name        string
		path        string
		header      map[string]string
		body        any
		status      int
		code, inner string
		msgContains string
	}{
		{"svg is not a supported format", path40("tags"), keyHeader,
			`<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"/>`,
			400, CodeInvalidRequest, CodeInvalidImageFormat, ""},
		{"random bytes", path40("tags"), keyHeader, bytes.Repeat([]byte{0x42, 0x13, 0x99}, 1000),
			400, CodeInvalidRequest, CodeInvalidImageFormat, ""},
		{"truncated png", path40("tags"), keyHeader, goodPNG[:len(goodPNG)/2],
			400, CodeInvalidRequest, CodeInvalidImageFormat, ""},
		{"truncated jpeg", path40("tags"), keyHeader, func() []byte { j := encJPEG(t, solid(100, 100, red)); return j[:len(j)/2] }(),
			400, CodeInvalidRequest, CodeInvalidImageFormat, ""},
		{"50x50 is too small", path40("tags"), keyHeader, solidPNG(t, 50, 50, red),
			400, CodeInvalidRequest, CodeInvalidImageSize, "smaller than 50"},
		{"51x50 is too small", path40("tags"), keyHeader, solidPNG(t, 51, 50, red),
			400, CodeInvalidRequest, CodeInvalidImageSize, ""},
		{"16000 wide is too large", path40("tags"), keyHeader, pngHeaderOnly(16000, 100),
			400, CodeInvalidRequest, CodeInvalidImageSize, "larger than 16000"},
		{"huge claimed height", path40("tags"), keyHeader, pngHeaderOnly(100, 1<<30),
			400, CodeInvalidRequest, CodeInvalidImageSize, ""},
		{"empty body", path40("tags"), keyHeader, []byte{},
			400, CodeInvalidRequest, "", "20971520 bytes"},
		{"body over 20 MB", path40("tags"), keyHeader, make([]byte, MaxBytes40+1),
			400, CodeInvalidRequest, "", "20971520 bytes"},
		{"body over 20 MB without a length", path40("tags"), keyHeader,
			io.MultiReader(bytes.NewReader(goodPNG), io.LimitReader(zeros{}, MaxBytes40)),
			400, CodeInvalidRequest, "", "20971520 bytes"},
		{"url with ftp scheme", path40("tags"), jsonHeader, `{"url":"ftp://127.0.0.1/a.png"}`,
			400, CodeInvalidRequest, CodeInvalidImageURL, "badly formatted"},
		{"url not a url", path40("tags"), jsonHeader, `{"url":"not a url"}`,
			400, CodeInvalidRequest, CodeInvalidImageURL, ""},
		{"json without url", path40("tags"), jsonHeader, `{"uri":"http://x"}`,
			400, CodeInvalidRequest, CodeInvalidImageURL, ""},
		{"malformed json", path40("tags"), jsonHeader, `{"url":`,
			400, CodeInvalidRequest, CodeBadArgument, ""},
		{"url answering 404", path40("tags"), jsonHeader, `{"url":"` + images.URL + `/missing.png"}`,
			400, CodeInvalidRequest, CodeInvalidImageURL, "404"},
		{"url unreachable", path40("tags"), jsonHeader, `{"url":"http://` + deadAddr + `/a.png"}`,
			400, CodeInvalidRequest, CodeInvalidImageURL, "Failed to download"},
		{"url to a non-image", path40("tags"), jsonHeader, `{"url":"` + images.URL + `/text"}`,
			400, CodeInvalidRequest, CodeInvalidImageFormat, ""},
		{"text/plain", path40("tags"), map[string]string{"Ocp-Apim-Subscription-Key": visionstandin.DefaultKey, "Content-Type": "text/plain"}, goodPNG,
			415, CodeInvalidRequest, CodeUnsupportedMediaType, ""},
		{"no content type", path40("tags"), map[string]string{"Ocp-Apim-Subscription-Key": visionstandin.DefaultKey}, goodPNG,
			415, CodeInvalidRequest, CodeUnsupportedMediaType, ""},
		{"missing features", Path40 + "?api-version=2024-02-01", keyHeader, goodPNG,
			400, CodeInvalidRequest, CodeBadArgument, "'features'"},
		{"empty features", path40(""), keyHeader, goodPNG,
			400, CodeInvalidRequest, CodeBadArgument, ""},
		{"unknown feature", path40("tags,faces"), keyHeader, goodPNG,
			400, CodeInvalidRequest, CodeBadArgument, "faces"},
		{"bad smart crop ratio", path40("smartCrops") + "&smartcrops-aspect-ratios=2.5", keyHeader, goodPNG,
			400, CodeInvalidRequest, CodeBadArgument, "2.5"},
		{"bad gender-neutral flag", path40("caption") + "&gender-neutral-caption=maybe", keyHeader, goodPNG,
			400, CodeInvalidRequest, CodeBadArgument, ""},
		{"caption in french", path40("caption") + "&language=fr", keyHeader, goodPNG,
			400, CodeInvalidRequest, CodeNotSupportedLanguage, ""},
		{"unknown model version", path40("tags") + "&model-version=2020-01-01", keyHeader, goodPNG,
			400, CodeInvalidRequest, CodeInvalidModel, ""},
		{"unsupported api-version", Path40 + "?api-version=2022-10-12-preview&features=tags", keyHeader, goodPNG,
			404, "404", "", "Resource not found"},
		{"missing api-version", Path40 + "?features=tags", keyHeader, goodPNG,
			404, "404", "", ""},
		{"unknown path", "/computervision/imageanalysis:segment?api-version=2024-02-01", keyHeader, goodPNG,
			404, "404", "", ""},
		{"GET on analyze", path40("tags"), keyHeader, nil,
			404, "404", "", ""},
	}
	h := newHarness(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPost
			if tc.name == "GET on analyze" {
				method = http.MethodGet
			}
			r := h.do(method, tc.path, tc.header, tc.body)
			e := wantError(t, r, tc.status, tc.code, tc.inner)
			if tc.msgContains != "" && !strings.Contains(e.Error.Message, tc.msgContains) {
				t.Errorf("message %q lacks %q", e.Error.Message, tc.msgContains)
			}
			if e.RequestID != "" {
				t.Errorf("4.0 error bodies carry no requestId, got %q", e.RequestID)
			}
			if r.header.Get("apim-request-id") == "" {
				t.Error("no apim-request-id header")
			}
		})
	}
	st := h.srv.Stats()
	if st.Analyses != 0 || len(st.ByImage) != 0 {
		t.Errorf("failed calls counted as analyses: %+v", st)
	}
	if st.Calls != int64(len(tests)) {
		t.Errorf("Calls %d, want %d", st.Calls, len(tests))
	}
}

func TestAnalyze40AcceptsTheBoundaries(t *testing.T) {
	h := newHarness(t, nil)
	for _, img := range [][]byte{solidPNG(t, 51, 51, red), solidPNG(t, 2000, 51, red)} {
		decode40(t, h.analyze40("tags", img))
	}
	// French tags are fine (only captions are English-only).
	decode40(t, h.do(http.MethodPost, path40("tags")+"&language=fr&model-version=latest&gender-neutral-caption=true",
		keyHeader, solidPNG(t, 60, 60, red)))
}

func TestAnalyze40URLFetchTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	h := newHarness(t, &Options{FetchTimeout: 1}) // 1ns: the fetch cannot finish
	r := h.do(http.MethodPost, path40("tags"),
		map[string]string{"Ocp-Apim-Subscription-Key": visionstandin.DefaultKey, "Content-Type": "application/json"},
		`{"url":"`+slow.URL+`/a.png"}`)
	wantError(t, r, 400, CodeInvalidRequest, CodeInvalidImageURL)
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t, &Options{Keys: []string{"k1", "k2"}, Tokens: []string{"entra-token"}})
	img := solidPNG(t, 60, 60, red)
	ct := "application/octet-stream"
	tests := []struct {
		name   string
		header map[string]string
		query  string
		status int
	}{
		{"no credentials", map[string]string{"Content-Type": ct}, "", 401},
		{"wrong key", map[string]string{"Content-Type": ct, "Ocp-Apim-Subscription-Key": "nope"}, "", 401},
		{"default key not configured", map[string]string{"Content-Type": ct, "Ocp-Apim-Subscription-Key": visionstandin.DefaultKey}, "", 401},
		{"first key", map[string]string{"Content-Type": ct, "Ocp-Apim-Subscription-Key": "k1"}, "", 200},
		{"second key", map[string]string{"Content-Type": ct, "Ocp-Apim-Subscription-Key": "k2"}, "", 200},
		{"key in query", map[string]string{"Content-Type": ct}, "&subscription-key=k2", 200},
		{"bearer token", map[string]string{"Content-Type": ct, "Authorization": "Bearer entra-token"}, "", 200},
		{"bearer lower case", map[string]string{"Content-Type": ct, "Authorization": "bearer entra-token"}, "", 200},
		{"unknown token", map[string]string{"Content-Type": ct, "Authorization": "Bearer other"}, "", 401},
		{"basic auth", map[string]string{"Content-Type": ct, "Authorization": "Basic entra-token"}, "", 401},
		{"wrong key beats good token", map[string]string{"Content-Type": ct, "Ocp-Apim-Subscription-Key": "nope",
			"Authorization": "Bearer entra-token"}, "", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(http.MethodPost, path40("tags")+tc.query, tc.header, img)
			if tc.status == 200 {
				decode40(t, r)
				return
			}
			wantError(t, r, 401, "401", "")
			if !strings.Contains(r.header.Get("WWW-Authenticate"), "Ocp-Apim-Subscription-Key") {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	// v3.2 checks the same credentials.
	r := h.do(http.MethodPost, Path32, map[string]string{"Content-Type": ct, "Ocp-Apim-Subscription-Key": "nope"}, img)
	wantError(t, r, 401, "401", "")
	if st := h.srv.Stats(); st.ByStatus["401"] != 7 {
		t.Errorf("401s counted %d, want 7", st.ByStatus["401"])
	}
}

func TestDefaultKey(t *testing.T) {
	h := newHarness(t, &Options{Tokens: []string{"t"}}) // no Keys: the default key works
	decode40(t, h.analyze40("tags", solidPNG(t, 60, 60, red)))
}

// TestEchoURL: with the EchoURL fault, the error answers about an image given by URL quote
// the URL (both a download failure and a verdict on the image); without it they do not, and
// answers to images sent as bytes never do.
func TestEchoURL(t *testing.T) {
	small := solidPNG(t, 40, 40, red)
	images := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small.png" {
			_, _ = w.Write(small)
			return
		}
		http.NotFound(w, r)
	}))
	defer images.Close()
	jsonHeader := map[string]string{"Ocp-Apim-Subscription-Key": visionstandin.DefaultKey, "Content-Type": "application/json"}
	const query = "?X-Amz-Signature=0123abcd&X-Amz-Credential=AKIDEXAMPLE"
	for _, echo := range []bool{false, true} {
		h := newHarness(t, &Options{Faults: Faults{EchoURL: echo}})
		for _, tc := range []struct {
			path, inner string
		}{{"/small.png", CodeInvalidImageSize}, {"/missing.png", CodeInvalidImageURL}} {
			u := images.URL + tc.path + query
			e := wantError(t, h.do("POST", path40("tags"), jsonHeader, `{"url":"`+u+`"}`), 400, CodeInvalidRequest, tc.inner)
			if got := strings.Contains(e.Error.Message, u) && strings.Contains(e.Error.InnerError.Message, u); got != echo {
				t.Errorf("echo %v, %s: message %q quotes the URL: %v", echo, tc.path, e.Error.Message, got)
			}
		}
		e := wantError(t, h.analyze40("tags", small), 400, CodeInvalidRequest, CodeInvalidImageSize)
		if strings.Contains(e.Error.Message, "URL") {
			t.Errorf("echo %v: an answer to bytes mentions a URL: %q", echo, e.Error.Message)
		}
	}
}
