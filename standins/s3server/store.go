package s3server

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// nullVersion is the version ID S3 gives an object written while a bucket's versioning was
// never enabled or is suspended: the "null" version.
const nullVersion = "null"

// nullVersionAlias is what ServeHTTP turns ?versionId=null into before gofakes3 sees the
// request: gofakes3 reads "null" as "no version" and would act on the current version (a
// DELETE would then add a delete marker instead of removing the null version).
const nullVersionAlias = "\x00null"

// store is the stand-in's storage: a gofakes3 backend (Backend and VersionedBackend) that
// keeps every version of every object the way S3 does. gofakes3's own in-memory backend loses
// the key when its current version is deleted by version ID (reads of the key then crash the
// handler, which clients see as a closed connection) and has no null versions.
//
// Versioning states: a bucket starts unversioned (objects have the null version only, and
// version IDs are not reported); Enabled stacks a new version with a fresh ID on every write
// and a delete marker on every plain delete; Suspended writes and plain deletes replace the
// null version (a delete leaves a null delete marker) and keep the other versions.
type store struct {
	mu      sync.RWMutex
	buckets map[string]*bucketState
	now     func() time.Time
}

type bucketState struct {
	created    time.Time
	versioning gofakes3.VersioningStatus
	objects    map[string]*objectState // keys with at least one version
	// sorted is objects' keys in order, for listings. Keys added since it was built wait in
	// added and are merged in by the next listing (one pass, not a sort of every key, nor a
	// copy per new key); a dropped key marks it stale, rebuilt whole.
	sorted      []string
	added       []string
	sortedStale bool
	lifecycle   *lifecycleConfig
}

// objectState is one key's versions, oldest first: the last one is current.
type objectState struct {
	versions []*objectVersion
}

type objectVersion struct {
	id           string // nullVersion for the null version
	deleteMarker bool
	body         []byte
	hash         []byte // MD5 of body: the ETag
	meta         map[string]string
	modified     time.Time
	// noncurrentSince is when a newer version was stacked on this one (zero while current):
	// what lifecycle noncurrent-version expiration counts from.
	noncurrentSince time.Time
}

var (
	_ gofakes3.Backend          = (*store)(nil)
	_ gofakes3.VersionedBackend = (*store)(nil)
)

func newStore(now func() time.Time) *store {
	if now == nil {
		now = time.Now
	}
	return &store{buckets: map[string]*bucketState{}, now: now}
}

// newVersionID returns an ID shaped like S3's: 32 characters of letters, digits, '.' and '_'.
func newVersionID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._"
	var b [32]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// resolveVersion maps the alias ServeHTTP puts in place of ?versionId=null back to "null".
func resolveVersion(id gofakes3.VersionID) string {
	if string(id) == nullVersionAlias {
		return nullVersion
	}
	return string(id)
}

func (o *objectState) current() *objectVersion {
	if len(o.versions) == 0 {
		return nil
	}
	return o.versions[len(o.versions)-1]
}

func (o *objectState) find(id string) (int, *objectVersion) {
	for i, v := range o.versions {
		if v.id == id {
			return i, v
		}
	}
	return -1, nil
}

// push stacks v as the new current version; the old current one becomes noncurrent at v's
// time.
func (o *objectState) push(v *objectVersion) {
	if cur := o.current(); cur != nil {
		cur.noncurrentSince = v.modified
	}
	o.versions = append(o.versions, v)
}

// remove drops version i; when it was current, the previous version becomes current again.
func (o *objectState) remove(i int) {
	o.versions = slices.Delete(o.versions, i, i+1)
	if cur := o.current(); cur != nil {
		cur.noncurrentSince = time.Time{}
	}
}

func (b *bucketState) object(key string) *objectState {
	return b.objects[key]
}

// objectFor returns key's state, creating it.
func (b *bucketState) objectFor(key string) *objectState {
	o := b.objects[key]
	if o == nil {
		o = &objectState{}
		b.objects[key] = o
		if !b.sortedStale {
			b.added = append(b.added, key)
		}
	}
	return o
}

// keys returns the bucket's keys in order. Callers hold the store's write lock: it may
// rebuild the list.
func (b *bucketState) keys() []string {
	switch {
	case b.sortedStale:
		b.sorted = b.sorted[:0]
		for k := range b.objects {
			b.sorted = append(b.sorted, k)
		}
		slices.Sort(b.sorted)
		b.sortedStale, b.added = false, nil
	case len(b.added) > 0:
		slices.Sort(b.added)
		merged := make([]string, 0, len(b.sorted)+len(b.added))
		i, j := 0, 0
		for i < len(b.sorted) && j < len(b.added) {
			if b.sorted[i] < b.added[j] {
				merged = append(merged, b.sorted[i])
				i++
			} else {
				merged = append(merged, b.added[j])
				j++
			}
		}
		b.sorted = append(append(merged, b.sorted[i:]...), b.added[j:]...)
		b.added = b.added[:0]
	}
	return b.sorted
}

// prune forgets key when it has no version left.
func (b *bucketState) prune(key string) {
	if o := b.objects[key]; o != nil && len(o.versions) == 0 {
		delete(b.objects, key)
		b.sortedStale, b.added = true, nil
	}
}

// reportedID is the version ID S3 reports for v: none in a bucket that was never versioned.
func (b *bucketState) reportedID(v *objectVersion) gofakes3.VersionID {
	if b.versioning == gofakes3.VersioningNone {
		return ""
	}
	return gofakes3.VersionID(v.id)
}

// write stacks a new version (or delete marker) on key as the bucket's versioning state says:
// unversioned and suspended buckets replace the null version, enabled ones add a version.
func (b *bucketState) write(key string, v *objectVersion) {
	o := b.objectFor(key)
	if b.versioning == gofakes3.VersioningEnabled {
		v.id = newVersionID()
	} else {
		v.id = nullVersion
		if i, _ := o.find(nullVersion); i >= 0 {
			o.versions = slices.Delete(o.versions, i, i+1)
		}
	}
	o.push(v)
}

func (s *store) bucket(name string) (*bucketState, error) {
	b := s.buckets[name]
	if b == nil {
		return nil, gofakes3.BucketNotFound(name)
	}
	return b, nil
}

// ListBuckets implements gofakes3.Backend.
func (s *store) ListBuckets() ([]gofakes3.BucketInfo, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]gofakes3.BucketInfo, 0, len(s.buckets))
	for name, b := range s.buckets {
		out = append(out, gofakes3.BucketInfo{Name: name, CreationDate: gofakes3.NewContentTime(b.created)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ListBucket implements gofakes3.Backend: the current versions that are not delete markers,
// in key order, with common prefixes for a delimiter, in pages of MaxKeys entries. As in S3,
// a page is truncated only when another entry follows it, and then its NextMarker is its
// last entry, a key or a common prefix (whose keys the next page skips).
func (s *store) ListBucket(name string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	if prefix == nil {
		prefix = &gofakes3.Prefix{}
	}
	s.mu.Lock() // keys() may rebuild the sorted list
	defer s.mu.Unlock()
	b, err := s.bucket(name)
	if err != nil {
		return nil, err
	}
	keys := b.keys()
	out := gofakes3.NewObjectList()
	start := 0
	if page.Marker != "" {
		start, _ = slices.BinarySearch(keys, page.Marker)
		if start < len(keys) && keys[start] == page.Marker {
			start++
		}
	}
	if prefix.HasPrefix { // the keys under a prefix lie together, from its place in order
		at, _ := slices.BinarySearch(keys, prefix.Prefix)
		start = max(start, at)
	}
	var n int64
	var match gofakes3.PrefixMatch
	// A page that ended on a common prefix has it as its marker: its keys, which sort after
	// it, were listed with it and are skipped.
	lastPrefix := ""
	if prefix.HasDelimiter {
		lastPrefix = page.Marker
	}
	for i := start; i < len(keys); i++ {
		key := keys[i]
		if prefix.HasPrefix && !strings.HasPrefix(key, prefix.Prefix) {
			break
		}
		cur := b.objects[key].current()
		if cur.deleteMarker || !prefix.Match(key, &match) {
			continue
		}
		if match.CommonPrefix && match.MatchedPart == lastPrefix {
			continue
		}
		if page.MaxKeys > 0 && n >= page.MaxKeys {
			// One more entry lies past the page: the page is truncated, and its marker is its
			// last entry (a key, or a common prefix).
			out.IsTruncated = true
			break
		}
		if match.CommonPrefix {
			out.AddPrefix(match.MatchedPart)
			lastPrefix = match.MatchedPart
			out.NextMarker = match.MatchedPart
		} else {
			out.Add(&gofakes3.Content{
				Key:          key,
				LastModified: gofakes3.NewContentTime(cur.modified),
				ETag:         gofakes3.FormatETag(cur.hash),
				Size:         int64(len(cur.body)),
			})
			out.NextMarker = key
		}
		n++
	}
	if !out.IsTruncated {
		out.NextMarker = ""
	}
	return out, nil
}

// CreateBucket implements gofakes3.Backend.
func (s *store) CreateBucket(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets[name] != nil {
		return gofakes3.ResourceError(gofakes3.ErrBucketAlreadyExists, name)
	}
	s.buckets[name] = &bucketState{created: s.now(), objects: map[string]*objectState{}}
	return nil
}

// BucketExists implements gofakes3.Backend.
func (s *store) BucketExists(name string) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.buckets[name] != nil, nil
}

// DeleteBucket implements gofakes3.Backend: as in S3, a bucket holding any version or delete
// marker is not empty.
func (s *store) DeleteBucket(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(name)
	if err != nil {
		return gofakes3.ErrNoSuchBucket
	}
	if len(b.objects) > 0 {
		return gofakes3.ResourceError(gofakes3.ErrBucketNotEmpty, name)
	}
	delete(s.buckets, name)
	return nil
}

// ForceDeleteBucket implements gofakes3's optional force delete.
func (s *store) ForceDeleteBucket(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets[name] == nil {
		return gofakes3.ErrNoSuchBucket
	}
	delete(s.buckets, name)
	return nil
}

// toObject renders v for gofakes3. A delete marker comes back with IsDeleteMarker set, which
// gofakes3 answers with 404 NoSuchKey and the x-amz-delete-marker and x-amz-version-id headers,
// as S3 does for a key whose current version is a delete marker.
func (b *bucketState) toObject(key string, v *objectVersion, rng *gofakes3.ObjectRangeRequest, withBody bool) (*gofakes3.Object, error) {
	obj := &gofakes3.Object{
		Name:           key,
		Metadata:       v.meta,
		Size:           int64(len(v.body)),
		Hash:           v.hash,
		VersionID:      b.reportedID(v),
		IsDeleteMarker: v.deleteMarker,
		Contents:       io.NopCloser(bytes.NewReader(nil)),
	}
	if v.deleteMarker || !withBody {
		return obj, nil
	}
	r, err := rng.Range(obj.Size)
	if err != nil {
		return nil, err
	}
	data := v.body
	if r != nil {
		data = data[r.Start : r.Start+r.Length]
	}
	obj.Range = r
	obj.Contents = io.NopCloser(bytes.NewReader(data))
	return obj, nil
}

func (s *store) current(bucket, key string) (*bucketState, *objectVersion, error) {
	b, err := s.bucket(bucket)
	if err != nil {
		return nil, nil, err
	}
	o := b.object(key)
	if o == nil {
		return nil, nil, gofakes3.KeyNotFound(key)
	}
	return b, o.current(), nil
}

// GetObject implements gofakes3.Backend: the current version.
func (s *store) GetObject(bucket, key string, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, v, err := s.current(bucket, key)
	if err != nil {
		return nil, err
	}
	return b.toObject(key, v, rng, true)
}

// HeadObject implements gofakes3.Backend.
func (s *store) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, v, err := s.current(bucket, key)
	if err != nil {
		return nil, err
	}
	return b.toObject(key, v, nil, false)
}

// PutObject implements gofakes3.Backend. Unlike gofakes3's own backend it does not carry the
// previous version's metadata over: S3 replaces it.
func (s *store) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	// Read before locking: a slow client must not hold the store.
	body, err := gofakes3.ReadAll(input, size)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(bucket)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	if cond != nil {
		info := &gofakes3.ConditionalObjectInfo{}
		if o := b.object(key); o != nil && !o.current().deleteMarker {
			info.Exists, info.Hash = true, o.current().hash
		}
		if err := gofakes3.CheckPutConditions(cond, info); err != nil {
			return gofakes3.PutObjectResult{}, err
		}
	}
	sum := md5.Sum(body)
	v := &objectVersion{body: body, hash: sum[:], meta: meta, modified: s.now()}
	b.write(key, v)
	return gofakes3.PutObjectResult{VersionID: b.reportedID(v)}, nil
}

// CopyObject implements gofakes3.Backend: a new version of the destination from the source's
// current version.
func (s *store) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, src, err := s.current(srcBucket, srcKey)
	if err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	if src.deleteMarker {
		return gofakes3.CopyObjectResult{}, gofakes3.KeyNotFound(srcKey)
	}
	b, err := s.bucket(dstBucket)
	if err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	v := &objectVersion{body: src.body, hash: src.hash, meta: meta, modified: s.now()}
	b.write(dstKey, v)
	return gofakes3.CopyObjectResult{ETag: gofakes3.FormatETag(v.hash), LastModified: gofakes3.NewContentTime(v.modified)}, nil
}

// deleteCurrent is a DELETE without a version ID: an unversioned bucket forgets the object;
// an enabled one stacks a delete marker (even on a key that does not exist, as S3 does); a
// suspended one replaces the null version with a null delete marker.
func (s *store) deleteCurrent(b *bucketState, key string) gofakes3.ObjectDeleteResult {
	if b.versioning == gofakes3.VersioningNone {
		if o := b.object(key); o != nil {
			o.versions = nil
			b.prune(key)
		}
		return gofakes3.ObjectDeleteResult{}
	}
	m := &objectVersion{deleteMarker: true, modified: s.now()}
	b.write(key, m)
	return gofakes3.ObjectDeleteResult{IsDeleteMarker: true, VersionID: gofakes3.VersionID(m.id)}
}

// deleteVersion permanently removes one version. When it was the current one, the previous
// version becomes current. A version that does not exist is not an error (S3 answers 204).
func (s *store) deleteVersion(b *bucketState, key, id string) gofakes3.ObjectDeleteResult {
	o := b.object(key)
	if o == nil {
		return gofakes3.ObjectDeleteResult{}
	}
	i, v := o.find(id)
	if v == nil {
		return gofakes3.ObjectDeleteResult{}
	}
	o.remove(i)
	b.prune(key)
	return gofakes3.ObjectDeleteResult{IsDeleteMarker: v.deleteMarker, VersionID: gofakes3.VersionID(id)}
}

// DeleteObject implements gofakes3.Backend.
func (s *store) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(bucket)
	if err != nil {
		return gofakes3.ObjectDeleteResult{}, err
	}
	return s.deleteCurrent(b, key), nil
}

// DeleteMulti implements gofakes3.Backend (gofakes3 calls DeleteMultiVersions on a versioned
// backend; this serves the same requests without version IDs).
func (s *store) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	ids := make([]gofakes3.ObjectID, len(keys))
	for i, k := range keys {
		ids[i] = gofakes3.ObjectID{Key: k}
	}
	return s.DeleteMultiVersions(bucket, ids...)
}

// VersioningConfiguration implements gofakes3.VersionedBackend.
func (s *store) VersioningConfiguration(bucket string) (gofakes3.VersioningConfiguration, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, err := s.bucket(bucket)
	if err != nil {
		return gofakes3.VersioningConfiguration{}, err
	}
	return gofakes3.VersioningConfiguration{Status: b.versioning}, nil
}

// SetVersioningConfiguration implements gofakes3.VersionedBackend. As in S3, a bucket can be
// suspended but never made unversioned again.
func (s *store) SetVersioningConfiguration(bucket string, v gofakes3.VersioningConfiguration) error {
	if v.MFADelete.Enabled() {
		return gofakes3.ErrNotImplemented
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(bucket)
	if err != nil {
		return err
	}
	switch v.Status {
	case gofakes3.VersioningEnabled, gofakes3.VersioningSuspended:
		b.versioning = v.Status
	case gofakes3.VersioningNone:
		// An empty Status leaves the state as it is.
	}
	return nil
}

func (s *store) version(bucket, key string, id gofakes3.VersionID) (*bucketState, *objectVersion, error) {
	b, err := s.bucket(bucket)
	if err != nil {
		return nil, nil, err
	}
	o := b.object(key)
	if o == nil {
		return nil, nil, gofakes3.ErrNoSuchVersion
	}
	_, v := o.find(resolveVersion(id))
	if v == nil {
		return nil, nil, gofakes3.ErrNoSuchVersion
	}
	return b, v, nil
}

// GetObjectVersion implements gofakes3.VersionedBackend.
func (s *store) GetObjectVersion(bucket, key string, id gofakes3.VersionID, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	if id == "" {
		return s.GetObject(bucket, key, rng)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, v, err := s.version(bucket, key, id)
	if err != nil {
		return nil, err
	}
	return b.toObject(key, v, rng, true)
}

// HeadObjectVersion implements gofakes3.VersionedBackend.
func (s *store) HeadObjectVersion(bucket, key string, id gofakes3.VersionID) (*gofakes3.Object, error) {
	if id == "" {
		return s.HeadObject(bucket, key)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, v, err := s.version(bucket, key, id)
	if err != nil {
		return nil, err
	}
	return b.toObject(key, v, nil, false)
}

// isDeleteMarker reports whether version id of key is a delete marker: S3 answers a GET or
// HEAD of such a version with 405 MethodNotAllowed.
func (s *store) isDeleteMarker(bucket, key string, id gofakes3.VersionID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, v, err := s.version(bucket, key, id)
	return err == nil && v.deleteMarker
}

// DeleteObjectVersion implements gofakes3.VersionedBackend.
func (s *store) DeleteObjectVersion(bucket, key string, id gofakes3.VersionID) (gofakes3.ObjectDeleteResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(bucket)
	if err != nil {
		return gofakes3.ObjectDeleteResult{}, err
	}
	return s.deleteVersion(b, key, resolveVersion(id)), nil
}

// DeleteMultiVersions implements gofakes3.VersionedBackend: each object with a version ID
// ("null" included) loses that version, each one without is deleted as by DeleteObject.
func (s *store) DeleteMultiVersions(bucket string, objects ...gofakes3.ObjectID) (gofakes3.MultiDeleteResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.bucket(bucket)
	if err != nil {
		return gofakes3.MultiDeleteResult{}, err
	}
	var res gofakes3.MultiDeleteResult
	for _, obj := range objects {
		if obj.VersionID != "" {
			s.deleteVersion(b, obj.Key, obj.VersionID)
		} else {
			s.deleteCurrent(b, obj.Key)
		}
		res.Deleted = append(res.Deleted, obj)
	}
	return res, nil
}

// ListBucketVersions implements gofakes3.VersionedBackend: keys in order, each key's versions
// newest first, with key and version-ID markers for pages.
func (s *store) ListBucketVersions(bucket string, prefix *gofakes3.Prefix, page *gofakes3.ListBucketVersionsPage) (*gofakes3.ListBucketVersionsResult, error) {
	if prefix == nil {
		prefix = &gofakes3.Prefix{}
	}
	if page == nil {
		page = &gofakes3.ListBucketVersionsPage{}
	}
	s.mu.Lock() // keys() may rebuild the sorted list
	defer s.mu.Unlock()
	res := gofakes3.NewListBucketVersionsResult(bucket, prefix, page)
	b, err := s.bucket(bucket)
	if err != nil {
		return res, err
	}
	keys := b.keys()
	start := 0
	if page.KeyMarker != "" {
		start, _ = slices.BinarySearch(keys, page.KeyMarker)
	}
	var n int64
	var match gofakes3.PrefixMatch
	var lastKey string
	var lastID gofakes3.VersionID
	for i := start; i < len(keys); i++ {
		key := keys[i]
		if !prefix.Match(key, &match) {
			continue
		}
		if match.CommonPrefix {
			res.AddPrefix(match.MatchedPart)
			continue
		}
		vs := b.objects[key].versions
		j := len(vs) - 1
		if key == page.KeyMarker {
			if page.VersionIDMarker == "" {
				continue // the marker key was listed whole
			}
			// Resume after the marker version.
			for j >= 0 && vs[j].id != resolveVersion(page.VersionIDMarker) {
				j--
			}
			j--
		}
		for ; j >= 0; j-- {
			if page.MaxKeys > 0 && n >= page.MaxKeys {
				// The next page starts after the last version listed.
				res.IsTruncated = true
				res.NextKeyMarker, res.NextVersionIDMarker = lastKey, lastID
				return res, nil
			}
			v := vs[j]
			lastKey, lastID = key, gofakes3.VersionID(v.id)
			latest := j == len(vs)-1
			if v.deleteMarker {
				res.Versions = append(res.Versions, &gofakes3.DeleteMarker{
					Key: key, VersionID: b.reportedID(v), IsLatest: latest,
					LastModified: gofakes3.NewContentTime(v.modified),
				})
			} else {
				res.Versions = append(res.Versions, &gofakes3.Version{
					Key: key, VersionID: b.reportedID(v), IsLatest: latest,
					LastModified: gofakes3.NewContentTime(v.modified),
					Size:         int64(len(v.body)), ETag: gofakes3.FormatETag(v.hash),
				})
			}
			n++
		}
	}
	return res, nil
}

// latestDeleteMarker returns the version ID of the delete marker that is key's current
// version, or "" when there is none.
func (s *store) latestDeleteMarker(bucket, key string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, v, err := s.current(bucket, key)
	if err != nil || !v.deleteMarker {
		return ""
	}
	return string(b.reportedID(v))
}

// versioning returns a bucket's versioning state ("" when unversioned or missing).
func (s *store) versioning(bucket string) gofakes3.VersioningStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if b := s.buckets[bucket]; b != nil {
		return b.versioning
	}
	return gofakes3.VersioningNone
}

// currentInfo returns size, ETag (hex MD5) and reported version ID of key's current version.
func (s *store) currentInfo(bucket, key string) (size int64, etag, versionID string, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, v, err := s.current(bucket, key)
	if err != nil || v.deleteMarker {
		return 0, "", "", false
	}
	return int64(len(v.body)), hex.EncodeToString(v.hash), string(b.reportedID(v)), true
}
