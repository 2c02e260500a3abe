package k8s

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kedacore/keda/v2/pkg/scalers"
	v2 "k8s.io/api/autoscaling/v2"
)

// KEDA's own prometheus scaler accepts every indexer trigger of every overlay and gives the
// HPA the threshold as the per-replica target. (Querying needs a Prometheus with the
// analyzers' series, which no test here runs; docs/deploy.md says so.)
func TestKEDAAcceptsTheIndexerTriggers(t *testing.T) {
	ctx := context.Background()
	for _, overlay := range Overlays {
		s, err := Build(filepath.Join(Dir(), "overlays", overlay))
		if err != nil {
			t.Fatal(err)
		}
		so := s.ScaledObjects[indexerName]
		checked := 0
		for i, tr := range so.Spec.Triggers {
			if tr.AuthenticationRef != nil {
				// GKE's trigger on Google's managed Prometheus authenticates as KEDA's
				// operator through Google's metadata server, which is not here: only its
				// decoding and KEDA's trigger validation are checked (TestOverlays).
				continue
			}
			checked++
			t.Run(overlay+"/"+tr.Name, func(t *testing.T) {
				sc, err := scalers.NewPrometheusScaler(scalerConfig(so, i, tr.Metadata, map[string]string{}))
				if err != nil {
					t.Fatalf("KEDA rejects the trigger: %v", err)
				}
				defer sc.Close(ctx)
				specs := sc.GetMetricSpecForScaling(ctx)
				want, _ := strconv.ParseFloat(tr.Metadata["threshold"], 64)
				if len(specs) != 1 || specs[0].External == nil || specs[0].External.Target.Type != v2.AverageValueMetricType ||
					specs[0].External.Target.AverageValue == nil || specs[0].External.Target.AverageValue.AsApproximateFloat64() != want {
					t.Fatalf("metric spec %+v, want an average value target of %g per replica", specs, want)
				}
			})
		}
		if checked == 0 {
			t.Errorf("%s: no indexer trigger without authentication to check", overlay)
		}
	}
}
