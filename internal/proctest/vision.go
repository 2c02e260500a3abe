package proctest

import (
	"context"
	"net/http"
	"time"

	"imgpipe/internal/visionstandin"
)

// SetVisionFaults replaces every fault of the Vision stand-in (running under the devstack
// process) with f.
func (st *Stack) SetVisionFaults(f visionstandin.Faults) error {
	return SetVisionFaults(st.HTTP, st.Env["AZURE_VISION_ENDPOINT"], f)
}

// SetVisionFaults replaces every fault of the Vision stand-in at endpoint with f, through
// its admin endpoint.
func SetVisionFaults(c *http.Client, endpoint string, f visionstandin.Faults) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return visionstandin.NewClient(endpoint, c).PutFaults(ctx, f)
}

// LatencyQuota is the faults of a Vision with a fixed latency and, when perSecond > 0, a
// token-bucket quota answering 429 beyond it.
func LatencyQuota(latency time.Duration, perSecond float64, burst int) visionstandin.Faults {
	var f visionstandin.Faults
	f.Latency.Fixed = visionstandin.Duration(latency)
	f.RateLimit = visionstandin.RateLimit{PerSecond: perSecond, Burst: burst}
	return f
}

// VisionStats returns the Vision stand-in's counters (cumulative since the stack started).
func (st *Stack) VisionStats() (visionstandin.Stats, error) {
	return VisionStats(st.HTTP, st.Env["AZURE_VISION_ENDPOINT"])
}

// VisionStats returns the counters of the Vision stand-in at endpoint, through its admin
// endpoint.
func VisionStats(c *http.Client, endpoint string) (visionstandin.Stats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return visionstandin.NewClient(endpoint, c).GetStats(ctx)
}
