// Package plots draws a run's figures from the analysis package's points and
// histograms, with gonum/plot, as PNG (for reading), SVG (for editing) and PDF
// (for papers).
//
// Two figures carry most of what a latency benchmark says:
//
//   - LatencyVsLoad: median and 99th-percentile latency against offered load, one
//     panel per protocol and application side by side on one latency scale,
//     with shaded 95% confidence intervals when the points carry them. Latency
//     is on a log axis because the interesting part is the knee, where a stack
//     stops keeping up and latency grows by orders of magnitude; the SLO line
//     shows which rates a stack can serve usefully.
//   - LatencyCDF: the whole distribution of one or more points, from their merged
//     HdrHistogram logs, with latency on a log axis so that the body and the tail
//     are both readable.
//
// A stack keeps its colour and marker in every figure (StackStyle, the one
// table of them), and legends name each stack once, with one key for what
// the line patterns mean (p50 solid, p99 dashed; udp solid, tcp dashed).
// A point that is invalid or did not sustain its offered rate (achieved < 99%)
// says nothing reliable about the stack, so no measured line passes through
// it: LatencyVsLoad shows it as an open marker, off the line, and lists it in
// a caption. Values that a log axis cannot show (zero, negative) are not
// plotted at an invented position (an open marker without a value sits on the
// panel's edge, marked as off the scale).
package plots
