package s3server

import (
	"encoding/xml"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Bucket CORS, as S3 does it: PUT/GET/DELETE /BUCKET?cors store the bucket's CORSRule list,
// a preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered from the
// first rule that allows the origin, the method and every requested header, or refused with
// 403, and an actual request with an Origin gets the CORS headers of the first rule that
// allows its origin and method. gofakes3's own CORS layer (which allows every origin on every
// bucket) is overridden: its Access-Control-* headers never reach the client.

// corsRule is one CORSRule of a bucket.
type corsRule struct {
	ID             string   `xml:"ID,omitempty"`
	AllowedHeaders []string `xml:"AllowedHeader"`
	AllowedMethods []string `xml:"AllowedMethod"`
	AllowedOrigins []string `xml:"AllowedOrigin"`
	ExposeHeaders  []string `xml:"ExposeHeader"`
	MaxAgeSeconds  *int     `xml:"MaxAgeSeconds"`
}

type corsXML struct {
	XMLName xml.Name   `xml:"CORSConfiguration"`
	Xmlns   string     `xml:"xmlns,attr,omitempty"`
	Rules   []corsRule `xml:"CORSRule"`
}

const maxCORSRules = 100

var corsMethods = []string{"GET", "PUT", "HEAD", "POST", "DELETE"}

// parseCORS decodes and validates a PutBucketCors body.
func parseCORS(body []byte) ([]corsRule, *argError) {
	var in corsXML
	if err := xml.Unmarshal(body, &in); err != nil || in.XMLName.Local != "CORSConfiguration" {
		return nil, &argError{Status: 400, Code: "MalformedXML",
			Message: "The XML you provided was not well-formed or did not validate against our published schema"}
	}
	if len(in.Rules) == 0 || len(in.Rules) > maxCORSRules {
		return nil, &argError{Status: 400, Code: "MalformedXML",
			Message: "A CORS configuration has 1 to 100 CORSRule elements"}
	}
	for _, r := range in.Rules {
		if len(r.AllowedOrigins) == 0 || len(r.AllowedMethods) == 0 {
			return nil, &argError{Status: 400, Code: "MalformedXML",
				Message: "Each CORSRule needs at least one AllowedOrigin and one AllowedMethod"}
		}
		for _, m := range r.AllowedMethods {
			if !slices.Contains(corsMethods, m) {
				return nil, &argError{Status: 400, Code: "InvalidRequest",
					Message: "Found unsupported HTTP method in CORS config. Unsupported method is " + m}
			}
		}
		for _, o := range r.AllowedOrigins {
			if strings.Count(o, "*") > 1 {
				return nil, &argError{Status: 400, Code: "InvalidRequest",
					Message: "AllowedOrigin \"" + o + "\" can not have more than one wildcard."}
			}
		}
		for _, h := range r.AllowedHeaders {
			if strings.Count(h, "*") > 1 {
				return nil, &argError{Status: 400, Code: "InvalidRequest",
					Message: "AllowedHeader \"" + h + "\" can not have more than one wildcard."}
			}
		}
		if r.MaxAgeSeconds != nil && *r.MaxAgeSeconds < 0 {
			return nil, &argError{Status: 400, Code: "MalformedXML", Message: "MaxAgeSeconds must not be negative"}
		}
	}
	return in.Rules, nil
}

// serveCORSConfig serves PUT, GET and DELETE /BUCKET?cors.
func (s *Server) serveCORSConfig(w http.ResponseWriter, r *http.Request, bucket string) {
	s.serveBucketConfig(w, r, bucket, bucketConfig{
		put: func(_ *http.Request, body []byte) error {
			rules, aerr := parseCORS(body)
			if aerr != nil {
				return aerr
			}
			s.mu.Lock()
			s.cors[bucket] = rules
			s.mu.Unlock()
			return nil
		},
		get: func() (any, bool) {
			rules := s.corsOf(bucket)
			return corsXML{Xmlns: s3Namespace, Rules: rules}, len(rules) > 0
		},
		remove: func() {
			s.mu.Lock()
			delete(s.cors, bucket)
			s.mu.Unlock()
		},
		missing: &argError{Status: http.StatusNotFound, Code: "NoSuchCORSConfiguration",
			Message: "The CORS configuration does not exist", ArgumentName: "BucketName", ArgumentValue: bucket},
	})
}

func (s *Server) corsOf(bucket string) []corsRule {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cors[bucket]
}

// isPreflight reports whether r is a CORS preflight request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// servePreflight answers a preflight request for an object or bucket of bucket.
func (s *Server) servePreflight(w http.ResponseWriter, r *http.Request, bucket string) {
	if !s.bucketExists(w, r, bucket) {
		return
	}
	rules := s.corsOf(bucket)
	if len(rules) == 0 {
		s.writeError(w, r, &argError{Status: http.StatusForbidden, Code: "AccessForbidden",
			Message: "CORSResponse: CORS is not enabled for this bucket."})
		return
	}
	origin, method := r.Header.Get("Origin"), r.Header.Get("Access-Control-Request-Method")
	var requested []string
	for _, h := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			requested = append(requested, h)
		}
	}
	for i := range rules {
		rule := &rules[i]
		if !rule.allows(origin, method) || !rule.allowsHeaders(requested) {
			continue
		}
		h := w.Header()
		rule.setHeaders(h, origin)
		if len(requested) > 0 {
			h.Set("Access-Control-Allow-Headers", strings.Join(requested, ", "))
		}
		if rule.MaxAgeSeconds != nil {
			h.Set("Access-Control-Max-Age", strconv.Itoa(*rule.MaxAgeSeconds))
		}
		h.Set("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method")
		s.setRequestHeaders(w)
		w.WriteHeader(http.StatusOK)
		return
	}
	s.writeError(w, r, &argError{Status: http.StatusForbidden, Code: "AccessForbidden",
		Message: "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."})
}

// allows reports whether the rule allows method from origin.
func (c *corsRule) allows(origin, method string) bool {
	if !slices.Contains(c.AllowedMethods, method) {
		return false
	}
	for _, o := range c.AllowedOrigins {
		if wildcardMatch(o, origin, false) {
			return true
		}
	}
	return false
}

// allowsHeaders reports whether every requested header matches an AllowedHeader.
func (c *corsRule) allowsHeaders(requested []string) bool {
	for _, h := range requested {
		if !slices.ContainsFunc(c.AllowedHeaders, func(a string) bool { return wildcardMatch(a, h, true) }) {
			return false
		}
	}
	return true
}

// setHeaders sets the headers every CORS answer of the rule carries.
func (c *corsRule) setHeaders(h http.Header, origin string) {
	if slices.Contains(c.AllowedOrigins, "*") {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	h.Set("Access-Control-Allow-Methods", strings.Join(c.AllowedMethods, ", "))
	if len(c.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(c.ExposeHeaders, ", "))
	}
}

// wildcardMatch matches s against pattern, where one '*' stands for any run of characters.
func wildcardMatch(pattern, s string, foldCase bool) bool {
	if foldCase {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	ok, err := path.Match(strings.ReplaceAll(escapeMatch(pattern), `\*`, "*"), s)
	return err == nil && ok
}

// escapeMatch escapes path.Match's special characters; the caller restores '*'.
func escapeMatch(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// corsWriter replaces the Access-Control-* headers of an answer with the bucket's own: none
// unless a rule allows the request's origin and method.
type corsWriter struct {
	http.ResponseWriter
	rule   *corsRule
	origin string
	done   bool
}

func (s *Server) withCORS(w http.ResponseWriter, r *http.Request, bucket string) http.ResponseWriter {
	cw := &corsWriter{ResponseWriter: w, origin: r.Header.Get("Origin")}
	if cw.origin != "" {
		rules := s.corsOf(bucket)
		for i := range rules {
			if rules[i].allows(cw.origin, r.Method) {
				cw.rule = &rules[i]
				break
			}
		}
	}
	return cw
}

func (c *corsWriter) fix() {
	if c.done {
		return
	}
	c.done = true
	h := c.Header()
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), "access-control-") {
			h.Del(name)
		}
	}
	if c.rule != nil {
		c.rule.setHeaders(h, c.origin)
		h.Add("Vary", "Origin")
	}
}

func (c *corsWriter) WriteHeader(code int) {
	c.fix()
	c.ResponseWriter.WriteHeader(code)
}

func (c *corsWriter) Write(b []byte) (int, error) {
	c.fix()
	return c.ResponseWriter.Write(b)
}

// Flush lets streamed answers (large GETs) through.
func (c *corsWriter) Flush() {
	c.fix()
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
