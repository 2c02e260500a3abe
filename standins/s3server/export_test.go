package s3server

import "time"

// SetMissingQueueGrace changes how long events for a missing queue are retried.
func SetMissingQueueGrace(s *Server, d time.Duration) { s.sender.missingGrace = d }
