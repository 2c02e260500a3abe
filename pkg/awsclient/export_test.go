package awsclient

import "github.com/aws/aws-sdk-go-v2/service/s3"

// NewCachedEndpoints is newCachedEndpoints for the external tests, with the count of the
// endpoints it keeps.
func NewCachedEndpoints(rules s3.EndpointResolverV2) (s3.EndpointResolverV2, func() int) {
	c := newCachedEndpoints(rules)
	return c, func() int { c.mu.RLock(); defer c.mu.RUnlock(); return len(c.known) }
}
