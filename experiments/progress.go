package experiments

import (
	"fmt"
	"io"

	"github.com/schollz/progressbar/v3"
)

// progress is the runner's live line: point i/N, stack, rate, elapsed and ETA,
// drawn by schollz/progressbar (which handles terminal width and redraws).
type progress struct {
	bar *progressbar.ProgressBar
	w   io.Writer
}

func newProgress(w io.Writer, n int) *progress {
	if w == nil {
		return &progress{}
	}
	bar := progressbar.NewOptions(n,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(20),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionFullWidth(),
		progressbar.OptionSetRenderBlankState(true),
	)
	return &progress{bar: bar, w: w}
}

func (p *progress) update(i int, pt Point) {
	if p.bar == nil {
		return
	}
	p.bar.Describe(fmt.Sprintf("point %d/%d %s %.0f rps rep %d", i+1, p.bar.GetMax(), pt.Stack.Name, pt.Rate, pt.Rep))
	p.bar.Set(i)
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
