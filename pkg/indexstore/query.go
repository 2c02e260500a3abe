package indexstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"cloud.google.com/go/firestore"

	"imgpipe/pkg/failure"
)

// MaxPageSize is the most documents one Newest call returns.
const MaxPageSize = 1000

// ReasonInvalidCursor and ReasonInvalidLimit are the reasons of Newest's permanent errors.
const (
	ReasonInvalidCursor = "InvalidCursor"
	ReasonInvalidLimit  = "InvalidLimit"
)

// PageOptions narrows and continues a Newest query. A nil *PageOptions lists every document
// from the newest analysis.
type PageOptions struct {
	// Tag keeps only the documents carrying this tag (the composite index of
	// deploy/firestore/firestore.indexes.json).
	Tag string
	// Cursor continues after the page that returned it as Page.Next. A cursor is bound to the
	// tag it was made for.
	Cursor string
}

// Page is one page of documents, newest analysis first.
type Page struct {
	Documents []Document
	// Next is the cursor of the following page; empty on the last page.
	Next string
}

// Newest returns up to limit documents (1..MaxPageSize), newest analysis first (analyzedAt,
// then document ID, both descending, so pages never overlap or skip documents analysed at the
// same instant). A malformed cursor, or one made for another tag, is a permanent error with
// reason InvalidCursor.
func (s *Store) Newest(ctx context.Context, limit int, opts *PageOptions) (*Page, error) {
	var o PageOptions
	if opts != nil {
		o = *opts
	}
	if limit < 1 || limit > MaxPageSize {
		return nil, failure.Permanentf(ReasonInvalidLimit, "limit %d: want 1 to %d", limit, MaxPageSize)
	}
	q := s.docs.Query
	if o.Tag != "" {
		q = q.Where("tagNames", "array-contains", o.Tag)
	}
	q = q.OrderBy("analyzedAt", firestore.Desc).OrderBy(firestore.DocumentID, firestore.Desc)
	if o.Cursor != "" {
		c, err := decodeCursor(o.Cursor, o.Tag)
		if err != nil {
			return nil, err
		}
		q = q.StartAfter(c.AnalyzedAt, c.ID)
	}
	docs, ids, err := s.collectIDs(ctx, q.Limit(limit+1))
	if err != nil {
		return nil, err
	}
	p := &Page{Documents: docs}
	if len(docs) > limit {
		p.Documents = docs[:limit]
		last := p.Documents[limit-1]
		p.Next = encodeCursor(cursor{AnalyzedAt: last.AnalyzedAt, ID: ids[limit-1], Tag: tagDigest(o.Tag)})
	}
	return p, nil
}

// CountIndexedSince counts the documents written at or after since (their indexedAt): the
// index's recent throughput. One aggregation query; it reads no document.
func (s *Store) CountIndexedSince(ctx context.Context, since time.Time) (int64, error) {
	q := s.docs.Where("indexedAt", ">=", since)
	res, err := q.NewAggregationQuery().WithCount("n").Get(ctx)
	if err != nil {
		return 0, classify(fmt.Errorf("count indexed since %s: %w", since.Format(time.RFC3339), err))
	}
	v, ok := res["n"]
	if !ok {
		return 0, fmt.Errorf("count indexed since %s: no count in the answer", since.Format(time.RFC3339))
	}
	n, ok := v.(interface{ GetIntegerValue() int64 })
	if !ok {
		return 0, fmt.Errorf("count indexed since %s: count of type %T", since.Format(time.RFC3339), v)
	}
	return n.GetIntegerValue(), nil
}

// cursor is where a page ended. Tag is a digest of the page's tag, so that a cursor cannot be
// replayed against another query.
type cursor struct {
	AnalyzedAt time.Time `json:"a"`
	ID         string    `json:"d"`
	Tag        string    `json:"t,omitempty"`
}

var docIDPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func tagDigest(tag string) string {
	if tag == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(tag))
	return hex.EncodeToString(sum[:6])
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c) // a struct of strings and a time always encodes
	return base64.RawURLEncoding.EncodeToString(b)
}

// maxCursorLen bounds what decodeCursor looks at; a real cursor is about 150 characters.
const maxCursorLen = 512

func decodeCursor(s, tag string) (cursor, error) {
	bad := func(why string) (cursor, error) {
		return cursor{}, failure.Permanentf(ReasonInvalidCursor, "cursor: %s", why)
	}
	if len(s) > maxCursorLen {
		return bad("too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad("not base64url")
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return bad("not a cursor")
	}
	switch {
	case !docIDPattern.MatchString(c.ID):
		return bad("no document ID")
	case c.AnalyzedAt.IsZero():
		return bad("no position")
	case c.Tag != tagDigest(tag):
		return bad("made for another tag")
	}
	return c, nil
}
