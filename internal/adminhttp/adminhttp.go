// Package adminhttp is the one JSON request helper of the stand-ins' admin clients
// (internal/s3standin, internal/visionstandin).
package adminhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Do sends one admin request to url with in as its JSON body (nil: none) and decodes a 2xx
// answer's JSON body into out (nil: discarded). Any other status is an error quoting the
// answer. Errors name the method and path.
func Do(ctx context.Context, hc *http.Client, method, url, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Must runs get bounded by 10 s and panics when it fails: a failed admin call is a broken
// test setup, never a result to assert on, so zero counters cannot pass for "nothing
// happened". name says which stand-in, for the panic.
func Must[T any](name string, get func(context.Context) (T, error)) T {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := get(ctx)
	if err != nil {
		panic(fmt.Sprintf("%s admin: %v", name, err))
	}
	return v
}
