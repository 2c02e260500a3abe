package s3server

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
)

// TestListBucketSameAsFullScan: after random puts and deletes, every listing (prefixes,
// delimiters, markers, page sizes) gives what a scan of every key in order gives.
func TestListBucketSameAsFullScan(t *testing.T) {
	s := &store{buckets: map[string]*bucketState{}, now: time.Now}
	if err := s.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	live := map[string]bool{}
	for round := range 40 {
		for range 1 + r.IntN(30) {
			key := fmt.Sprintf("%c/%c/%d", 'a'+r.IntN(4), 'a'+r.IntN(3), r.IntN(50))
			if r.IntN(5) == 0 && live[key] {
				if _, err := s.DeleteObject("b", key); err != nil {
					t.Fatal(err)
				}
				delete(live, key)
				continue
			}
			if _, err := s.PutObject("b", key, map[string]string{}, strings.NewReader("x"), 1, nil); err != nil {
				t.Fatal(err)
			}
			live[key] = true
		}
		var all []string
		for k := range live {
			all = append(all, k)
		}
		slices.Sort(all)
		for _, q := range []struct {
			prefix, delim, marker string
			max                   int64
		}{
			{"", "", "", 0}, {"a/", "", "", 0}, {"b/c", "", "", 0}, {"c/", "/", "", 0}, {"a/b/", "", "a/b/2", 3}, {"d", "", "", 2},
			{"zz", "", "", 0}, {"", "", "b/", 5}, {"a/", "", "", 2}, {"c/", "/", "", 1}, {"", "/", "", 1}, {"b/", "/", "b/a/", 2},
			{"", "", "", 7}, {"d/", "/", "", 3},
		} {
			p := &gofakes3.Prefix{HasPrefix: q.prefix != "", Prefix: q.prefix, HasDelimiter: q.delim != "", Delimiter: q.delim}
			// The full scan: every entry after the marker, in order.
			var want []string
			var match gofakes3.PrefixMatch
			last := ""
			for _, k := range all {
				if k <= q.marker || !p.Match(k, &match) {
					continue
				}
				if match.CommonPrefix {
					if match.MatchedPart == last || match.MatchedPart == q.marker {
						continue
					}
					want = append(want, "prefix:"+match.MatchedPart)
					last = match.MatchedPart
				} else {
					want = append(want, k)
				}
			}
			// Paged through by each page's NextMarker, the pages concatenate to the full scan;
			// each is full but the last, and truncated exactly when more follows.
			var got []string
			marker := q.marker
			for page := 0; ; page++ {
				l, err := s.ListBucket("b", p, gofakes3.ListBucketPage{Marker: marker, HasMarker: marker != "", MaxKeys: q.max})
				if err != nil {
					t.Fatal(err)
				}
				entries := listEntries(l)
				got = append(got, entries...)
				where := fmt.Sprintf("round %d, %+v, page %d (marker %q)", round, q, page, marker)
				if more := len(got) < len(want); l.IsTruncated != more {
					t.Fatalf("%s: IsTruncated %v with %d of %d entries listed", where, l.IsTruncated, len(got), len(want))
				}
				if !l.IsTruncated {
					if l.NextMarker != "" {
						t.Fatalf("%s: NextMarker %q on the last page", where, l.NextMarker)
					}
					break
				}
				if int64(len(entries)) != q.max || l.NextMarker != strings.TrimPrefix(entries[len(entries)-1], "prefix:") {
					t.Fatalf("%s: a truncated page of %d entries (max %d) with NextMarker %q; entries %v", where, len(entries), q.max, l.NextMarker, entries)
				}
				marker = l.NextMarker
			}
			if g, w := strings.Join(got, " "), strings.Join(want, " "); g != w {
				t.Fatalf("round %d, %+v:\n got %s\nwant %s", round, q, g, w)
			}
		}
	}
}

// listEntries are a page's keys and common prefixes ("prefix:P") in order.
func listEntries(l *gofakes3.ObjectList) []string {
	var out []string
	for _, c := range l.Contents {
		out = append(out, c.Key)
	}
	for _, p := range l.CommonPrefixes {
		out = append(out, "prefix:"+p.Prefix)
	}
	slices.SortFunc(out, func(a, b string) int {
		return strings.Compare(strings.TrimPrefix(a, "prefix:"), strings.TrimPrefix(b, "prefix:"))
	})
	return out
}
