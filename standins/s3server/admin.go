package s3server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"imgpipe/internal/s3standin"
)

// serveAdmin serves the stand-in's own endpoints (s3standin.Admin*Path).
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case s3standin.AdminLifecyclePath:
		s.serveLifecycleAdmin(w, r)
	case s3standin.AdminFlushPath:
		if r.Method != http.MethodPost {
			http.Error(w, "POST "+s3standin.AdminFlushPath+"?timeout=DURATION delivers the pending event messages", http.StatusMethodNotAllowed)
			return
		}
		timeout := 30 * time.Second
		if v := r.URL.Query().Get("timeout"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				http.Error(w, fmt.Sprintf("timeout=%q: want a positive Go duration such as 10s", v), http.StatusBadRequest)
				return
			}
			timeout = d
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := s.Flush(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case s3standin.AdminStatsPath:
		if r.Method != http.MethodGet {
			http.Error(w, "GET "+s3standin.AdminStatsPath, http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
	default:
		http.Error(w, "unknown stand-in endpoint "+r.URL.Path, http.StatusNotFound)
	}
}
