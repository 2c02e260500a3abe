package s3standin

import "net/http"

// Fault is a test hook that every request passes through before the stand-in serves it. It
// returns the ResponseWriter the stand-in answers through (w itself, or a wrapper that holds
// the answer back or cuts it short), or handled true when it answered the request itself (see
// Refuse). It runs on the request's goroutine; one that blocks should also end when the
// request's context does.
type Fault func(w http.ResponseWriter, r *http.Request) (out http.ResponseWriter, handled bool)

// SetFault installs f for every request from now on; nil removes it.
func (s *Server) SetFault(f Fault) {
	if f == nil {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(&f)
}

// Refuse answers r with an S3 error document and status, as S3 answers a request its bucket
// policy denies (403 AccessDenied) or one it cannot serve (503 SlowDown).
func (s *Server) Refuse(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	s.writeError(w, r, &argError{Status: status, Code: code, Message: message})
}

// applyFault runs the installed Fault, if any.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, bool) {
	f := s.fault.Load()
	if f == nil {
		return w, false
	}
	return (*f)(w, r)
}
