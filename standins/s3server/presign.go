package s3server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/httpbinding"
)

// Query-string authentication (presigned URLs), as S3 checks it: Signature Version 4 with
// the parameters in the query and UNSIGNED-PAYLOAD unless X-Amz-Content-Sha256 says
// otherwise. The signed headers are read from the request as it arrived, so a request whose
// Content-Type, Content-Length or x-amz-meta-* headers differ from the ones signed fails with
// SignatureDoesNotMatch, and an x-amz-* header that was not signed is refused as S3 refuses it.

const (
	sigAlgorithm  = "AWS4-HMAC-SHA256"
	maxPresignAge = 7 * 24 * time.Hour // X-Amz-Expires may be at most 604800 seconds
	amzDateLayout = "20060102T150405Z"
	clockSkew     = 15 * time.Minute
)

var hexSignature = regexp.MustCompile(`^[0-9a-f]{64}$`)

// isPresigned reports whether r is authenticated in its query string.
func isPresigned(q url.Values) bool {
	return q.Has("X-Amz-Signature") || q.Has("X-Amz-Algorithm") || q.Has("X-Amz-Credential")
}

// verifyPresigned checks the query-string signature of r at now. It returns nil for a request
// that is not presigned or when the server knows no credentials (Options.Credentials).
func (s *Server) verifyPresigned(r *http.Request, now time.Time) *argError {
	q := r.URL.Query()
	if len(s.opts.Credentials) == 0 || !isPresigned(q) {
		return nil
	}
	bad := func(msg string) *argError {
		return &argError{Status: http.StatusBadRequest, Code: "AuthorizationQueryParametersError", Message: msg}
	}
	denied := func(msg string) *argError {
		return &argError{Status: http.StatusForbidden, Code: "AccessDenied", Message: msg}
	}
	if q.Get("X-Amz-Algorithm") != sigAlgorithm {
		return bad("X-Amz-Algorithm only supports \"" + sigAlgorithm + "\"")
	}
	for _, p := range []string{"X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date", "X-Amz-Expires"} {
		if len(q[p]) != 1 || q.Get(p) == "" {
			return bad("Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters (one of each)")
		}
	}
	cred := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(cred) != 5 || cred[3] != "s3" || cred[4] != "aws4_request" || cred[0] == "" {
		return bad("Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"")
	}
	akid, day, region := cred[0], cred[1], cred[2]
	signedAt, err := time.Parse(amzDateLayout, q.Get("X-Amz-Date"))
	if err != nil {
		return bad("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
	}
	if signedAt.Format("20060102") != day {
		return bad("Error parsing the X-Amz-Credential parameter; incorrect date format \"" + day + "\". This date in the credential must be in the format \"yyyyMMdd\" and match X-Amz-Date")
	}
	expires, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || expires < 1 {
		return bad("X-Amz-Expires should be a number of seconds, at least 1")
	}
	if time.Duration(expires)*time.Second > maxPresignAge {
		return bad("X-Amz-Expires must be less than a week (in seconds) that is 604800")
	}
	signature := q.Get("X-Amz-Signature")
	if !hexSignature.MatchString(signature) {
		return &argError{Status: http.StatusForbidden, Code: "SignatureDoesNotMatch",
			Message: "The request signature we calculated does not match the signature you provided. Check your key and signing method."}
	}
	secret, ok := s.opts.Credentials[akid]
	if !ok {
		return &argError{Status: http.StatusForbidden, Code: "InvalidAccessKeyId",
			Message: "The AWS Access Key Id you provided does not exist in our records."}
	}
	if now.Before(signedAt.Add(-clockSkew)) {
		return denied("Request is not valid yet")
	}
	if now.After(signedAt.Add(time.Duration(expires) * time.Second)) {
		return denied("Request has expired")
	}
	signedHeaders := strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	if !slices.Contains(signedHeaders, "host") {
		return bad("Query-string authentication requires the Host header to be signed")
	}
	for name := range r.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-amz-") && !slices.Contains(signedHeaders, lower) {
			return denied("There were headers present in the request which were not signed: " + lower)
		}
	}
	canonical := canonicalRequest(r, q, signedHeaders)
	scope := day + "/" + region + "/s3/aws4_request"
	digest := sha256.Sum256([]byte(canonical))
	toSign := sigAlgorithm + "\n" + q.Get("X-Amz-Date") + "\n" + scope + "\n" + hex.EncodeToString(digest[:])
	key := hmacSHA256([]byte("AWS4"+secret), day)
	for _, part := range []string{region, "s3", "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return &argError{Status: http.StatusForbidden, Code: "SignatureDoesNotMatch",
			Message: "The request signature we calculated does not match the signature you provided. Check your key and signing method."}
	}
	return nil
}

// canonicalRequest is SigV4's canonical form of r: method, the path exactly as sent (S3 does
// not normalise or re-encode it), the query without the signature, the signed headers with the
// values r carries, and the payload hash.
func canonicalRequest(r *http.Request, q url.Values, signedHeaders []string) string {
	path, _, _ := strings.Cut(r.RequestURI, "?")
	if path == "" || !strings.HasPrefix(path, "/") {
		path = r.URL.EscapedPath()
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		if k != "X-Amz-Signature" {
			keys = append(keys, k)
		}
	}
	var pairs []string
	for _, k := range keys {
		for _, v := range q[k] {
			pairs = append(pairs, uriEncode(k)+"="+uriEncode(v))
		}
	}
	slices.Sort(pairs) // sorting "key=value" orders by key, then value, as SigV4 does
	var headers strings.Builder
	for _, h := range signedHeaders {
		headers.WriteString(h + ":" + headerValue(r, h) + "\n")
	}
	payload := q.Get("X-Amz-Content-Sha256")
	if payload == "" {
		payload = "UNSIGNED-PAYLOAD"
	}
	return strings.Join([]string{r.Method, path, strings.Join(pairs, "&"), headers.String(), strings.Join(signedHeaders, ";"), payload}, "\n")
}

// headerValue is the canonical value of one signed header of r.
func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	}
	values := r.Header.Values(name)
	for i, v := range values {
		values[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(values, ",")
}

// uriEncode is SigV4's URI encoding (every byte but A-Z a-z 0-9 - _ . ~ as %XX), the SDK's own.
func uriEncode(s string) string { return httpbinding.EscapePath(s, true) }

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
