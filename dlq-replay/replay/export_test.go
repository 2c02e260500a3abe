package replay

import "testing"

// Fill, IDs and Unleased let the external tests use the in-memory queue of engine_test.go.
func Fill(t *testing.T, n int) *memQueue { return fill(t, n) }

func (q *memQueue) IDs() []string { return q.ids() }

func (q *memQueue) Unleased() int { return q.unleased() }
