package s3standin

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"imgpipe/internal/adminhttp"
)

// Client drives a running S3 stand-in through its admin endpoints and, when it has one, the
// Front its clients go through.
type Client struct {
	endpoint string
	http     *http.Client
	front    *Front
}

// NewClient returns a Client for the stand-in at endpoint (its own base URL, not the
// front's). front may be nil: then SetFault panics. A nil hc means a client without a
// timeout (Flush bounds itself).
func NewClient(endpoint string, front *Front, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{endpoint: strings.TrimRight(endpoint, "/"), http: hc, front: front}
}

// Endpoint is the stand-in's own base URL (behind the front, if any).
func (c *Client) Endpoint() string { return c.endpoint }

// Front returns the front, or nil.
func (c *Client) Front() *Front { return c.front }

// Flush waits until every event message enqueued before the call has been delivered to SQS,
// or ctx ends; a dropped message makes it fail.
func (c *Client) Flush(ctx context.Context) error {
	q := url.Values{}
	if d, ok := ctx.Deadline(); ok {
		q.Set("timeout", max(time.Until(d), time.Millisecond).String())
	}
	err := c.do(ctx, http.MethodPost, AdminFlushPath, q, nil)
	return err
}

// RunLifecycle applies every bucket's lifecycle expiration rules as S3 would at time at, and
// sends their events.
func (c *Client) RunLifecycle(ctx context.Context, at time.Time) (LifecycleResult, error) {
	var res LifecycleResult
	err := c.do(ctx, http.MethodPost, AdminLifecyclePath, url.Values{"at": {at.UTC().Format(time.RFC3339Nano)}}, &res)
	return res, err
}

// GetStats returns the notification counters.
func (c *Client) GetStats(ctx context.Context) (Stats, error) {
	var s Stats
	err := c.do(ctx, http.MethodGet, AdminStatsPath, nil, &s)
	return s, err
}

// Stats is GetStats bounded by 10 s. A failed admin call is a broken test setup, never a
// result to assert on: it panics, so that zero counters cannot pass for "nothing happened".
func (c *Client) Stats() Stats { return adminhttp.Must("s3 stand-in", c.GetStats) }

// SetFault installs f on the front for every request from now on; nil removes it. It panics
// when the stand-in has no front.
func (c *Client) SetFault(f Fault) {
	if c.front == nil {
		panic("s3 stand-in: no front to install a fault on")
	}
	c.front.SetFault(f)
}

// Refuse answers r with an S3 error document (see Front.Refuse).
func (c *Client) Refuse(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	c.front.Refuse(w, r, status, code, message)
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, out any) error {
	u := c.endpoint + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return adminhttp.Do(ctx, c.http, method, u, path, nil, out)
}
