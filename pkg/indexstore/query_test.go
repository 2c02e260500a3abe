package indexstore_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"imgpipe/internal/stacktest"
	"imgpipe/pkg/failure"
	"imgpipe/pkg/indexstore"
	"imgpipe/pkg/record"
)

// pages walks every page of a Newest query and returns the keys, page by page.
func pages(t *testing.T, s *indexstore.Store, limit int, tag string) [][]string {
	t.Helper()
	var out [][]string
	cursor := ""
	for i := 0; ; i++ {
		if i > 20 {
			t.Fatal("more than 20 pages: the cursor does not advance")
		}
		p, err := s.Newest(context.Background(), limit, &indexstore.PageOptions{Tag: tag, Cursor: cursor})
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		var keys []string
		for _, d := range p.Documents {
			keys = append(keys, d.Key)
		}
		out = append(out, keys)
		if p.Next == "" {
			return out
		}
		cursor = p.Next
	}
}

// Pages are newest analysis first, never overlap and never skip, also when documents share
// an analysis time; a tag narrows them; the last page has no cursor.
func TestNewestPages(t *testing.T) {
	s := indexstore.New(newClient(t), stacktest.Unique("images"), nil)
	for i, k := range []struct {
		key  string
		seq  uint64
		tags []string
	}{{"a.jpg", 1, []string{"cat"}}, {"b.jpg", 2, []string{"dog"}}, {"c.jpg", 3, []string{"cat"}}, {"d.jpg", 4, []string{"cat", "dog"}}, {"e.jpg", 5, []string{"cat"}}} {
		r := rec(record.Created, k.key, k.seq, k.tags...)
		if i >= 2 {
			// c, d and e share one analysis time: only the document ID orders them.
			r.AnalyzedAt = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
		}
		mustApply(t, s.Apply, r, indexstore.Written)
	}
	all := pages(t, s, 2, "")
	if len(all) != 3 || len(all[0]) != 2 || len(all[1]) != 2 || len(all[2]) != 1 {
		t.Fatalf("pages of 2: %v", all)
	}
	seen := map[string]bool{}
	var flat []string
	for _, p := range all {
		for _, k := range p {
			if seen[k] {
				t.Fatalf("%s on two pages: %v", k, all)
			}
			seen[k] = true
			flat = append(flat, k)
		}
	}
	// The three sharing the newest time come first (in some fixed order), then b, then a.
	if len(flat) != 5 || flat[3] != "b.jpg" || flat[4] != "a.jpg" || !strings.Contains("c.jpg d.jpg e.jpg", flat[0]) {
		t.Fatalf("order %v", flat)
	}
	if got := pages(t, s, 5, ""); len(got) != 1 || len(got[0]) != 5 {
		t.Fatalf("one page of exactly all: %v", got)
	}
	cats := pages(t, s, 1, "cat")
	if len(cats) != 4 || cats[3][0] != "a.jpg" {
		t.Fatalf("cat pages: %v", cats)
	}
	for _, p := range cats {
		if p[0] == "b.jpg" {
			t.Fatalf("b.jpg is no cat: %v", cats)
		}
	}
	if got := pages(t, s, 10, "bird"); len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("no bird: %v", got)
	}
}

func TestNewestRejectsBadCursorsAndLimits(t *testing.T) {
	s := indexstore.New(newClient(t), stacktest.Unique("images"), nil)
	ctx := context.Background()
	for _, k := range []string{"a.jpg", "b.jpg"} {
		mustApply(t, s.Apply, rec(record.Created, k, 1, "cat"), indexstore.Written)
	}
	p, err := s.Newest(ctx, 1, &indexstore.PageOptions{Tag: "cat"})
	if err != nil || p.Next == "" {
		t.Fatalf("first page: %v %+v", err, p)
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, tc := range map[string]struct {
		tag, cursor string
	}{
		"another tag's cursor": {"dog", p.Next},
		"no tag, a tag's":      {"", p.Next},
		"not base64":           {"cat", "!!!"},
		"not json":             {"cat", enc("hello")},
		"no document id":       {"cat", enc(`{"a":"2026-01-01T00:00:00Z","d":"x"}`)},
		"no position":          {"cat", enc(`{"d":"` + strings.Repeat("a", 64) + `"}`)},
		"huge":                 {"cat", strings.Repeat("A", 10000)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Newest(ctx, 1, &indexstore.PageOptions{Tag: tc.tag, Cursor: tc.cursor})
			if !failure.IsPermanent(err) || failure.ReasonOf(err) != indexstore.ReasonInvalidCursor {
				t.Fatalf("got %v, want permanent %s", err, indexstore.ReasonInvalidCursor)
			}
		})
	}
	for _, limit := range []int{0, -1, indexstore.MaxPageSize + 1} {
		if _, err := s.Newest(ctx, limit, nil); failure.ReasonOf(err) != indexstore.ReasonInvalidLimit {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
}

func TestCountIndexedSince(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	now := t0
	s := indexstore.New(newClient(t), stacktest.Unique("images"), &indexstore.Options{Now: func() time.Time { return now }})
	for i, k := range []string{"a.jpg", "b.jpg", "c.jpg", "d.jpg"} {
		now = t0.Add(time.Duration(i) * time.Minute)
		mustApply(t, s.Apply, rec(record.Created, k, 1), indexstore.Written)
	}
	for since, want := range map[time.Duration]int64{-time.Minute: 4, 0: 4, 30 * time.Second: 3, 2 * time.Minute: 2, 10 * time.Minute: 0} {
		n, err := s.CountIndexedSince(context.Background(), t0.Add(since))
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("since t0%+v: %d, want %d", since, n, want)
		}
	}
}
