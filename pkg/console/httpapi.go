package console

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexstore"
)

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"requestId"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v) // the client went away: nothing left to tell it
}

func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.RequestID = e.Code, e.Message, requestID(r)
	writeJSON(w, e.Status, b)
}

// fail answers err: an *apiError as it is; a classified failure from the index or a cloud as
// 400 (a permanent error the request caused), 503 with Retry-After (transient, throttled);
// anything else as 500 without its detail, which is logged.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, r, ae)
		return
	}
	switch failure.ReasonOf(err) {
	case indexstore.ReasonInvalidCursor:
		writeError(w, r, badRequest(CodeInvalidCursor, "%s", innermost(err)))
		return
	case indexstore.ReasonInvalidLimit:
		writeError(w, r, badRequest(CodeInvalidLimit, "%s", innermost(err)))
		return
	}
	s.log.Warn("request failed", zap.String("request_id", requestID(r)), zap.String("path", r.URL.Path), zap.Error(err))
	var fe *failure.Error
	if errors.As(err, &fe) && fe.Class != failure.Permanent {
		retry := 5 * time.Second
		if fe.RetryAfter > 0 {
			retry = fe.RetryAfter
		}
		w.Header().Set("Retry-After", fmt.Sprint(int(retry.Round(time.Second)/time.Second)))
		writeError(w, r, &apiError{Status: 503, Code: CodeUnavailable, Message: "a backing service is unavailable (" + fe.Reason + "); try again"})
		return
	}
	writeError(w, r, &apiError{Status: 500, Code: CodeInternal, Message: "internal error; the console's log has the details under this request ID"})
}

// innermost is the message of the deepest error in err's chain.
func innermost(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// decodeJSON reads a JSON body of at most limit bytes into v: a JSON content type is required
// (which also keeps cross-site forms out), unknown fields and trailing data are errors.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) *apiError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &apiError{Status: 415, Code: CodeUnsupportedMedia, Message: "send the body as application/json"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &apiError{Status: 413, Code: CodeBodyTooLarge, Message: fmt.Sprintf("body larger than %d bytes", limit)}
		}
		return badRequest(CodeBadRequest, "body is not the expected JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &apiError{Status: 413, Code: CodeBodyTooLarge, Message: fmt.Sprintf("body larger than %d bytes", limit)}
		}
		return badRequest(CodeBadRequest, "body has data after its JSON value")
	}
	return nil
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyUser
)

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(keyRequestID).(string)
	return id
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
