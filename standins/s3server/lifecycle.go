package s3server

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
	"go.uber.org/zap"

	"imgpipe/pkg/s3event"

	"imgpipe/internal/s3standin"
)

// Lifecycle configuration (PUT/GET/DELETE /BUCKET?lifecycle) and its expiration, which S3 runs
// asynchronously about once a day and the stand-in runs when asked: Server.RunLifecycle, or
// POST /_standin/lifecycle[?at=RFC3339 time].

const maxLifecycleRules = 1000

// lifecycleConfig is a bucket's validated lifecycle rules.
type lifecycleConfig struct {
	rules []lifecycleRule
	raw   []lifecycleRuleXML // as received, for GET
}

type lifecycleRule struct {
	id      string
	enabled bool
	prefix  string
	// expirationDays > 0 expires current versions this many days after their creation.
	expirationDays int
	// noncurrentDays > 0 permanently deletes noncurrent versions this many days after they
	// became noncurrent, keeping the newest keepNewer noncurrent versions.
	noncurrentDays int
	keepNewer      int
}

type lifecycleXML struct {
	XMLName xml.Name           `xml:"LifecycleConfiguration"`
	Xmlns   string             `xml:"xmlns,attr,omitempty"`
	Rules   []lifecycleRuleXML `xml:"Rule"`
	Other   []xmlAnyElement    `xml:",any"`
}

type lifecycleRuleXML struct {
	ID     string `xml:"ID,omitempty"`
	Status string `xml:"Status"`
	// Prefix is the rule's legacy top-level prefix (instead of Filter).
	Prefix *string `xml:"Prefix,omitempty"`
	Filter *struct {
		Prefix *string         `xml:"Prefix,omitempty"`
		Other  []xmlAnyElement `xml:",any"`
	} `xml:"Filter,omitempty"`
	Expiration *struct {
		Days  int             `xml:"Days,omitempty"`
		Other []xmlAnyElement `xml:",any"`
	} `xml:"Expiration,omitempty"`
	NoncurrentVersionExpiration *struct {
		NoncurrentDays          int             `xml:"NoncurrentDays,omitempty"`
		NewerNoncurrentVersions int             `xml:"NewerNoncurrentVersions,omitempty"`
		Other                   []xmlAnyElement `xml:",any"`
	} `xml:"NoncurrentVersionExpiration,omitempty"`
	Other []xmlAnyElement `xml:",any"`
}

// xmlAnyElement catches an element the stand-in does not model, so that it is refused rather
// than silently ignored.
type xmlAnyElement struct {
	XMLName xml.Name
}

func names(els []xmlAnyElement) string {
	out := make([]string, len(els))
	for i, e := range els {
		out[i] = e.XMLName.Local
	}
	return strings.Join(out, ", ")
}

func notImplemented(what string) *argError {
	return &argError{Status: http.StatusNotImplemented, Code: "NotImplemented",
		Message: "s3standin does not model " + what + " in lifecycle rules (it models Filter/Prefix, " +
			"Expiration/Days and NoncurrentVersionExpiration/NoncurrentDays with NewerNoncurrentVersions)"}
}

func malformedXML() *argError {
	return &argError{Status: 400, Code: "MalformedXML",
		Message: "The XML you provided was not well-formed or did not validate against our published schema"}
}

// parseLifecycle decodes and validates a PutBucketLifecycleConfiguration body.
func parseLifecycle(body []byte) (*lifecycleConfig, error) {
	var in lifecycleXML
	if err := xml.Unmarshal(body, &in); err != nil || len(in.Other) > 0 {
		return nil, malformedXML()
	}
	if len(in.Rules) == 0 || len(in.Rules) > maxLifecycleRules {
		return nil, malformedXML()
	}
	cfg := &lifecycleConfig{raw: in.Rules}
	ids := map[string]bool{}
	for _, r := range in.Rules {
		rule := lifecycleRule{id: r.ID}
		if len(r.ID) > 255 {
			return nil, invalidArgument("ID length should not exceed allowed limit of 255", "ID", r.ID)
		}
		if r.ID != "" {
			if ids[r.ID] {
				return nil, invalidArgument("Rule ID must be unique. Found same ID for more than one rule", "ID", r.ID)
			}
			ids[r.ID] = true
		}
		switch r.Status {
		case "Enabled":
			rule.enabled = true
		case "Disabled":
		default:
			return nil, malformedXML()
		}
		if len(r.Other) > 0 {
			return nil, notImplemented(names(r.Other))
		}
		switch {
		case r.Filter != nil && r.Prefix != nil:
			return nil, malformedXML()
		case r.Filter != nil:
			if len(r.Filter.Other) > 0 {
				return nil, notImplemented("Filter/" + names(r.Filter.Other))
			}
			if r.Filter.Prefix != nil {
				rule.prefix = *r.Filter.Prefix
			}
		case r.Prefix != nil:
			rule.prefix = *r.Prefix
		}
		if e := r.Expiration; e != nil {
			if len(e.Other) > 0 {
				return nil, notImplemented("Expiration/" + names(e.Other))
			}
			if e.Days <= 0 {
				return nil, invalidArgument("'Days' for Expiration action must be a positive integer", "Days", fmt.Sprint(e.Days))
			}
			rule.expirationDays = e.Days
		}
		if n := r.NoncurrentVersionExpiration; n != nil {
			if len(n.Other) > 0 {
				return nil, notImplemented("NoncurrentVersionExpiration/" + names(n.Other))
			}
			if n.NoncurrentDays <= 0 {
				return nil, invalidArgument("'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
					"NoncurrentDays", fmt.Sprint(n.NoncurrentDays))
			}
			if n.NewerNoncurrentVersions < 0 || n.NewerNoncurrentVersions > 100 {
				return nil, invalidArgument("'NewerNoncurrentVersions' must be between 1 and 100", "NewerNoncurrentVersions",
					fmt.Sprint(n.NewerNoncurrentVersions))
			}
			rule.noncurrentDays, rule.keepNewer = n.NoncurrentDays, n.NewerNoncurrentVersions
		}
		if rule.expirationDays == 0 && rule.noncurrentDays == 0 {
			return nil, invalidArgument("At least one action needs to be specified in a rule", "Action", "")
		}
		cfg.rules = append(cfg.rules, rule)
	}
	return cfg, nil
}

// serveLifecycle serves PUT, GET and DELETE /bucket?lifecycle.
func (s *Server) serveLifecycle(w http.ResponseWriter, r *http.Request, bucket string) {
	s.serveBucketConfig(w, r, bucket, bucketConfig{
		put: func(r *http.Request, body []byte) error {
			if err := verifyBodyChecksum(r.Header, body); err != nil {
				return err
			}
			cfg, err := parseLifecycle(body)
			if err != nil {
				return err
			}
			s.backend.setLifecycle(bucket, cfg)
			return nil
		},
		get: func() (any, bool) {
			cfg := s.backend.getLifecycle(bucket)
			if cfg == nil {
				return nil, false
			}
			return lifecycleXML{Xmlns: s3Namespace, Rules: cfg.raw}, true
		},
		remove: func() { s.backend.setLifecycle(bucket, nil) },
		missing: &argError{Status: http.StatusNotFound, Code: "NoSuchLifecycleConfiguration",
			Message: "The lifecycle configuration does not exist", ArgumentName: "BucketName", ArgumentValue: bucket},
	})
}

// RunLifecycle applies every bucket's lifecycle expiration rules as S3 would at time at, and
// sends their events. S3 runs lifecycle asynchronously, about once a day, and counts days to
// the next midnight UTC: an object created on day D with Days=1 expires from D+2 00:00 UTC.
// Each key is locked while its versions are expired, so the events' sequencers follow the
// key's writes.
func (s *Server) RunLifecycle(ctx context.Context, at time.Time) (LifecycleResult, error) {
	var res LifecycleResult
	if s.closed.Load() {
		return res, fmt.Errorf("s3standin is closed")
	}
	for _, bk := range s.backend.lifecycleTargets() {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		unlock := s.locks.lock(bk[0], []string{bk[1]})
		expired := s.backend.expire(bk[0], bk[1], at)
		now := time.Now().UTC().Truncate(time.Millisecond)
		configs := s.configsOf(bk[0])
		for _, x := range expired {
			if x.marker {
				res.DeleteMarkers++
			} else {
				res.Expired++
			}
			if len(configs) == 0 || s.sender == nil {
				continue
			}
			rc := s3event.NewRecord(x.event(), bk[0], bk[1], now)
			rc.Region, rc.BucketOwner = s.opts.Region, s.opts.AccountID
			rc.PrincipalID, rc.SourceIP = "s3.amazonaws.com", "s3.amazonaws.com"
			rc.RequestID = fmt.Sprintf("%016X", s.requestID.Add(1))
			rc.VersionID = x.versionID
			s.emit(configs, &rc)
		}
		unlock()
	}
	if res.Expired+res.DeleteMarkers > 0 {
		s.log.Info("lifecycle expiration ran", zap.Time("at", at), zap.Int("expired", res.Expired),
			zap.Int("delete_markers", res.DeleteMarkers))
	}
	return res, nil
}

// serveLifecycleAdmin serves POST /_standin/lifecycle?at=TIME: RunLifecycle at TIME (RFC 3339,
// default now), answering its LifecycleResult as JSON.
func (s *Server) serveLifecycleAdmin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST "+s3standin.AdminLifecyclePath+"?at=RFC3339-time runs lifecycle expiration", http.StatusMethodNotAllowed)
		return
	}
	at := time.Now()
	if v := r.URL.Query().Get("at"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			http.Error(w, fmt.Sprintf("at=%q: want an RFC 3339 time such as 2030-01-02T00:00:00Z", v), http.StatusBadRequest)
			return
		}
		at = t
	}
	res, err := s.RunLifecycle(r.Context(), at)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// expiry is one version lifecycle removed, or one delete marker it added.
type expiry struct {
	versionID string // "" in an unversioned bucket
	marker    bool   // a delete marker was added (current version expired in a versioned bucket)
}

func (x expiry) event() string {
	if x.marker {
		return "LifecycleExpiration:DeleteMarkerCreated"
	}
	return "LifecycleExpiration:Delete"
}

// dueAt is when S3 acts on something days after t: t plus the days, rounded up to the next
// midnight UTC.
func dueAt(t time.Time, days int) time.Time {
	d := t.UTC().AddDate(0, 0, days)
	midnight := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
	if midnight.Before(d) {
		midnight = midnight.AddDate(0, 0, 1)
	}
	return midnight
}

func (s *store) setLifecycle(bucket string, cfg *lifecycleConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.buckets[bucket]; b != nil {
		b.lifecycle = cfg
	}
}

func (s *store) getLifecycle(bucket string) *lifecycleConfig {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if b := s.buckets[bucket]; b != nil {
		return b.lifecycle
	}
	return nil
}

// lifecycleTargets returns the (bucket, key) pairs some enabled lifecycle rule selects.
func (s *store) lifecycleTargets() [][2]string {
	s.mu.Lock() // keys() may rebuild the sorted list
	defer s.mu.Unlock()
	var out [][2]string
	for name, b := range s.buckets {
		if b.lifecycle == nil {
			continue
		}
		for _, key := range b.keys() {
			if slices.ContainsFunc(b.lifecycle.rules, func(r lifecycleRule) bool {
				return r.enabled && strings.HasPrefix(key, r.prefix)
			}) {
				out = append(out, [2]string{name, key})
			}
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
	return out
}

// expire applies the bucket's enabled rules to key at time at: noncurrent versions past
// their NoncurrentDays are deleted for good (beyond the NewerNoncurrentVersions kept), then a
// current version past its Days expires (deleted in an unversioned bucket; hidden behind a
// delete marker otherwise).
func (s *store) expire(bucket, key string, at time.Time) []expiry {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucket]
	if b == nil || b.lifecycle == nil || b.object(key) == nil {
		return nil
	}
	var out []expiry
	for _, r := range b.lifecycle.rules {
		if !r.enabled || !strings.HasPrefix(key, r.prefix) {
			continue
		}
		o := b.object(key)
		if o == nil {
			break
		}
		if r.noncurrentDays > 0 && b.versioning != gofakes3.VersioningNone {
			kept := 0
			for i := len(o.versions) - 2; i >= 0; i-- { // noncurrent versions, newest first
				v := o.versions[i]
				if kept < r.keepNewer {
					kept++
					continue
				}
				if at.Before(dueAt(v.noncurrentSince, r.noncurrentDays)) {
					continue
				}
				o.remove(i)
				out = append(out, expiry{versionID: v.id})
			}
		}
		if cur := o.current(); r.expirationDays > 0 && cur != nil && !cur.deleteMarker && !at.Before(dueAt(cur.modified, r.expirationDays)) {
			res := s.deleteCurrent(b, key)
			if res.IsDeleteMarker {
				out = append(out, expiry{versionID: string(res.VersionID), marker: true})
			} else {
				out = append(out, expiry{})
			}
		}
		b.prune(key)
	}
	return out
}
