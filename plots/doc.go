// Package plots draws a run's figures from the analysis package's points and
// histograms, with gonum/plot, as PNG (for reading), SVG (for editing) and PDF
// (for papers).
//
// Two figures carry most of what a latency benchmark says:
//
//   - LatencyVsLoad: median and 99th-percentile latency against offered load, one
//     colour per stack, with shaded 95% confidence intervals when the points
//     carry them. Latency is on a log axis because the interesting part is
//     the knee, where a stack stops keeping up and latency grows by orders of
//     magnitude; the SLO line shows which rates a stack can serve usefully.
//   - LatencyCDF: the whole distribution of one or more points, from their merged
//     HdrHistogram logs, with latency on a log axis so that the body and the tail
//     are both readable.
//
// A stack keeps its colour and marker in every figure (StackStyle). Invalid points
// are never drawn: a point where the generator saturated says nothing about the
// stack. Values that a log axis cannot show (zero, negative) are skipped, not
// plotted at an invented position.
package plots
