package visionserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Running is a Server listening on a TCP address.
type Running struct {
	// URL is the endpoint to give clients, e.g. "http://127.0.0.1:41234" (no trailing slash).
	URL string
	// Server is the stand-in, for SetFaults, Stats and Reset.
	Server *Server

	srv       *http.Server
	done      chan struct{} // closed when serving has ended
	serveErr  error         // set before done is closed
	stopWatch func() bool
	closeOnce sync.Once
	closeErr  error
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves a new Server until
// Close is called or ctx ends.
func Start(ctx context.Context, addr string, opts *Options) (*Running, error) {
	if opts != nil {
		if err := opts.Faults.Validate(); err != nil {
			return nil, fmt.Errorf("vision stand-in faults: %w", err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := New(opts)
	run := &Running{
		URL:    "http://" + ln.Addr().String(),
		Server: s,
		srv:    &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second},
		done:   make(chan struct{}),
	}
	go func() {
		defer close(run.done)
		run.serveErr = run.srv.Serve(ln)
	}()
	run.stopWatch = context.AfterFunc(ctx, func() { _ = run.close() })
	return run, nil
}

// Close stops listening, closes every connection and waits for the serving goroutine.
// It is safe to call more than once; later calls return the first result.
func (r *Running) Close() error {
	r.stopWatch()
	return r.close()
}

func (r *Running) close() error {
	r.closeOnce.Do(func() {
		err := r.srv.Close()
		<-r.done
		if r.serveErr != nil && !errors.Is(r.serveErr, http.ErrServerClosed) {
			err = errors.Join(err, r.serveErr)
		}
		r.closeErr = err
	})
	return r.closeErr
}

// Done is closed once the server has stopped serving, after Close, Shutdown or the end of
// Start's context.
func (r *Running) Done() <-chan struct{} { return r.done }

// Shutdown stops listening and waits, until ctx ends, for calls in progress to finish,
// then closes what is left.
func (r *Running) Shutdown(ctx context.Context) error {
	err := r.srv.Shutdown(ctx)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return err
}
