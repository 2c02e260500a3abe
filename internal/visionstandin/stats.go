package visionstandin

import "maps"

// Stats counts what reached the stand-in's analysis operations (never /admin/), so tests
// can assert on what the service saw.
type Stats struct {
	// Calls is every request outside /admin/, whatever its answer.
	Calls int64 `json:"calls"`
	// ByStatus counts answers by HTTP status ("200", "429"...). "499" counts callers that
	// went away before the answer (during injected latency). Dropped connections are
	// counted in Dropped only.
	ByStatus map[string]int64 `json:"byStatus"`
	// ByAPIVersion counts calls by API: the 4.0 api-version query value ("2024-02-01",
	// "(none)" when missing) or "v3.2".
	ByAPIVersion map[string]int64 `json:"byApiVersion"`
	// Analyses counts successful (200) analyses.
	Analyses int64 `json:"analyses"`
	// Throttled counts 429 answers.
	Throttled int64 `json:"throttled"`
	// Transient counts injected 500/503 answers (outages not included).
	Transient int64 `json:"transient"`
	// Delayed counts calls that were given injected latency.
	Delayed int64 `json:"delayed"`
	// Dropped counts connections closed without an answer during a "drop" outage.
	Dropped int64 `json:"dropped"`
	// ByImage counts successful analyses per image, keyed by ContentKey (hex SHA-256 of the
	// image bytes, whether they came in the body or from a URL).
	ByImage map[string]int64 `json:"byImage"`
	// OutageActive reports whether an outage window covers the moment of the snapshot.
	OutageActive bool `json:"outageActive"`
}

// AnalysedCount returns how many times the image with these bytes was analysed successfully.
func (s Stats) AnalysedCount(image []byte) int64 { return s.ByImage[ContentKey(image)] }

// NewStats returns zero Stats with their maps made.
func NewStats() Stats {
	return Stats{ByStatus: map[string]int64{}, ByAPIVersion: map[string]int64{}, ByImage: map[string]int64{}}
}

// Clone returns a deep copy of s.
func (s Stats) Clone() Stats {
	s.ByStatus = maps.Clone(s.ByStatus)
	s.ByAPIVersion = maps.Clone(s.ByAPIVersion)
	s.ByImage = maps.Clone(s.ByImage)
	return s
}
