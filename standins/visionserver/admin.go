package visionserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"imgpipe/internal/visionstandin"
)

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case visionstandin.AdminFaultsPath:
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, s.Faults())
		case http.MethodPut:
			f, err := decodeFaults(r.Body)
			if err == nil {
				err = s.SetFaults(f)
			}
			if err != nil {
				writeError(w, badArgument("%v", err), "", false)
				return
			}
			writeJSON(w, http.StatusOK, s.Faults())
		default:
			methodNotAllowed(w, "GET, PUT")
		}
	case visionstandin.AdminStatsPath:
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())
	case visionstandin.AdminResetPath:
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	case visionstandin.AdminClockPath:
		if r.Method != http.MethodPut {
			methodNotAllowed(w, "PUT")
			return
		}
		if s.manual == nil {
			writeError(w, gatewayError(http.StatusConflict, "The stand-in runs on the real clock: start it with a manual clock to set it"), "", false)
			return
		}
		var c visionstandin.Clock
		raw, _, err := readAtMost(r.Body, 1<<10)
		if err == nil {
			err = json.Unmarshal(raw, &c)
		}
		t, perr := time.Parse(time.RFC3339Nano, c.Now)
		if err != nil || perr != nil {
			writeError(w, badArgument("clock: want {\"now\": RFC 3339 time}, got %q", raw), "", false)
			return
		}
		s.manual.set(t)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, notFound(), "", false)
	}
}

// manualClock is a clock that moves only when set.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// decodeFaults reads one Faults document, refusing unknown members so that a typo in a
// test's fault settings fails loudly instead of injecting nothing.
func decodeFaults(r io.Reader) (Faults, error) {
	raw, tooBig, err := readAtMost(r, 1<<20)
	if err != nil {
		return Faults{}, fmt.Errorf("read faults: %w", err)
	}
	if tooBig {
		return Faults{}, fmt.Errorf("faults document larger than 1 MiB")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f Faults
	if err := dec.Decode(&f); err != nil {
		return Faults{}, fmt.Errorf("decode faults: %w", err)
	}
	if dec.More() {
		return Faults{}, fmt.Errorf("decode faults: trailing data after the document")
	}
	return f, nil
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, gatewayError(http.StatusMethodNotAllowed, "Method not allowed"), "", false)
}
