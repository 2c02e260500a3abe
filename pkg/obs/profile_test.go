package obs

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestStartProfiles: both profiles are written as pprof files (gzipped protobuf) once stop
// is called, and a second stop changes nothing.
func TestStartProfiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "profiles")
	stop, err := StartProfiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	sink := 0
	for i := range 1 << 20 {
		sink += len(make([]byte, i%64+1)) // allocations for the allocs profile
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	for _, name := range []string{CPUProfile, AllocsProfile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s is not gzipped (%d bytes): %v", name, len(b), err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil || len(raw) == 0 {
			t.Fatalf("%s: %d bytes of profile, err %v", name, len(raw), err)
		}
	}
	if sink == 0 {
		t.Fatal("no work done")
	}
}
