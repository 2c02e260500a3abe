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

func (st *Stack) visionAdmin(path string) string {
	return strings.TrimRight(st.Env["AZURE_VISION_ENDPOINT"], "/") + path
}

// SetVisionFaults replaces every fault of the Vision stand-in (running in the devstack
// process) with f.
func (st *Stack) SetVisionFaults(f visionstandin.Faults) error {
	body, err := json.Marshal(f)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPut, st.visionAdmin(visionstandin.AdminFaultsPath), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := st.HTTP.Do(req)
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
	var s visionstandin.Stats
	resp, err := st.HTTP.Get(st.visionAdmin(visionstandin.AdminStatsPath))
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET %s: %s", visionstandin.AdminStatsPath, resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}
