// Package visionstandin is the interface of the project's Azure AI Vision stand-in: the
// fault and statistics documents of its admin endpoints, and a Client for them.
//
// The stand-in itself (module imgpipe/standins, package visionserver) runs as a process of its
// own, started by internal/devstack; neither it nor its image decoders are dependencies of the
// product. Tests and tools change its faults and read its counters only through the admin
// endpoints below, which need no Azure key and are never subject to faults or counted in
// Stats.
package visionstandin

import (
	"crypto/sha256"
	"encoding/hex"
)

// Admin paths of the stand-in.
const (
	AdminFaultsPath = "/admin/faults" // GET the faults in force; PUT a Faults document to replace them
	AdminStatsPath  = "/admin/stats"  // GET the Stats
	AdminResetPath  = "/admin/reset"  // POST: restore the initial faults and zero the stats
	// AdminClockPath sets the clock of a stand-in started with a manual clock (rate limiting
	// and outage windows): PUT {"now": RFC 3339 time}. Any other stand-in answers 409.
	AdminClockPath = "/admin/clock"
)

// DefaultKey is the subscription key the stand-in accepts when it is given none.
const DefaultKey = "local-vision-key"

// ContentKey is the key of an image in Stats.ByImage: the hex SHA-256 of its bytes.
func ContentKey(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Clock is the document of AdminClockPath.
type Clock struct {
	Now string `json:"now"` // RFC 3339, with fractional seconds when they matter
}
