package s3server

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// S3's additional checksums, verified as S3 verifies them: a PutObject or UploadPart whose
// x-amz-checksum-<algorithm> header does not match the body it carries is refused with 400
// BadDigest and stores nothing. A multipart upload created with x-amz-checksum-algorithm
// remembers each part's checksum; CompleteMultipartUpload must list it for every part (400
// InvalidRequest when missing, 400 InvalidPart when it differs), and a composite final
// checksum ("<base64>-<parts>") is checked against the parts' (400 BadDigest).

// checksumAlgo is one of S3's checksum algorithms.
type checksumAlgo struct {
	name string // as in messages: "crc32", "sha256", ...
	new  func() hash.Hash
	// composite reports whether multipart uploads may use the COMPOSITE type; full reports
	// whether they may use FULL_OBJECT.
	composite, full bool
}

// crc64NVME is the CRC-64/NVME polynomial (reversed form), the one S3's CRC64NVME uses.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

var checksumAlgos = []*checksumAlgo{
	{name: "crc32", new: func() hash.Hash { return crc32.NewIEEE() }, composite: true, full: true},
	{name: "crc32c", new: func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }, composite: true, full: true},
	{name: "crc64nvme", new: func() hash.Hash { return crc64.New(crc64NVME) }, full: true},
	{name: "sha1", new: sha1.New, composite: true},
	{name: "sha256", new: sha256.New, composite: true},
	// S3's newer algorithms; the stand-in assumes multipart rules like SHA-256's.
	{name: "sha512", new: sha512.New, composite: true},
	{name: "md5", new: md5.New, composite: true},
}

// unverifiedAlgos are S3 checksum algorithms the stand-in cannot compute (no implementation in
// Go's standard library): a request using one is refused, never stored unverified.
var unverifiedAlgos = []string{"xxhash64", "xxhash3", "xxhash128"}

func unverified(name string) *argError {
	return &argError{Status: http.StatusNotImplemented, Code: "NotImplemented",
		Message: "s3standin does not verify " + name + " checksums; use CRC32, CRC32C, CRC64NVME, SHA1, SHA256, SHA512 or MD5"}
}

func (a *checksumAlgo) header() string { return "x-amz-checksum-" + a.name }

// sum returns the base64 checksum of b.
func (a *checksumAlgo) sum(b []byte) string {
	h := a.new()
	h.Write(b)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// valid reports whether v is a base64 digest of this algorithm's size.
func (a *checksumAlgo) valid(v string) bool {
	raw, err := base64.StdEncoding.DecodeString(v)
	return err == nil && len(raw) == a.new().Size()
}

// algoNamed returns the algorithm for a name in any case ("SHA256", "crc32c").
func algoNamed(name string) *checksumAlgo {
	for _, a := range checksumAlgos {
		if strings.EqualFold(a.name, name) {
			return a
		}
	}
	return nil
}

func invalidRequest(msg string) *argError {
	return &argError{Status: http.StatusBadRequest, Code: "InvalidRequest", Message: msg}
}

func badDigest(a *checksumAlgo) *argError {
	return &argError{Status: http.StatusBadRequest, Code: "BadDigest",
		Message: "The " + a.name + " you specified did not match the calculated checksum."}
}

// headerChecksum returns the x-amz-checksum-* header a request carries, if any. Two of them,
// a value that is not a digest of its algorithm (or, with composite, a digest followed by
// "-<parts>": CompleteMultipartUpload's), or a checksum announced as a trailer (which the
// stand-in does not decode) are errors.
func headerChecksum(h http.Header, composite bool) (*checksumAlgo, string, error) {
	if h.Get("X-Amz-Trailer") != "" {
		return nil, "", &argError{Status: http.StatusNotImplemented, Code: "NotImplemented",
			Message: "s3standin does not decode trailing checksums (aws-chunked bodies with x-amz-trailer); " +
				"send the checksum as an x-amz-checksum-* header, as the AWS SDKs do over plain HTTP"}
	}
	for _, name := range unverifiedAlgos {
		if h.Get("x-amz-checksum-"+name) != "" {
			return nil, "", unverified(name)
		}
	}
	var algo *checksumAlgo
	var value string
	for _, a := range checksumAlgos {
		v := h.Get(a.header())
		if v == "" {
			continue
		}
		if algo != nil {
			return nil, "", invalidRequest("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
		}
		digest := v
		if composite {
			var parts string
			var found bool
			digest, parts, found = strings.Cut(v, "-")
			if n, err := strconv.Atoi(parts); found && (err != nil || n < 1 || strconv.Itoa(n) != parts) {
				digest = "" // not a digest
			}
		}
		if !a.valid(digest) {
			return nil, "", invalidRequest("Value for " + a.header() + " header is invalid.")
		}
		algo, value = a, v
	}
	return algo, value, nil
}

// verifyBodyChecksum checks body against the request's x-amz-checksum-* header, if any.
func verifyBodyChecksum(h http.Header, body []byte) error {
	algo, want, err := headerChecksum(h, false)
	if err != nil || algo == nil {
		return err
	}
	if algo.sum(body) != want {
		return badDigest(algo)
	}
	return nil
}

// readBody reads a request's whole body (S3 computes the checksum before it stores anything)
// and puts it back for gofakes3.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, &argError{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: "read body: " + err.Error()}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// checkedBody reads the body of a PutObject or UploadPart and verifies its checksum. A body in
// SigV4 streaming form carries chunk signatures, which gofakes3 removes; its checksum is
// refused rather than computed over the wrong bytes.
func checkedBody(r *http.Request) ([]byte, error) {
	if algo, _, err := headerChecksum(r.Header, false); err != nil {
		return nil, err
	} else if algo != nil && strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		return nil, &argError{Status: http.StatusNotImplemented, Code: "NotImplemented",
			Message: "s3standin does not verify checksums of SigV4 streaming (chunk-signed) bodies"}
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	return body, verifyBodyChecksum(r.Header, body)
}

// multipartChecksums remembers, per multipart upload, its checksum algorithm and type and the
// checksum of every part received.
type multipartChecksums struct {
	mu      sync.Mutex
	uploads map[string]*uploadChecksums // upload ID ->
}

type uploadChecksums struct {
	algo       *checksumAlgo // nil: the upload was created without one
	fullObject bool
	parts      map[int]string // part number -> base64 checksum
}

func (u *uploadChecksums) typeName() string {
	if u.fullObject {
		return "FULL_OBJECT"
	}
	return "COMPOSITE"
}

func (m *multipartChecksums) get(id string) *uploadChecksums {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.uploads[id]
}

func (m *multipartChecksums) forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.uploads, id)
}

// createSettings reads CreateMultipartUpload's x-amz-checksum-algorithm and -type headers.
func createSettings(h http.Header) (*uploadChecksums, error) {
	u := &uploadChecksums{parts: map[int]string{}}
	name, typ := h.Get("X-Amz-Checksum-Algorithm"), strings.ToUpper(h.Get("X-Amz-Checksum-Type"))
	if name != "" {
		for _, n := range unverifiedAlgos {
			if strings.EqualFold(n, name) {
				return nil, unverified(n)
			}
		}
		if u.algo = algoNamed(name); u.algo == nil {
			return nil, invalidRequest("Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256, SHA512, MD5]")
		}
	}
	switch typ {
	case "":
		u.fullObject = u.algo != nil && !u.algo.composite
	case "COMPOSITE", "FULL_OBJECT":
		if u.algo == nil {
			return nil, invalidRequest("The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.")
		}
		u.fullObject = typ == "FULL_OBJECT"
		if (u.fullObject && !u.algo.full) || (!u.fullObject && !u.algo.composite) {
			return nil, invalidRequest(fmt.Sprintf("The %s checksum type cannot be used with the %s checksum algorithm.", typ, u.algo.name))
		}
	default:
		return nil, invalidRequest("Value for x-amz-checksum-type header is invalid.")
	}
	return u, nil
}

// serveCreateMultipart serves CreateMultipartUpload and remembers the upload's checksum
// settings.
func (s *Server) serveCreateMultipart(w http.ResponseWriter, r *http.Request) {
	settings, err := createSettings(r.Header)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rec := &recorder{header: w.Header(), status: http.StatusOK}
	s.fake.ServeHTTP(rec, r)
	if rec.status == http.StatusOK {
		var res struct {
			UploadID string `xml:"UploadId"`
		}
		if xml.Unmarshal(rec.body.Bytes(), &res) == nil && res.UploadID != "" {
			s.mp.mu.Lock()
			if s.mp.uploads == nil {
				s.mp.uploads = map[string]*uploadChecksums{}
			}
			s.mp.uploads[res.UploadID] = settings
			s.mp.mu.Unlock()
			if settings.algo != nil {
				w.Header().Set("x-amz-checksum-algorithm", strings.ToUpper(settings.algo.name))
				w.Header().Set("x-amz-checksum-type", settings.typeName())
			}
		}
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

// servePart serves UploadPart: its body's checksum is verified, and recorded for the upload
// (computed with the upload's algorithm when the request sent none).
func (s *Server) servePart(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	body, err := checkedBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := q.Get("uploadId")
	part, _ := strconv.Atoi(q.Get("partNumber"))
	u := s.mp.get(id)
	var value string
	if u != nil && u.algo != nil {
		if algo, v, _ := headerChecksum(r.Header, false); algo != nil && algo != u.algo {
			s.writeError(w, r, invalidRequest(fmt.Sprintf("Checksum Type mismatch occurred, expected checksum Type: %s, actual checksum Type: %s",
				u.algo.name, algo.name)))
			return
		} else if algo != nil {
			value = v
		} else {
			value = u.algo.sum(body)
		}
	}
	ok := &successHook{ResponseWriter: w, onSuccess: func(h http.Header) {
		if value != "" {
			h.Set(u.algo.header(), value)
			s.mp.mu.Lock()
			u.parts[part] = value
			s.mp.mu.Unlock()
		}
	}}
	s.fake.ServeHTTP(ok, r)
	ok.finish()
}

// serveAbort serves AbortMultipartUpload and forgets the upload's checksums.
func (s *Server) serveAbort(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("uploadId")
	ok := &successHook{ResponseWriter: w, onSuccess: func(http.Header) { s.mp.forget(id) }}
	s.fake.ServeHTTP(ok, r)
	ok.finish()
}

// completeRequestXML is the part of CompleteMultipartUpload's body the checks read.
type completeRequestXML struct {
	Parts []struct {
		PartNumber        int    `xml:"PartNumber"`
		ChecksumCRC32     string `xml:"ChecksumCRC32"`
		ChecksumCRC32C    string `xml:"ChecksumCRC32C"`
		ChecksumCRC64NVME string `xml:"ChecksumCRC64NVME"`
		ChecksumSHA1      string `xml:"ChecksumSHA1"`
		ChecksumSHA256    string `xml:"ChecksumSHA256"`
		ChecksumSHA512    string `xml:"ChecksumSHA512"`
		ChecksumMD5       string `xml:"ChecksumMD5"`
	} `xml:"Part"`
}

// checkComplete verifies a CompleteMultipartUpload against its upload's checksums before
// gofakes3 assembles the object. Uploads created without an algorithm are not checked.
func (s *Server) checkComplete(r *http.Request) error {
	u := s.mp.get(r.URL.Query().Get("uploadId"))
	if u == nil || u.algo == nil {
		return nil
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var req completeRequestXML
	if err := xml.Unmarshal(body, &req); err != nil {
		return nil // gofakes3 answers MalformedXML
	}
	if t := r.Header.Get("X-Amz-Checksum-Type"); t != "" && !strings.EqualFold(t, u.typeName()) {
		return invalidRequest(fmt.Sprintf("The upload was created using the %s checksum mode. The complete request must use the same checksum mode.", u.typeName()))
	}
	s.mp.mu.Lock()
	parts := make(map[int]string, len(u.parts))
	for n, v := range u.parts {
		parts[n] = v
	}
	s.mp.mu.Unlock()
	var digests []byte
	for _, p := range req.Parts {
		got := map[string]string{"crc32": p.ChecksumCRC32, "crc32c": p.ChecksumCRC32C, "crc64nvme": p.ChecksumCRC64NVME,
			"sha1": p.ChecksumSHA1, "sha256": p.ChecksumSHA256, "sha512": p.ChecksumSHA512, "md5": p.ChecksumMD5}[u.algo.name]
		if got == "" {
			return invalidRequest(fmt.Sprintf("The upload was created using a %s checksum. The complete request must include the checksum for each part. It was missing for part %d in the request.",
				u.algo.name, p.PartNumber))
		}
		stored, uploaded := parts[p.PartNumber]
		if !uploaded {
			continue // gofakes3 answers InvalidPart for a part never uploaded
		}
		if got != stored {
			return &argError{Status: http.StatusBadRequest, Code: "InvalidPart",
				Message: "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."}
		}
		raw, _ := base64.StdEncoding.DecodeString(stored)
		digests = append(digests, raw...)
	}
	algo, final, err := headerChecksum(r.Header, true)
	switch {
	case err != nil:
		return err
	case algo == nil:
		return nil
	case algo != u.algo:
		return invalidRequest(fmt.Sprintf("Checksum Type mismatch occurred, expected checksum Type: %s, actual checksum Type: %s", u.algo.name, algo.name))
	case u.fullObject:
		return &argError{Status: http.StatusNotImplemented, Code: "NotImplemented",
			Message: "s3standin does not verify FULL_OBJECT checksums of multipart uploads"}
	}
	if final != algo.sum(digests)+"-"+strconv.Itoa(len(req.Parts)) {
		return badDigest(algo)
	}
	return nil
}

// successHook runs onSuccess on the header of a 2xx answer just before it is sent.
type successHook struct {
	http.ResponseWriter
	onSuccess func(http.Header)
	written   bool
}

func (h *successHook) WriteHeader(code int) {
	if !h.written {
		h.written = true
		if code >= 200 && code < 300 {
			h.onSuccess(h.Header())
		}
	}
	h.ResponseWriter.WriteHeader(code)
}

func (h *successHook) Write(b []byte) (int, error) {
	if !h.written {
		h.WriteHeader(http.StatusOK)
	}
	return h.ResponseWriter.Write(b)
}

// finish accounts for a handler that returned without writing anything: net/http then sends
// 200.
func (h *successHook) finish() {
	if !h.written {
		h.WriteHeader(http.StatusOK)
	}
}
