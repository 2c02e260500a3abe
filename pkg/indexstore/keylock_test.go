package indexstore

import (
	"sync"
	"testing"
)

func TestKeyLocksSerialiseAndClean(t *testing.T) {
	var k keyLocks
	var wg sync.WaitGroup
	counts := map[string]int{}
	for i := range 50 {
		wg.Go(func() {
			ids := []string{"a", "b"}
			if i%2 == 0 {
				ids = []string{"b", "a", "a"} // other order, duplicate: still no deadlock
			}
			unlock := k.lock(ids...)
			counts["a"]++ // a data race here would be caught by -race
			counts["b"]++
			unlock()
		})
	}
	wg.Wait()
	if counts["a"] != 50 || counts["b"] != 50 {
		t.Fatalf("counts %v", counts)
	}
	if len(k.locks) != 0 {
		t.Fatalf("%d locks left behind", len(k.locks))
	}
}
