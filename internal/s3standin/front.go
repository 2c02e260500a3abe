package s3standin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is a test hook that every request through a Front passes before it is forwarded to
// the stand-in. It returns the ResponseWriter the answer goes through (w itself, or a wrapper
// that holds the answer back or cuts it short), or handled true when it answered the request
// itself (see Refuse). It runs on the request's goroutine; one that blocks should also end
// when the request's context does.
type Fault func(w http.ResponseWriter, r *http.Request) (out http.ResponseWriter, handled bool)

// Front is an HTTP front of an S3 stand-in: it forwards every request unchanged (the Host
// header too, so presigned URLs made for the front verify), after the installed Fault.
type Front struct {
	srv       *http.Server
	transport *http.Transport // to the stand-in
	url       string
	fault     atomic.Pointer[Fault]
	requests  atomic.Uint64
	served    chan error

	closeOnce sync.Once
	closeErr  error
}

// StartFront listens on addr ("127.0.0.1:0" picks a free port) and forwards to the stand-in
// at target (its base URL).
func StartFront(addr, target string) (*Front, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("s3 front: target %q is not a base URL", target)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("s3 front: listen on %s: %w", addr, err)
	}
	f := &Front{url: "http://" + ln.Addr().String(), served: make(chan error, 1)}
	f.transport = &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // signatures cover the host the client addressed
		},
		// Stream bodies as they come (a stalled body must reach the client as it stalls).
		FlushInterval: -1,
		Transport:     f.transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client went away
			}
			ErrorDocument{Code: "ServiceUnavailable", Message: "s3 front: " + err.Error()}.Write(w, r, http.StatusServiceUnavailable)
		},
	}
	f.srv = &http.Server{ReadHeaderTimeout: 30 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if h := f.fault.Load(); h != nil {
			var handled bool
			if w, handled = (*h)(w, r); handled {
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { f.served <- f.srv.Serve(ln) }()
	return f, nil
}

// URL is the front's base URL, the S3 endpoint clients use.
func (f *Front) URL() string { return f.url }

// Requests counts the requests the front received.
func (f *Front) Requests() uint64 { return f.requests.Load() }

// SetFault installs h for every request from now on; nil removes it.
func (f *Front) SetFault(h Fault) {
	if h == nil {
		f.fault.Store(nil)
		return
	}
	f.fault.Store(&h)
}

// Refuse answers r with an S3 error document and status, as S3 answers a request its bucket
// policy denies (403 AccessDenied) or one it cannot serve (503 SlowDown).
func (f *Front) Refuse(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	ErrorDocument{Code: code, Message: message}.Write(w, r, status)
}

// Close stops the front within ctx, then cuts what is left. Calling it again returns the
// same result.
func (f *Front) Close(ctx context.Context) error {
	f.closeOnce.Do(func() {
		err := f.srv.Shutdown(ctx)
		if err != nil {
			_ = f.srv.Close()
		}
		if serr := <-f.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		f.transport.CloseIdleConnections() // its connections to the stand-in, and their goroutines
		f.closeErr = err
	})
	return f.closeErr
}
