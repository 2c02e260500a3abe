package visionstandin

import (
	"context"
	"net/http"
	"strings"
	"time"

	"imgpipe/internal/adminhttp"
)

// Client drives a running Vision stand-in through its admin endpoints.
type Client struct {
	endpoint string
	http     *http.Client
}

// NewClient returns a Client for the stand-in at endpoint (its base URL, as given to the
// Vision clients). A nil hc means a client with a 10 s timeout.
func NewClient(endpoint string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{endpoint: strings.TrimRight(endpoint, "/"), http: hc}
}

// Endpoint is the stand-in's base URL.
func (c *Client) Endpoint() string { return c.endpoint }

// PutFaults replaces every fault of the stand-in with f.
func (c *Client) PutFaults(ctx context.Context, f Faults) error {
	return c.do(ctx, http.MethodPut, AdminFaultsPath, f, nil)
}

// GetFaults returns the faults in force.
func (c *Client) GetFaults(ctx context.Context) (Faults, error) {
	var f Faults
	err := c.do(ctx, http.MethodGet, AdminFaultsPath, nil, &f)
	return f, err
}

// GetStats returns the stand-in's counters.
func (c *Client) GetStats(ctx context.Context) (Stats, error) {
	s := NewStats()
	err := c.do(ctx, http.MethodGet, AdminStatsPath, nil, &s)
	return s, err
}

// PostReset restores the stand-in's initial faults and zeroes its counters.
func (c *Client) PostReset(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, AdminResetPath, nil, nil)
}

// PutClock sets the clock of a stand-in started with a manual clock.
func (c *Client) PutClock(ctx context.Context, now time.Time) error {
	return c.do(ctx, http.MethodPut, AdminClockPath, Clock{Now: now.UTC().Format(time.RFC3339Nano)}, nil)
}

// The methods below have the shape of the in-process stand-in's that tests were written
// against. A failed admin call is a broken test setup, never a result to assert on: SetFaults
// returns the error, Faults and Stats panic with it (so that zero counters can never be
// mistaken for "nothing happened"), and Reset panics too.

// SetFaults is PutFaults with a 10 s bound.
func (c *Client) SetFaults(f Faults) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.PutFaults(ctx, f)
}

// Faults is GetFaults; it panics if the stand-in does not answer.
func (c *Client) Faults() Faults { return adminhttp.Must("vision stand-in", c.GetFaults) }

// Stats is GetStats; it panics if the stand-in does not answer.
func (c *Client) Stats() Stats { return adminhttp.Must("vision stand-in", c.GetStats) }

// Reset is PostReset; it panics if the stand-in does not answer.
func (c *Client) Reset() {
	adminhttp.Must("vision stand-in", func(ctx context.Context) (struct{}, error) { return struct{}{}, c.PostReset(ctx) })
}

// do sends one admin request with in as its JSON body (nil: none) and decodes a 2xx answer's
// JSON body into out (nil: discarded).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return adminhttp.Do(ctx, c.http, method, c.endpoint+path, path, in, out)
}
