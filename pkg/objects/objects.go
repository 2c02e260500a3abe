// Package objects is the portable view of the object store the analyzer reads: the first
// bytes of an object with its size, ETag and version; the rest of it pinned to the content
// first read; and a URL a remote service can GET it from (Store). Writer writes, lists and
// removes the objects the analyzer makes itself (thumbnails). It imports no cloud SDK.
//
// Drivers: s3objects (Amazon S3), memobjects (in memory, for fast tests). objectstest is the
// suite both run.
package objects

import (
	"context"
	"errors"
	"io"
	"time"
)

// Ref names an object: a version of it when Version is set, else its current content.
type Ref struct {
	Bucket, Key, Version string
}

// Head is what the first read of an object tells.
type Head struct {
	Size    int64  // the whole object's length
	ETag    string // without quotes
	Version string // the version read ("" when the bucket is not versioned)
	Bytes   []byte // the first bytes: all of the object when Size <= len(Bytes)
	// Metadata is the object's user metadata (S3's x-amz-meta-*), keys in lower case; nil
	// when it has none or the store keeps none.
	Metadata map[string]string
}

// The outcomes of a read that are answers about the object, not failures of the store. A
// driver's error Is one of them and carries the store's own classification too.
var (
	// ErrNotFound: no such object or version (or the current version is a delete marker).
	ErrNotFound = errors.New("no such object")
	// ErrEmpty: the object has no bytes, so no range of it can be read.
	ErrEmpty = errors.New("object is empty")
	// ErrChanged: the object no longer has the content (ETag) it was read with.
	ErrChanged = errors.New("object changed since it was first read")
)

// Store reads objects. Every error it returns is classified with pkg/failure.
type Store interface {
	// ReadHead reads the first n bytes of ref in one request, with the object's size, ETag
	// and version.
	ReadHead(ctx context.Context, ref Ref, n int) (*Head, error)
	// Open streams bytes of ref from offset, length of them (negative: to the end), of the
	// content whose ETag is etag: ErrChanged when ref no longer has it, ErrNotFound when it
	// is gone.
	Open(ctx context.Context, ref Ref, etag string, offset, length int64) (io.ReadCloser, error)
	// PresignGet returns a URL that GETs ref, valid for ttl, that needs no header but Host
	// (the service fetching it sends none of ours).
	PresignGet(ctx context.Context, ref Ref, ttl time.Duration) (string, error)
}

// Writer writes, lists and removes the objects the analyzer makes itself (thumbnails). Every
// error it returns is classified with pkg/failure.
type Writer interface {
	// Write stores body under bucket/key with its content type, replacing what is there.
	Write(ctx context.Context, bucket, key string, body []byte, contentType string) error
	// Remove deletes bucket/key (in a versioned bucket: a delete marker over it); a key that
	// does not exist is no error.
	Remove(ctx context.Context, bucket, key string) error
	// List returns the keys of the objects directly in the folder prefix of bucket (prefix
	// ends in "/"), in key order: keys that begin with prefix and hold no further "/" (the
	// deeper folders' objects are not read), current objects only (no delete markers, no
	// older versions).
	List(ctx context.Context, bucket, prefix string) ([]string, error)
}

// Mark returns err marked as kind (ErrNotFound, ErrEmpty, ErrChanged): errors.Is finds kind,
// and errors.As what err carries (its classification).
func Mark(kind, err error) error { return &marked{kind: kind, err: err} }

type marked struct{ kind, err error }

func (e *marked) Error() string   { return e.err.Error() }
func (e *marked) Unwrap() []error { return []error{e.err, e.kind} }
