package analyzer

import (
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
)

func TestShutdownBound(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name string
		opts *Options
		wait time.Duration
		want time.Duration
	}{
		// max(max(min(20,25)+10, 25+15+10, 25+15) + 5, 25+60) = max(55, 85); the sum is 60.
		{"defaults", nil, 20 * s, 85 * s},
		{"defaults spelled out", &Options{DrainTimeout: 25 * s}, 20 * s, 85 * s},
		// max(max(5+10, 5+25, 5+15) + 5, 5+60) = 65; the sum is 25.
		{"short drain", &Options{DrainTimeout: 5 * s}, 5 * s, 65 * s},
		// Short polling (no wait): no last poll. max(max(10, 50, 40) + 5, 85) = 85.
		{"short polling", nil, -1, 85 * s},
		// max(max(20+10, 120+25, 120+15) + 5, 120+60) = 180; the sum is 155.
		{"long drain", &Options{DrainTimeout: 120 * s}, 20 * s, 180 * s},
		// The mode plays no part.
		{"bad mode", &Options{Mode: "carrier-pigeon"}, 20 * s, 85 * s},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ShutdownBound(c.opts, c.wait); got != c.want {
				t.Errorf("ShutdownBound = %s, want %s", got, c.want)
			}
		})
	}
}

// The bound must never fall below the sum of the last poll, the drain and the delete flush,
// and must grow with each of them.
func TestShutdownBoundCoversTheSum(t *testing.T) {
	for _, w := range []time.Duration{-1, time.Second, 10 * time.Second, 20 * time.Second} {
		for _, d := range []time.Duration{time.Second, 25 * time.Second, 5 * time.Minute} {
			got := ShutdownBound(&Options{DrainTimeout: d}, w)
			if sum := max(w, 0) + d + deleteGrace; got < sum {
				t.Errorf("wait %s, drain %s: bound %s below the sum %s", w, d, got, sum)
			}
			if got < d+PublishFlushTimeout {
				t.Errorf("wait %s, drain %s: bound %s below the publisher's flush %s", w, d, got, d+PublishFlushTimeout)
			}
		}
	}
}

// PublishFlushTimeout stands for the Pub/Sub client's own publish timeout, which cmd/analyzer
// leaves at its default.
func TestPublishFlushTimeoutIsTheClientDefault(t *testing.T) {
	if got := pubsub.DefaultPublishSettings.Timeout; got != PublishFlushTimeout {
		t.Fatalf("pubsub.DefaultPublishSettings.Timeout = %s, PublishFlushTimeout = %s", got, PublishFlushTimeout)
	}
}
