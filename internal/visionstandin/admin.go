package visionstandin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Admin paths. They need no Azure key and are never subject to faults or counted in Stats.
const (
	AdminFaultsPath = "/admin/faults" // GET the faults in force; PUT a Faults document to replace them
	AdminStatsPath  = "/admin/stats"  // GET the Stats
	AdminResetPath  = "/admin/reset"  // POST: restore the initial faults and zero the stats
)

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case AdminFaultsPath:
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
	case AdminStatsPath:
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())
	case AdminResetPath:
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, notFound(), "", false)
	}
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
