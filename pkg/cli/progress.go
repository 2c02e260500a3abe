package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Terminal reports whether w is a terminal (golang.org/x/term). Progress is drawn only
// there: pipes, files and CI logs get none.
func Terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Progress is one progress bar redrawn in place (github.com/schollz/progressbar) with a text
// after it. It is used from one goroutine.
type Progress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	total int64 // -1: not known
}

// NewProgress starts a bar on w for total units (total <= 0: not known, the count alone);
// bytes shows the units as sizes (KiB, MiB).
func NewProgress(w io.Writer, total int64, bytes bool) *Progress {
	if total <= 0 {
		total = -1
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(20),
		progressbar.OptionSetSpinnerChangeInterval(0), // no goroutine of its own
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionShowBytes(bytes),
		progressbar.OptionUseIECUnits(true),
	}
	opts = append(opts, progressbar.OptionShowCount())
	if bytes {
		opts = append(opts, progressbar.OptionShowTotalBytes(true)) // "25/100 MiB"
	}
	return &Progress{w: w, bar: progressbar.NewOptions64(total, opts...), total: total}
}

// Show redraws the bar at done with text after it. Done past the total (more arrived
// meanwhile) shows a full bar; the text still changes.
func (p *Progress) Show(done int64, text string) {
	if p.total > 0 {
		done = min(done, p.total) // beyond the total the bar only reports an error
	}
	_ = p.bar.Set64(done)
	p.bar.Describe(text)
}

// Clear erases the bar's line, before other output to the same terminal.
func (p *Progress) Clear() { _ = p.bar.Clear() }

// End leaves the last bar on its line and ends the line.
func (p *Progress) End() { fmt.Fprintln(p.w) }
