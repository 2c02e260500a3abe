package visionserver

import "imgpipe/internal/visionstandin"

// The stand-in's wire types are defined once, in imgpipe/internal/visionstandin, which the
// product's tests use to drive the stand-in through its admin endpoints.
type (
	Faults         = visionstandin.Faults
	Duration       = visionstandin.Duration
	Latency        = visionstandin.Latency
	Transient      = visionstandin.Transient
	RateLimit      = visionstandin.RateLimit
	RetryAfterMode = visionstandin.RetryAfterMode
	Outage         = visionstandin.Outage
	Stats          = visionstandin.Stats
)
