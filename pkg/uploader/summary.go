package uploader

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Status is what happened to one file.
type Status string

// The statuses of a file.
const (
	StatusUploaded Status = "uploaded"
	StatusSkipped  Status = "skipped"
	StatusFailed   Status = "failed"
)

// Reasons a file is skipped. Failed files carry a failure reason instead: an S3 error code
// ("NoSuchBucket", "SlowDown", ...), one of the Reason* constants of this package, or
// "Canceled".
const (
	ReasonNonImage    = "non-image"   // imagemeta did not recognise an image
	ReasonDuplicate   = "duplicate"   // the key already holds the same content
	ReasonExcluded    = "excluded"    // an include/exclude pattern left it out
	ReasonInterrupted = "interrupted" // Put's context ended before the file was started
	ReasonNotRegular  = "not-regular" // a device, socket, pipe or directory link
)

// FileResult is what happened to one file.
type FileResult struct {
	// Path is the file's path as found (an argument, or joined under a directory argument).
	Path string `json:"path"`
	// Key is the object key; empty when the file was skipped or failed before it had one.
	Key    string `json:"key,omitempty"`
	Status Status `json:"status"`
	// Reason says why a file was skipped or failed; empty for uploaded files.
	Reason string `json:"reason,omitempty"`
	// Class is the failure class of a failed file: permanent, transient or throttled.
	Class string `json:"class,omitempty"`
	// Detail is the error text of a failed file, or more about a skip.
	Detail string `json:"detail,omitempty"`
	// Bytes is the file's size.
	Bytes       int64  `json:"bytes"`
	SHA256      string `json:"sha256,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	// Attempts is how many times the upload was tried.
	Attempts int `json:"attempts,omitempty"`
	// Parts is the number of parts of a multipart upload; 0 for a single PUT.
	Parts int `json:"parts,omitempty"`
}

// Summary is the outcome of one Put.
type Summary struct {
	// Files has one entry per file, in the order the files were found.
	Files                     []FileResult
	Uploaded, Skipped, Failed int
	// Bytes is the total size of the files uploaded.
	Bytes   int64
	Elapsed time.Duration
	// Interrupted is set when Put's context ended before every file was done.
	Interrupted bool
}

func newSummary(files []FileResult, elapsed time.Duration) *Summary {
	s := &Summary{Files: files, Elapsed: elapsed}
	for _, f := range files {
		switch f.Status {
		case StatusUploaded:
			s.Uploaded++
			s.Bytes += f.Bytes
		case StatusSkipped:
			s.Skipped++
		default:
			s.Failed++
		}
	}
	return s
}

// Exit codes of the uploader command.
const (
	ExitOK      = 0 // everything was uploaded or deliberately skipped
	ExitFailed  = 1 // a file failed, or the run was interrupted before every file was sent
	ExitUsage   = 2 // a bad command line or setting
	ExitTimeout = 3 // wait: the timeout ended before every object was indexed or failed
)

// ExitCode is ExitFailed when any file failed or the run was interrupted, else ExitOK.
func (s *Summary) ExitCode() int {
	if s.Failed > 0 || s.Interrupted {
		return ExitFailed
	}
	return ExitOK
}

// Rate is the upload rate in bytes per second.
func (s *Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Bytes) / s.Elapsed.Seconds()
}

// SkippedBy counts the skipped files by reason.
func (s *Summary) SkippedBy() map[string]int {
	m := map[string]int{}
	for _, f := range s.Files {
		if f.Status == StatusSkipped {
			m[f.Reason]++
		}
	}
	return m
}

// listLimit bounds the files WriteText lists per skip reason.
const listLimit = 20

// WriteText writes the human summary: counts, bytes and rate, then the skipped files by reason
// and every failed file with its reason.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Uploaded %d %s, %s in %s (%s/s)\n", s.Uploaded, plural(s.Uploaded, "file"),
		FormatBytes(s.Bytes), s.Elapsed.Round(time.Millisecond), FormatBytes(int64(s.Rate())))
	if s.Skipped > 0 {
		by := s.SkippedBy()
		reasons := make([]string, 0, len(by))
		for r := range by {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		var parts []string
		for _, r := range reasons {
			parts = append(parts, fmt.Sprintf("%d %s", by[r], r))
		}
		fmt.Fprintf(&b, "Skipped %d %s: %s\n", s.Skipped, plural(s.Skipped, "file"), strings.Join(parts, ", "))
		for _, r := range reasons {
			n := 0
			for _, f := range s.Files {
				if f.Status != StatusSkipped || f.Reason != r {
					continue
				}
				if n++; n > listLimit {
					fmt.Fprintf(&b, "  %-12s ... and %d more (--json lists every file)\n", r, by[r]-listLimit)
					break
				}
				fmt.Fprintf(&b, "  %-12s %s", r, f.Path)
				if f.Detail != "" {
					fmt.Fprintf(&b, " (%s)", f.Detail)
				}
				b.WriteByte('\n')
			}
		}
	}
	if s.Failed > 0 {
		fmt.Fprintf(&b, "Failed %d %s:\n", s.Failed, plural(s.Failed, "file"))
		for _, f := range s.Files {
			if f.Status == StatusFailed {
				fmt.Fprintf(&b, "  %s: %s (%s", f.Path, f.Reason, f.Class)
				if f.Attempts > 1 {
					fmt.Fprintf(&b, ", %d attempts", f.Attempts)
				}
				fmt.Fprintf(&b, "): %s\n", f.Detail)
			}
		}
	}
	if s.Interrupted {
		b.WriteString("Interrupted: files not started are listed as skipped (interrupted); run the same command again to send them.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// jsonSummary is the document WriteJSON writes.
type jsonSummary struct {
	Uploaded       int            `json:"uploaded"`
	Skipped        int            `json:"skipped"`
	Failed         int            `json:"failed"`
	Bytes          int64          `json:"bytes"`
	ElapsedSeconds float64        `json:"elapsedSeconds"`
	BytesPerSecond float64        `json:"bytesPerSecond"`
	Interrupted    bool           `json:"interrupted"`
	SkippedBy      map[string]int `json:"skippedBy"`
	Files          []FileResult   `json:"files"`
}

// WriteJSON writes the summary as one JSON document with an entry per file.
func (s *Summary) WriteJSON(w io.Writer) error {
	files := s.Files
	if files == nil {
		files = []FileResult{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonSummary{
		Uploaded: s.Uploaded, Skipped: s.Skipped, Failed: s.Failed, Bytes: s.Bytes,
		ElapsedSeconds: s.Elapsed.Seconds(), BytesPerSecond: s.Rate(), Interrupted: s.Interrupted,
		SkippedBy: s.SkippedBy(), Files: files,
	})
}

// Progress is a snapshot of a running Put.
type Progress struct {
	// FilesDone of FilesTotal files have a final result (FilesTotal excludes files left out
	// by the include/exclude patterns).
	FilesDone, FilesTotal     int
	Uploaded, Skipped, Failed int
	// BytesSent is what S3 has acknowledged; BytesDone adds the sizes of skipped and failed
	// files, so it reaches BytesTotal at the end.
	BytesSent, BytesDone, BytesTotal int64
	Elapsed                          time.Duration
	// Final is set on the last call, after every file is done.
	Final bool
}

// Rate is the upload rate in bytes per second.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.BytesSent) / p.Elapsed.Seconds()
}

// String renders the counts of p, the text a progress bar over the bytes shows beside it:
// "12/23 files  1 skipped  1 failed".
func (p Progress) String() string {
	s := fmt.Sprintf("%d/%d files", p.FilesDone, p.FilesTotal)
	if p.Skipped > 0 {
		s += fmt.Sprintf("  %d skipped", p.Skipped)
	}
	if p.Failed > 0 {
		s += fmt.Sprintf("  %d failed", p.Failed)
	}
	return s
}

// FormatBytes renders n in binary units: "512 B", "1.5 KiB", "20.0 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
