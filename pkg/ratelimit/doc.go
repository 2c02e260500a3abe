// Package ratelimit bounds how fast and how many: a token bucket for calls per second shared
// by every worker, optionally adaptive (its rate follows the far side's throttling, so that
// replicas sharing one quota settle on their shares without talking to each other), and an
// adaptive (AIMD) limit on calls in flight that halves when the far side throttles and creeps
// back up while it does not.
//
// Both are pure: no goroutines, and the bucket takes its clock from the caller so that it can
// be tested without sleeping.
package ratelimit
