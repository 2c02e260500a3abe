package s3server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Running is a Server listening on a TCP address.
type Running struct {
	srv       *Server
	http      *http.Server
	url       string
	served    chan error
	closeOnce sync.Once
	closeErr  error
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves a new Server there. ctx
// bounds the start only; stop the server with Running.Close.
func Start(ctx context.Context, addr string, opts *Options) (*Running, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	srv, err := New(opts)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		_ = srv.Close(ctx)
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	r := &Running{
		srv:    srv,
		http:   &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second},
		url:    "http://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port)),
		served: make(chan error, 1),
	}
	go func() { r.served <- r.http.Serve(ln) }()
	return r, nil
}

// URL is the base URL clients use as the S3 endpoint, for example "http://127.0.0.1:41234".
// Clients must use path-style addressing (UsePathStyle in aws-sdk-go-v2).
func (r *Running) URL() string { return r.url }

// Server returns the running Server, for Flush and Stats.
func (r *Running) Server() *Server { return r.srv }

// Close stops accepting connections, waits for requests in progress, delivers the pending
// event messages and stops, all within ctx. Calling it again returns the same result.
func (r *Running) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		errHTTP := r.http.Shutdown(ctx)
		if errHTTP != nil {
			_ = r.http.Close()
		}
		errSrv := r.srv.Close(ctx)
		if err := <-r.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errHTTP = errors.Join(errHTTP, err)
		}
		if errHTTP != nil {
			errHTTP = fmt.Errorf("shut down http: %w", errHTTP)
		}
		r.closeErr = errors.Join(errHTTP, errSrv)
	})
	return r.closeErr
}
