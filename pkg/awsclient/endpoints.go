package awsclient

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
)

// maxCachedEndpoints bounds the endpoints an S3 client remembers (one per bucket and
// setting combination it has called); beyond it, calls resolve as the SDK does.
const maxCachedEndpoints = 256

// cachedEndpoints is the S3 client's endpoint resolver: the SDK's own rules, evaluated once
// per distinct set of the parameters they read. The SDK evaluates its S3 rule set (hundreds
// of string tests and allocations) on every call, though the rules never read the object key,
// the listing prefix or the copy source, the only parameters that change from call to call
// on one bucket (TestEndpointCacheSameAsSDK). Errors are not kept.
type cachedEndpoints struct {
	rules s3.EndpointResolverV2
	mu    sync.RWMutex
	known map[endpointKey]smithyendpoints.Endpoint
}

func newCachedEndpoints(rules s3.EndpointResolverV2) *cachedEndpoints {
	return &cachedEndpoints{rules: rules, known: map[endpointKey]smithyendpoints.Endpoint{}}
}

// ResolveEndpoint implements s3.EndpointResolverV2. Each caller gets its own copy of the
// endpoint's headers and properties.
func (c *cachedEndpoints) ResolveEndpoint(ctx context.Context, p s3.EndpointParameters) (smithyendpoints.Endpoint, error) {
	k := keyOf(p)
	c.mu.RLock()
	e, ok := c.known[k]
	c.mu.RUnlock()
	if !ok {
		var err error
		if e, err = c.rules.ResolveEndpoint(ctx, p); err != nil {
			return e, err
		}
		c.mu.Lock()
		if len(c.known) < maxCachedEndpoints {
			c.known[k] = e
		}
		c.mu.Unlock()
	}
	return copyEndpoint(e), nil
}

// copyEndpoint copies e down to its auth options' properties, which the SDK's signing
// middlewares change per call.
func copyEndpoint(e smithyendpoints.Endpoint) smithyendpoints.Endpoint {
	out := smithyendpoints.Endpoint{URI: e.URI, Headers: e.Headers.Clone()}
	out.Properties.SetAll(&e.Properties)
	if opts, ok := smithyauth.GetAuthOptions(&e.Properties); ok {
		own := make([]*smithyauth.Option, len(opts))
		for i, o := range opts {
			c := &smithyauth.Option{SchemeID: o.SchemeID}
			c.IdentityProperties.SetAll(&o.IdentityProperties)
			c.SignerProperties.SetAll(&o.SignerProperties)
			own[i] = c
		}
		smithyauth.SetAuthOptions(&out.Properties, own)
	}
	return out
}

// endpointKey is every parameter of the S3 rule set but Key, Prefix and CopySource, by value.
type endpointKey struct {
	bucket, region, endpoint                               optString
	fips, dualStack, pathStyle, accelerate, globalEndpoint optBool
	objectLambda, noAccessPoints, noMultiRegion, arnRegion optBool
	expressControl, noExpressSessionAuth                   optBool
}

type optString struct {
	set bool
	v   string
}

type optBool int8 // 0 unset, 1 false, 2 true

func str(p *string) optString {
	if p == nil {
		return optString{}
	}
	return optString{true, *p}
}

func flag(p *bool) optBool {
	switch {
	case p == nil:
		return 0
	case *p:
		return 2
	}
	return 1
}

func keyOf(p s3.EndpointParameters) endpointKey {
	return endpointKey{
		bucket: str(p.Bucket), region: str(p.Region), endpoint: str(p.Endpoint),
		fips: flag(p.UseFIPS), dualStack: flag(p.UseDualStack), pathStyle: flag(p.ForcePathStyle),
		accelerate: flag(p.Accelerate), globalEndpoint: flag(p.UseGlobalEndpoint),
		objectLambda: flag(p.UseObjectLambdaEndpoint), noAccessPoints: flag(p.DisableAccessPoints),
		noMultiRegion: flag(p.DisableMultiRegionAccessPoints), arnRegion: flag(p.UseArnRegion),
		expressControl: flag(p.UseS3ExpressControlEndpoint), noExpressSessionAuth: flag(p.DisableS3ExpressSessionAuth),
	}
}
