package s3standin

import (
	"encoding/xml"
	"net/http"
)

// Admin paths of the stand-in, beside the S3 API. An underscore cannot start a bucket name,
// so they never shadow an S3 request.
const (
	// AdminLifecyclePath runs lifecycle expiration now: POST [?at=RFC 3339 time] answers a
	// LifecycleResult.
	AdminLifecyclePath = "/_standin/lifecycle"
	// AdminFlushPath waits until every event message enqueued before the call has been
	// delivered: POST [?timeout=Go duration, default 30s]; 204, or 503 with the reason.
	AdminFlushPath = "/_standin/flush"
	// AdminStatsPath answers the Stats: GET.
	AdminStatsPath = "/_standin/stats"
)

// Stats counts the stand-in's notification traffic since it started.
type Stats struct {
	// Enqueued is how many event messages were accepted for delivery.
	Enqueued uint64 `json:"enqueued"`
	// Sent is how many of them SQS accepted.
	Sent uint64 `json:"sent"`
	// TestEvents is how many s3:TestEvent messages were sent to validate configurations.
	TestEvents uint64 `json:"testEvents"`
	// FailedAttempts counts failed delivery attempts of single messages (each is retried).
	FailedAttempts uint64 `json:"failedAttempts"`
	// Dropped is how many event messages were given up: their queue stayed missing, SQS
	// rejected them as malformed, or they could not be encoded. Each is logged.
	Dropped uint64 `json:"dropped"`
	// Pending is how many event messages wait for delivery now (including in flight).
	Pending int `json:"pending"`
}

// LifecycleResult counts what one run of lifecycle expiration did.
type LifecycleResult struct {
	// Expired is how many noncurrent versions (and objects of unversioned buckets) were
	// deleted for good: each sent LifecycleExpiration:Delete.
	Expired int `json:"expired"`
	// DeleteMarkers is how many current versions of versioned buckets got a delete marker:
	// each sent LifecycleExpiration:DeleteMarkerCreated.
	DeleteMarkers int `json:"deleteMarkers"`
}

// ErrorDocument is S3's error document.
type ErrorDocument struct {
	XMLName       xml.Name `xml:"Error"`
	Code          string   `xml:"Code"`
	Message       string   `xml:"Message"`
	ArgumentName  string   `xml:"ArgumentName,omitempty"`
	ArgumentValue string   `xml:"ArgumentValue,omitempty"`
	RequestID     string   `xml:"RequestId"`
	HostID        string   `xml:"HostId"`
}

// Write answers with the document and status as S3 does (no body for HEAD).
func (d ErrorDocument) Write(w http.ResponseWriter, r *http.Request, status int) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	body, _ := xml.Marshal(d)
	_, _ = w.Write(append([]byte(xml.Header), body...))
}
