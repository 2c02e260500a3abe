package s3standin_test

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/s3standin"
)

// The front forwards requests unchanged (method, path, query, body and the Host the client
// addressed, which presigned URLs are signed over), lets a Fault answer instead, and streams
// answers as they come.
func TestFrontForwardsAndFaults(t *testing.T) {
	type seen struct{ method, uri, host, body string }
	got := make(chan seen, 8)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, r.Host, string(b)}
		if r.URL.Path == "/b/slow" {
			w.Header().Set("Content-Length", "100") // a plain answer, not one a proxy streams anyway
			_, _ = io.WriteString(w, "first ")
			w.(http.Flusher).Flush()
			<-r.Context().Done() // hold the rest until the client goes
			return
		}
		w.Header().Set("ETag", `"e"`)
		_, _ = io.WriteString(w, "stored")
	}))
	defer backend.Close()
	f, err := s3standin.StartFront("127.0.0.1:0", backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())

	req, _ := http.NewRequest(http.MethodPut, f.URL()+"/b/a%20b+c?X-Amz-Signature=s&partNumber=2", strings.NewReader("body"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s := <-got
	if resp.StatusCode != 200 || string(b) != "stored" || resp.Header.Get("ETag") != `"e"` {
		t.Errorf("answer %d %q %q", resp.StatusCode, b, resp.Header.Get("ETag"))
	}
	host := strings.TrimPrefix(f.URL(), "http://")
	if s != (seen{http.MethodPut, "/b/a%20b+c?X-Amz-Signature=s&partNumber=2", host, "body"}) {
		t.Errorf("backend saw %+v, want the request as sent, Host %s", s, host)
	}

	f.SetFault(func(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, bool) {
		if strings.HasSuffix(r.URL.Path, "/denied") {
			f.Refuse(w, r, http.StatusForbidden, "AccessDenied", "Access Denied")
			return w, true
		}
		return w, false
	})
	resp, err = http.Get(f.URL() + "/b/denied")
	if err != nil {
		t.Fatal(err)
	}
	var doc s3standin.ErrorDocument
	derr := xml.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || derr != nil || doc.Code != "AccessDenied" || doc.Message != "Access Denied" {
		t.Errorf("refused: %d %+v %v", resp.StatusCode, doc, derr)
	}
	select {
	case s := <-got:
		t.Errorf("a refused request reached the stand-in: %+v", s)
	default:
	}
	if resp, err = http.Head(f.URL() + "/b/denied"); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("HEAD refused: %v %v", resp, err)
	}
	f.SetFault(nil)

	// The first bytes of an answer reach the client before the stand-in has finished it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, f.URL()+"/b/slow", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len("first "))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first " {
		t.Errorf("streamed start %q, %v", first, err)
	}
	cancel()
	resp.Body.Close()
	if n := f.Requests(); n != 4 {
		t.Errorf("front counted %d requests, want 4", n)
	}
}

// A stand-in that does not answer is an S3 503, not a hang or an empty answer.
func TestFrontWithoutStandin(t *testing.T) {
	backend := httptest.NewServer(http.NotFoundHandler())
	url := backend.URL
	backend.Close()
	f, err := s3standin.StartFront("127.0.0.1:0", url)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	resp, err := http.Get(f.URL() + "/b/k")
	if err != nil {
		t.Fatal(err)
	}
	var doc s3standin.ErrorDocument
	derr := xml.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || derr != nil || doc.Code != "ServiceUnavailable" {
		t.Errorf("answer %d %+v %v", resp.StatusCode, doc, derr)
	}
	if _, err := s3standin.StartFront("127.0.0.1:0", "not a url"); err == nil {
		t.Error("a front without a target URL started")
	}
}
