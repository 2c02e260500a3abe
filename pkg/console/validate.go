package console

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"imgpipe/pkg/uploader"
)

// The reasons of the console's 4xx answers (the "code" of the JSON error).
const (
	CodeBadRequest        = "BadRequest"
	CodeInvalidKey        = "InvalidKey"
	CodeInvalidBucket     = "InvalidBucket"
	CodeUnknownBucket     = "UnknownBucket"
	CodeInvalidName       = "InvalidName"
	CodeInvalidLimit      = "InvalidLimit"
	CodeInvalidCursor     = "InvalidCursor"
	CodeInvalidTag        = "InvalidTag"
	CodeTooLarge          = "TooLarge"
	CodeEmptyFile         = "EmptyFile"
	CodeUnsupportedType   = "UnsupportedType"
	CodeTooManyKeys       = "TooManyKeys"
	CodeNotIndexed        = "NotIndexed"
	CodeNotFound          = "NotFound"
	CodeMethodNotAllowed  = "MethodNotAllowed"
	CodeUnsupportedMedia  = "UnsupportedMediaType"
	CodeBodyTooLarge      = "BodyTooLarge"
	CodeUnauthorized      = "Unauthorized"
	CodeForbidden         = "Forbidden"
	CodeRateLimited       = "RateLimited"
	CodeUnavailable       = "Unavailable"
	CodeInternal          = "Internal"
	CodeCrossOriginDenied = "CrossOriginDenied"
)

// apiError is an answer that is not a success: an HTTP status and a stable code with a
// message for people.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{Status: 400, Code: code, Message: fmt.Sprintf(format, args...)}
}

// checkKey accepts an S3 object key the console may look up or sign for: valid UTF-8, at most
// 1024 bytes, no control characters, no leading '/', and no "." or ".." segment (which a URL
// would resolve into another key, or another bucket with path-style addressing).
func checkKey(key string) *apiError {
	switch {
	case key == "":
		return badRequest(CodeInvalidKey, "missing key")
	case len(key) > uploader.MaxKeyLen:
		return badRequest(CodeInvalidKey, "key of %d bytes: at most %d", len(key), uploader.MaxKeyLen)
	case !utf8.ValidString(key):
		return badRequest(CodeInvalidKey, "key is not valid UTF-8")
	case strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return badRequest(CodeInvalidKey, "key contains a control character")
	case strings.HasPrefix(key, "/"):
		return badRequest(CodeInvalidKey, "key starts with '/'")
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "." || seg == ".." {
			return badRequest(CodeInvalidKey, "key has a %q segment", seg)
		}
	}
	return nil
}

// bucketName is S3's rule for bucket names: 3 to 63 lower-case letters, digits, '.' and '-',
// starting and ending with a letter or digit.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// checkBucket accepts the bucket this console serves, and nothing else.
func checkBucket(got, served string) *apiError {
	switch {
	case got == "":
		return badRequest(CodeInvalidBucket, "missing bucket")
	case !bucketName.MatchString(got):
		return badRequest(CodeInvalidBucket, "%q is not a bucket name", got)
	case got != served:
		return &apiError{Status: 404, Code: CodeUnknownBucket, Message: fmt.Sprintf("bucket %q is not served by this console", got)}
	}
	return nil
}

// maxNameLen bounds a file name given for an upload.
const maxNameLen = 1024

// checkName accepts a browser file name: non-empty, valid UTF-8, at most maxNameLen bytes.
// The key made from it (uploader.KeyFor) keeps only its base name and escapes what does not
// belong in a key.
func checkName(name string) *apiError {
	switch {
	case strings.TrimSpace(name) == "":
		return badRequest(CodeInvalidName, "missing file name")
	case len(name) > maxNameLen:
		return badRequest(CodeInvalidName, "file name of %d bytes: at most %d", len(name), maxNameLen)
	case !utf8.ValidString(name):
		return badRequest(CodeInvalidName, "file name is not valid UTF-8")
	}
	return nil
}

// maxTagLen bounds a searched tag.
const maxTagLen = 256

func checkTag(tag string) *apiError {
	switch {
	case len(tag) > maxTagLen:
		return badRequest(CodeInvalidTag, "tag of %d bytes: at most %d", len(tag), maxTagLen)
	case !utf8.ValidString(tag):
		return badRequest(CodeInvalidTag, "tag is not valid UTF-8")
	case strings.ContainsFunc(tag, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return badRequest(CodeInvalidTag, "tag contains a control character")
	}
	return nil
}

// single returns the one value of a query parameter ("" when absent); a repeated parameter is
// an error.
func single(q url.Values, name string) (string, *apiError) {
	switch v := q[name]; len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	}
	return "", badRequest(CodeBadRequest, "parameter %q given %d times", name, len(q[name]))
}

// parseLimit reads a page size: def when empty, else 1..max.
func parseLimit(s string, def, max int) (int, *apiError) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, badRequest(CodeInvalidLimit, "limit %q: want a whole number from 1 to %d", s, max)
	}
	return n, nil
}
