package s3event

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"imgpipe/pkg/failure"
)

// EncodeKey encodes an object key the way S3 writes s3.object.key in event notifications:
// application/x-www-form-urlencoded style, except that '/' is kept. Space becomes '+'; ASCII
// letters, digits and the characters - _ . * / are kept; every other byte (including '+', '%',
// '&', '=', '~' and each byte of a multi-byte UTF-8 sequence) becomes %XX with upper-case hex.
// "red flower.jpg" becomes "red+flower.jpg", "c++/a b.png" becomes "c%2B%2B/a+b.png".
//
// The kept set follows the common form encoder (Java's URLEncoder) plus '/'. AWS documents
// only "form-urlencoded" and the space example; '/' kept, '+' and '=' escaped are observed
// behaviour. Whether S3 escapes '~' and '*' is not documented; DecodeKey reads either form.
func EncodeKey(key string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(key) + len(key)/2)
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == ' ':
			b.WriteByte('+')
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '*', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0x0F])
		}
	}
	return b.String()
}

// DecodeKey decodes s3.object.key as url.QueryUnescape does ('+' is a space, %XX is a byte).
// A bad percent escape or a result that is not valid UTF-8 (S3 keys are UTF-8) is a permanent
// error with ReasonBadKeyEncoding.
func DecodeKey(raw string) (string, error) {
	key, err := url.QueryUnescape(raw)
	if err != nil {
		return "", failure.New(failure.Permanent, ReasonBadKeyEncoding, fmt.Errorf("decode key %q: %w", raw, err))
	}
	if !utf8.ValidString(key) {
		return "", failure.Permanentf(ReasonBadKeyEncoding, "decode key %q: not valid UTF-8", raw)
	}
	return key, nil
}
