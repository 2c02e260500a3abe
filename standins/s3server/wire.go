package s3server

import "imgpipe/internal/s3standin"

// The stand-in's wire types are defined once, in imgpipe/internal/s3standin, which the
// product's tests use to drive the stand-in through its admin endpoints.
type (
	Stats           = s3standin.Stats
	LifecycleResult = s3standin.LifecycleResult
)
