package experiments

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress is the runner's live line: point i/N, stack, rate, elapsed and ETA.
// On a terminal it is a bar redrawn in place (schollz/progressbar handles width
// and redraws); elsewhere (CI logs, files) it is one plain line per point.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	n     int
	start time.Time
}

func newProgress(w io.Writer, n int) *progress {
	p := &progress{w: w, n: n, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(n,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetWidth(20),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionFullWidth(),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	return p
}

func (p *progress) update(i int, pt Point) {
	load := fmt.Sprintf("%.0f rps", pt.Rate)
	if pt.Window > 0 {
		load = fmt.Sprintf("window %d", pt.Window)
	}
	desc := fmt.Sprintf("point %d/%d %s %s rep %d", i+1, p.n, pt.Stack.Name, load, pt.Rep)
	switch {
	case p.bar != nil:
		p.bar.Describe(desc)
		p.bar.Set(i)
	case p.w != nil:
		elapsed := time.Since(p.start).Round(time.Second)
		eta := "?"
		if i > 0 {
			eta = (elapsed / time.Duration(i) * time.Duration(p.n-i)).Round(time.Second).String()
		}
		fmt.Fprintf(p.w, "%s (elapsed %v, ETA %s)\n", desc, elapsed, eta)
	}
}

func (p *progress) clear() {
	if p.bar != nil {
		p.bar.Clear()
	}
}

func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}
