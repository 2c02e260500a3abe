package memobjects_test

import (
	"testing"

	"imgpipe/pkg/objects/memobjects"
	"imgpipe/pkg/objects/objectstest"
)

type harness struct{}

func (harness) NewBucket(t *testing.T, versioned bool) objectstest.Bucket {
	s := memobjects.New()
	s.SetVersioning("b", versioned)
	return objectstest.Bucket{
		Store: s, Name: "b",
		Put:    func(_ *testing.T, key string, data []byte) (string, string) { return s.Put("b", key, data) },
		Delete: func(_ *testing.T, key, version string) { s.Delete("b", key, version) },
		Fetch:  func(_ *testing.T, url string) ([]byte, error) { return s.Fetch(url) },
	}
}

func TestConformance(t *testing.T) { objectstest.Run(t, harness{}) }
