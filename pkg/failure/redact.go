package failure

import (
	"regexp"
	"strings"
)

// Redacted replaces what RedactURLs removes.
const Redacted = "[redacted]"

var (
	// anyURL is a URL written out in text, up to the first space or quote.
	anyURL = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>]+`)
	// signingParam is a query parameter that carries a credential, wherever it appears: the
	// signature, credential and session token of an AWS SigV4 presigned URL and of a Google
	// signed URL, in plain or URL-encoded form.
	signingParam = regexp.MustCompile(`(?i)x-(?:amz|goog)-(?:signature|credential|security-token)(?:=|%3d)[^&\s"'<>]*`)
)

// signingKeys are the query parameters whose presence makes a URL's whole query a secret:
// AWS and Google signed URLs, and an Azure SAS token (sig).
var signingKeys = map[string]bool{
	"x-amz-signature": true, "x-amz-credential": true, "x-amz-security-token": true,
	"x-goog-signature": true, "x-goog-credential": true, "sig": true,
}

// RedactURLs removes from s the query of every URL that carries a signature or a credential
// (a presigned S3 GET, a Google signed URL, an Azure SAS), keeping the scheme, host and path
// an operator needs, and any signing parameter left outside a URL. It is for text that comes
// from elsewhere (a service's error message) before it reaches logs, DLQ attributes or
// metrics.
func RedactURLs(s string) string {
	s = anyURL.ReplaceAllStringFunc(s, func(u string) string {
		base, query, ok := strings.Cut(u, "?")
		if !ok {
			return u
		}
		query, _, _ = strings.Cut(query, "#")
		for _, kv := range strings.Split(query, "&") {
			k, _, _ := strings.Cut(kv, "=")
			if signingKeys[strings.ToLower(k)] {
				return base + "?" + Redacted
			}
		}
		return u
	})
	return signingParam.ReplaceAllString(s, Redacted)
}
