package s3server

import (
	"encoding/xml"
	"net/http"
)

// bucketConfig is one of a bucket's configuration subresources (?cors, ?lifecycle), served
// by serveBucketConfig: PUT replaces it, GET answers it, DELETE removes it.
type bucketConfig struct {
	// put parses the PUT body and stores the configuration.
	put func(r *http.Request, body []byte) error
	// get returns the configuration's XML document; false when the bucket has none.
	get func() (any, bool)
	// remove deletes the configuration.
	remove func()
	// missing is the error of a GET when there is none.
	missing *argError
}

// serveBucketConfig serves PUT, GET and DELETE of one configuration subresource of bucket.
func (s *Server) serveBucketConfig(w http.ResponseWriter, r *http.Request, bucket string, c bucketConfig) {
	if !s.bucketExists(w, r, bucket) {
		return
	}
	switch r.Method {
	case http.MethodPut:
		body, ok := s.configBody(w, r)
		if !ok {
			return
		}
		if err := c.put(r, body); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.setRequestHeaders(w)
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		doc, ok := c.get()
		if !ok {
			s.writeError(w, r, c.missing)
			return
		}
		body, err := xml.Marshal(doc)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.setRequestHeaders(w)
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write(append([]byte(xml.Header), body...))
	case http.MethodDelete:
		c.remove()
		s.setRequestHeaders(w)
		w.WriteHeader(http.StatusNoContent)
	default:
		s.writeError(w, r, &argError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed",
			Message: "The specified method is not allowed against this resource."})
	}
}
