package proctest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"imgpipe/internal/visionstandin"
)

func visionAdmin(endpoint, path string) string {
	return strings.TrimRight(endpoint, "/") + path
}

// SetVisionFaults replaces every fault of the Vision stand-in (running in the devstack
// process) with f.
func (st *Stack) SetVisionFaults(f visionstandin.Faults) error {
	return SetVisionFaults(st.HTTP, st.Env["AZURE_VISION_ENDPOINT"], f)
}

// SetVisionFaults replaces every fault of the Vision stand-in at endpoint with f, through
// its admin endpoint.
func SetVisionFaults(c *http.Client, endpoint string, f visionstandin.Faults) error {
	body, err := json.Marshal(f)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPut, visionAdmin(endpoint, visionstandin.AdminFaultsPath), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT %s %s: %s: %s", visionstandin.AdminFaultsPath, body, resp.Status, got)
	}
	return nil
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
	var s visionstandin.Stats
	resp, err := c.Get(visionAdmin(endpoint, visionstandin.AdminStatsPath))
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET %s: %s", visionstandin.AdminStatsPath, resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}
