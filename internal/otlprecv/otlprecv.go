// Package otlprecv is an OTLP trace receiver for the tests, the benchmarks and the demo, built
// on the OTLP protobufs: the collector's TraceService over gRPC and POST /v1/traces
// (http/protobuf), both on loopback, keeping every span it is sent (in memory: for bounded
// runs only).
package otlprecv

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Receiver is the receiver. GRPCAddr is the gRPC endpoint's host:port, HTTPAddr the HTTP one's.
type Receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	GRPCAddr, HTTPAddr string

	grpc      *grpc.Server
	http      *http.Server
	done      sync.WaitGroup
	closeOnce sync.Once

	mu    sync.Mutex
	spans []Span
}

// Span is one received span, flattened for assertions.
type Span struct {
	Service, Name, Kind     string
	TraceID, SpanID, Parent string
	Error                   bool
	StatusMessage           string
	Attrs                   map[string]string
	Events                  []Event
	Links                   []string // linked span IDs
	Start, End              time.Time
}

// Event is a span's event.
type Event struct {
	Name  string
	Attrs map[string]string
}

// New starts a receiver on free loopback ports. Close stops it.
func New() (*Receiver, error) {
	r := &Receiver{}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		gl.Close()
		return nil, err
	}
	r.grpc = grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(r.grpc, r)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.serveHTTP)
	r.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	r.done.Add(2)
	go func() {
		defer r.done.Done()
		_ = r.grpc.Serve(gl)
	}()
	go func() {
		defer r.done.Done()
		_ = r.http.Serve(hl)
	}()
	r.GRPCAddr, r.HTTPAddr = gl.Addr().String(), hl.Addr().String()
	return r, nil
}

// Close stops the receiver and waits for its servers. Safe to call twice.
func (r *Receiver) Close() {
	r.closeOnce.Do(func() {
		r.grpc.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.http.Shutdown(ctx)
		r.done.Wait()
	})
}

// Export implements the collector's TraceService.
func (r *Receiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "want application/x-protobuf, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var in collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&in)
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *Receiver) add(req *collectortrace.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				got := Span{
					Service: service, Name: s.GetName(), Kind: s.GetKind().String(),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					Parent: hex.EncodeToString(s.GetParentSpanId()),
					Error:  s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR, StatusMessage: s.GetStatus().GetMessage(),
					Attrs: attrs(s.GetAttributes()),
					Start: time.Unix(0, int64(s.GetStartTimeUnixNano())), End: time.Unix(0, int64(s.GetEndTimeUnixNano())),
				}
				for _, e := range s.GetEvents() {
					got.Events = append(got.Events, Event{Name: e.GetName(), Attrs: attrs(e.GetAttributes())})
				}
				for _, l := range s.GetLinks() {
					got.Links = append(got.Links, hex.EncodeToString(l.GetSpanId()))
				}
				r.spans = append(r.spans, got)
			}
		}
	}
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.GetKey()] = v.GetStringValue()
		case *commonpb.AnyValue_IntValue:
			out[kv.GetKey()] = fmt.Sprint(v.GetIntValue())
		case *commonpb.AnyValue_BoolValue:
			out[kv.GetKey()] = fmt.Sprint(v.GetBoolValue())
		case *commonpb.AnyValue_DoubleValue:
			out[kv.GetKey()] = fmt.Sprint(v.GetDoubleValue())
		}
	}
	return out
}

// Where returns the spans received so far for which keep is true, in start order.
func (r *Receiver) Where(keep func(Span) bool) []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Span
	for _, s := range r.spans {
		if keep(s) {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Trace returns the spans of one trace.
func (r *Receiver) Trace(id string) []Span {
	return r.Where(func(s Span) bool { return s.TraceID == id })
}

// Named returns the spans of spans called name.
func Named(spans []Span, name string) []Span {
	var out []Span
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// Describe lists spans as name (service, ID) <- the parent's name, for failure messages.
func Describe(spans []Span) string {
	byID := map[string]Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	var b strings.Builder
	for _, s := range spans {
		parent := "root"
		if s.Parent != "" {
			parent = "?" + s.Parent
			if p, ok := byID[s.Parent]; ok {
				parent = p.Name
			}
		}
		fmt.Fprintf(&b, "\n  %s (%s, %s) <- %s error=%v %v", s.Name, s.Service, s.SpanID, parent, s.Error, s.Attrs)
	}
	return b.String()
}
