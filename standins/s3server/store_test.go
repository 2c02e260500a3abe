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
		}{{"", "", "", 0}, {"a/", "", "", 0}, {"b/c", "", "", 0}, {"c/", "/", "", 0}, {"a/b/", "", "a/b/2", 3}, {"d", "", "", 2}, {"zz", "", "", 0}, {"", "", "b/", 5}} {
			p := &gofakes3.Prefix{HasPrefix: q.prefix != "", Prefix: q.prefix, HasDelimiter: q.delim != "", Delimiter: q.delim}
			got, err := s.ListBucket("b", p, gofakes3.ListBucketPage{Marker: q.marker, HasMarker: q.marker != "", MaxKeys: q.max})
			if err != nil {
				t.Fatal(err)
			}
			want := gofakes3.NewObjectList()
			var n int64
			var match gofakes3.PrefixMatch
			last := ""
			for _, k := range all {
				if k <= q.marker || !p.Match(k, &match) {
					continue
				}
				if match.CommonPrefix {
					if match.MatchedPart == last {
						continue
					}
					want.AddPrefix(match.MatchedPart)
					last = match.MatchedPart
				} else {
					want.Add(&gofakes3.Content{Key: k})
				}
				if n++; q.max > 0 && n >= q.max {
					break
				}
			}
			if g, w := describeList(got), describeList(want); g != w {
				t.Fatalf("round %d, %+v:\n got %s\nwant %s", round, q, g, w)
			}
		}
	}
}

func describeList(l *gofakes3.ObjectList) string {
	var parts []string
	for _, c := range l.Contents {
		parts = append(parts, c.Key)
	}
	for _, p := range l.CommonPrefixes {
		parts = append(parts, "prefix:"+p.Prefix)
	}
	return strings.Join(parts, " ")
}
