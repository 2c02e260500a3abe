package uploader

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSummaryCountsAndExitCode(t *testing.T) {
	up := FileResult{Path: "a.jpg", Key: "upload/x/a.jpg", Status: StatusUploaded, Bytes: 100}
	dup := FileResult{Path: "b.jpg", Status: StatusSkipped, Reason: ReasonDuplicate, Bytes: 50}
	txt := FileResult{Path: "c.txt", Status: StatusSkipped, Reason: ReasonNonImage, Bytes: 5}
	bad := FileResult{Path: "d.jpg", Status: StatusFailed, Reason: "ConnectionRefused", Class: "transient", Detail: "dial tcp", Bytes: 7, Attempts: 4}
	tests := []struct {
		name        string
		files       []FileResult
		interrupted bool
		wantCounts  [3]int
		wantBytes   int64
		wantExit    int
	}{
		{"empty", nil, false, [3]int{0, 0, 0}, 0, ExitOK},
		{"all uploaded", []FileResult{up, up}, false, [3]int{2, 0, 0}, 200, ExitOK},
		{"skips are fine", []FileResult{up, dup, txt}, false, [3]int{1, 2, 0}, 100, ExitOK},
		{"one failure fails", []FileResult{up, dup, bad}, false, [3]int{1, 1, 1}, 100, ExitFailed},
		{"interrupted fails", []FileResult{up}, true, [3]int{1, 0, 0}, 100, ExitFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSummary(tc.files, time.Second)
			s.Interrupted = tc.interrupted
			if got := [3]int{s.Uploaded, s.Skipped, s.Failed}; got != tc.wantCounts {
				t.Errorf("counts = %v, want %v", got, tc.wantCounts)
			}
			if s.Bytes != tc.wantBytes {
				t.Errorf("bytes = %d, want %d", s.Bytes, tc.wantBytes)
			}
			if got := s.ExitCode(); got != tc.wantExit {
				t.Errorf("exit code = %d, want %d", got, tc.wantExit)
			}
		})
	}
}

func TestSummaryWriteText(t *testing.T) {
	files := []FileResult{
		{Path: "a.jpg", Status: StatusUploaded, Bytes: 3 << 20},
		{Path: "notes.txt", Status: StatusSkipped, Reason: ReasonNonImage, Detail: "sniffed as text/plain"},
		{Path: "b.jpg", Status: StatusSkipped, Reason: ReasonDuplicate},
		{Path: "c.jpg", Status: StatusFailed, Reason: "NoSuchBucket", Class: "permanent", Detail: "put upload/c.jpg: NoSuchBucket", Attempts: 1},
	}
	for i := range 25 {
		files = append(files, FileResult{Path: "raw/" + strings.Repeat("x", i) + ".jpg", Status: StatusSkipped, Reason: ReasonExcluded})
	}
	s := newSummary(files, 2*time.Second)
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Uploaded 1 file, 3.0 MiB in 2s (1.5 MiB/s)",
		"Skipped 27 files: 1 duplicate, 25 excluded, 1 non-image",
		"non-image    notes.txt (sniffed as text/plain)",
		"duplicate    b.jpg",
		"excluded     ... and 5 more",
		"Failed 1 file:\n  c.jpg: NoSuchBucket (permanent): put upload/c.jpg: NoSuchBucket",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestSummaryWriteJSON(t *testing.T) {
	s := newSummary([]FileResult{
		{Path: "a.jpg", Key: "upload/0123456789abcdef/a.jpg", Status: StatusUploaded, Bytes: 10, SHA256: testSHA},
		{Path: "n.txt", Status: StatusSkipped, Reason: ReasonNonImage, Bytes: 3},
	}, time.Second)
	var b bytes.Buffer
	if err := s.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Uploaded, Skipped, Failed int
		Bytes                     int64
		SkippedBy                 map[string]int
		Files                     []struct{ Path, Key, Status, Reason, SHA256 string }
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b.String())
	}
	if doc.Uploaded != 1 || doc.Skipped != 1 || doc.Failed != 0 || doc.Bytes != 10 || doc.SkippedBy[ReasonNonImage] != 1 {
		t.Errorf("counts wrong: %+v", doc)
	}
	if len(doc.Files) != 2 || doc.Files[0].Key != "upload/0123456789abcdef/a.jpg" || doc.Files[0].SHA256 != testSHA ||
		doc.Files[1].Status != "skipped" || doc.Files[1].Reason != ReasonNonImage {
		t.Errorf("files wrong: %+v", doc.Files)
	}
}

func TestProgressString(t *testing.T) {
	tests := []struct {
		p    Progress
		want string
	}{
		{Progress{FilesDone: 0, FilesTotal: 4, BytesTotal: 4 << 20, Elapsed: time.Second},
			"0/4 files"},
		{Progress{FilesDone: 2, FilesTotal: 4, BytesSent: 2 << 20, BytesDone: 2 << 20, BytesTotal: 4 << 20, Elapsed: time.Second, Failed: 1},
			"2/4 files  1 failed"},
		{Progress{FilesDone: 4, FilesTotal: 4, BytesSent: 4 << 20, BytesDone: 4 << 20, BytesTotal: 4 << 20, Elapsed: 2 * time.Second, Skipped: 1},
			"4/4 files  1 skipped"},
		{Progress{FilesDone: 1, FilesTotal: 2, Skipped: 3, Failed: 2}, "1/2 files  3 skipped  2 failed"},
	}
	for _, tc := range tests {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() =\n%q, want\n%q", got, tc.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 20 << 20: "20.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPartSizeFor(t *testing.T) {
	for _, tc := range []struct{ size, part, want int64 }{
		{20 << 20, 5 << 20, 5 << 20},
		{MaxParts * (8 << 20), 8 << 20, 8 << 20},
		{MaxParts*(8<<20) + 1, 8 << 20, 16 << 20},
		{5 << 40, 8 << 20, 1 << 30},
	} {
		got := partSizeFor(tc.size, tc.part)
		if got != tc.want || (tc.size+got-1)/got > MaxParts {
			t.Errorf("partSizeFor(%d, %d) = %d, want %d", tc.size, tc.part, got, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"8MiB", 8 << 20, true}, {"8mib", 8 << 20, true}, {"8M", 8 << 20, true}, {"5 MB", 5e6, true},
		{"512k", 512 << 10, true}, {"1048576", 1 << 20, true}, {"2GiB", 2 << 30, true}, {"10B", 10, true},
		{"", 0, false}, {"MiB", 0, false}, {"-5MiB", 0, false}, {"1.5MiB", 0, false}, {"8TB", 0, false},
		{"99999999999999999999", 0, false}, {"9999999999999G", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
