// Package memobjects is an in-memory driver of pkg/objects, for fast tests of what reads
// objects: buckets with or without versioning, ETags (the MD5 of the content, as S3 gives a
// single-part upload), delete markers, and failures injected per request (SetFault) or into
// a body being read (SetBodyFault).
package memobjects

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"imgpipe/pkg/failure"
	"imgpipe/pkg/objects"
)

// Op names a request, for faults.
type Op string

// The requests.
const (
	ReadHead   Op = "ReadHead"
	Open       Op = "Open"
	PresignGet Op = "PresignGet"
	Write      Op = "Write"
	Remove     Op = "Remove"
	List       Op = "List"
)

// Fault decides a request's outcome before the store answers it: a non-nil error fails it. A
// fault may block, until ctx ends at most (a store that does not answer).
type Fault func(ctx context.Context, op Op, ref objects.Ref) error

// BodyFault may replace the body an Open returns (to cut it, or stall it).
type BodyFault func(ref objects.Ref, body io.ReadCloser) io.ReadCloser

// Store is an in-memory object store. Safe for concurrent use.
type Store struct {
	mu        sync.Mutex
	seq       int
	objects   map[string][]*version // bucket/key -> versions, oldest first
	versioned map[string]bool
	fault     Fault
	body      BodyFault
	reads     map[Op]int
}

type version struct {
	id     string // "" in an unversioned bucket
	etag   string
	data   []byte
	marker bool // a delete marker
	meta   map[string]string
}

// New returns an empty store.
func New() *Store {
	return &Store{objects: map[string][]*version{}, versioned: map[string]bool{}, reads: map[Op]int{}}
}

// SetVersioning turns versioning of bucket on or off (off: writes replace the object).
func (s *Store) SetVersioning(bucket string, on bool) {
	s.mu.Lock()
	s.versioned[bucket] = on
	s.mu.Unlock()
}

// SetFault replaces the request fault (nil: none).
func (s *Store) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// SetBodyFault replaces the body fault (nil: none).
func (s *Store) SetBodyFault(f BodyFault) {
	s.mu.Lock()
	s.body = f
	s.mu.Unlock()
}

// Requests returns how many requests of op were made.
func (s *Store) Requests(op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[op]
}

// Put stores data under bucket/key and returns its version ID ("" when unversioned) and ETag.
func (s *Store) Put(bucket, key string, data []byte) (versionID, etag string) {
	return s.PutMeta(bucket, key, data, nil)
}

// PutMeta is Put with user metadata (keys as ReadHead returns them: lower case).
func (s *Store) PutMeta(bucket, key string, data []byte, meta map[string]string) (versionID, etag string) {
	sum := md5.Sum(data)
	v := &version{etag: hex.EncodeToString(sum[:]), data: bytes.Clone(data), meta: maps.Clone(meta)}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := bucket + "/" + key
	if s.versioned[bucket] {
		s.seq++
		v.id = "v" + strconv.Itoa(s.seq)
		s.objects[k] = append(s.objects[k], v)
	} else {
		s.objects[k] = []*version{v}
	}
	return v.id, v.etag
}

// Delete removes bucket/key: a delete marker when versioned, else the object. With a version
// ID it removes that version for good. It returns the delete marker's version ID, if any.
func (s *Store) Delete(bucket, key, versionID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := bucket + "/" + key
	switch {
	case versionID != "":
		vs := s.objects[k]
		for i, v := range vs {
			if v.id == versionID {
				s.objects[k] = append(vs[:i:i], vs[i+1:]...)
			}
		}
	case s.versioned[bucket]:
		s.seq++
		m := &version{id: "v" + strconv.Itoa(s.seq), marker: true}
		s.objects[k] = append(s.objects[k], m)
		return m.id
	default:
		delete(s.objects, k)
	}
	return ""
}

// Write implements objects.Writer: Put under the store's fault injection (op Write).
func (s *Store) Write(ctx context.Context, bucket, key string, body []byte, contentType string) error {
	if err := s.inject(ctx, Write, objects.Ref{Bucket: bucket, Key: key}); err != nil {
		return err
	}
	s.Put(bucket, key, body)
	return nil
}

// Remove implements objects.Writer: Delete under the store's fault injection (op Remove).
func (s *Store) Remove(ctx context.Context, bucket, key string) error {
	if err := s.inject(ctx, Remove, objects.Ref{Bucket: bucket, Key: key}); err != nil {
		return err
	}
	s.Delete(bucket, key, "")
	return nil
}

// List implements objects.Writer under the store's fault injection (op List, the prefix as
// the key).
func (s *Store) List(ctx context.Context, bucket, prefix string) ([]string, error) {
	if err := s.inject(ctx, List, objects.Ref{Bucket: bucket, Key: prefix}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k, vs := range s.objects {
		key, ok := strings.CutPrefix(k, bucket+"/")
		name, in := strings.CutPrefix(key, prefix)
		if ok && in && !strings.Contains(name, "/") && len(vs) > 0 && !vs[len(vs)-1].marker {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// find returns the version ref names; s.mu is held.
func (s *Store) find(ref objects.Ref) (*version, error) {
	vs := s.objects[ref.Bucket+"/"+ref.Key]
	if ref.Version != "" {
		for _, v := range vs {
			if v.id == ref.Version && !v.marker {
				return v, nil
			}
		}
	} else if len(vs) > 0 && !vs[len(vs)-1].marker {
		return vs[len(vs)-1], nil
	}
	return nil, objects.Mark(objects.ErrNotFound, failure.Permanentf("NoSuchKey", "%s/%s (version %q): no such object", ref.Bucket, ref.Key, ref.Version))
}

func (s *Store) inject(ctx context.Context, op Op, ref objects.Ref) error {
	s.mu.Lock()
	s.reads[op]++
	f := s.fault
	s.mu.Unlock()
	if f != nil {
		return f(ctx, op, ref)
	}
	return ctx.Err()
}

// ReadHead implements objects.Store.
func (s *Store) ReadHead(ctx context.Context, ref objects.Ref, n int) (*objects.Head, error) {
	if err := s.inject(ctx, ReadHead, ref); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.find(ref)
	if err != nil {
		return nil, err
	}
	if len(v.data) == 0 {
		return nil, objects.Mark(objects.ErrEmpty, failure.Permanentf("InvalidRange", "%s/%s is empty", ref.Bucket, ref.Key))
	}
	return &objects.Head{Size: int64(len(v.data)), ETag: v.etag, Version: v.id, Bytes: bytes.Clone(v.data[:min(n, len(v.data))]),
		Metadata: maps.Clone(v.meta)}, nil
}

// Open implements objects.Store.
func (s *Store) Open(ctx context.Context, ref objects.Ref, etag string, offset, length int64) (io.ReadCloser, error) {
	if err := s.inject(ctx, Open, ref); err != nil {
		return nil, err
	}
	s.mu.Lock()
	v, err := s.find(ref)
	bf := s.body
	s.mu.Unlock()
	switch {
	case err != nil:
		return nil, err
	case etag != "" && v.etag != etag:
		return nil, objects.Mark(objects.ErrChanged, failure.Permanentf("PreconditionFailed", "%s/%s: ETag %s, want %s", ref.Bucket, ref.Key, v.etag, etag))
	case offset >= int64(len(v.data)):
		return nil, objects.Mark(objects.ErrEmpty, failure.Permanentf("InvalidRange", "%s/%s: offset %d past %d bytes", ref.Bucket, ref.Key, offset, len(v.data)))
	}
	end := int64(len(v.data))
	if length >= 0 {
		end = min(end, offset+length)
	}
	var body io.ReadCloser = io.NopCloser(bytes.NewReader(v.data[offset:end]))
	if bf != nil {
		body = bf(ref, body)
	}
	return body, nil
}

// PresignGet implements objects.Store: a mem:// URL that Fetch reads.
func (s *Store) PresignGet(ctx context.Context, ref objects.Ref, ttl time.Duration) (string, error) {
	if err := s.inject(ctx, PresignGet, ref); err != nil {
		return "", err
	}
	u := url.URL{Scheme: "mem", Host: ref.Bucket, Path: "/" + ref.Key}
	q := url.Values{"expires": {time.Now().Add(ttl).UTC().Format(time.RFC3339)}}
	if ref.Version != "" {
		q.Set("versionId", ref.Version)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Fetch reads what a URL of PresignGet names, as a service fetching it would.
func (s *Store) Fetch(rawURL string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "mem" {
		return nil, fmt.Errorf("memobjects: not a presigned URL: %q", rawURL)
	}
	if exp, err := time.Parse(time.RFC3339, u.Query().Get("expires")); err != nil || time.Now().After(exp) {
		return nil, fmt.Errorf("memobjects: URL expired or unsigned: %q", rawURL)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.find(objects.Ref{Bucket: u.Host, Key: u.Path[1:], Version: u.Query().Get("versionId")})
	if err != nil {
		return nil, err
	}
	return bytes.Clone(v.data), nil
}
