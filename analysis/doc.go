// Package analysis turns a run's histogram logs into the numbers a person reads:
// histogram logs in, statistics out.
//
// The load generator records every request's latency, in nanoseconds counted from
// its scheduled send time, into an HdrHistogram (NewHistogram: 1 ns .. 10 s, three
// significant digits, so every value is kept to within 0.1%). Once per second of
// measurement (warm-up excluded) it closes an interval and appends it to the
// point's interval log, hist/<point>.hlog (WriteHlog). That file is the record of
// the measurement: ReadHlog merges its intervals back into one histogram, and
// Summarize reads percentiles off it, in microseconds.
//
// Percentiles are always recomputed from the .hlog files, never taken from a
// histogram the generator still holds in memory. Then the numbers in summary.csv,
// report.md and the plots are exactly what anyone can re-derive from the files with
// any HdrHistogram tool; a crash, a dropped interval or a bug between recording and
// reporting shows up as a disagreement rather than hiding in a number nobody can
// recompute. Percentiles of different points, or of repetitions, are never averaged
// into a "merged" percentile either: merging histograms is exact, averaging
// percentiles is not, so repetitions are reported as a mean with its [min–max]
// spread (AggregateByStackRate) and each repetition keeps its own log.
//
// The files of a run (see DESIGN.md §6):
//
//	summary.csv   one Point per (stack, protocol, offered rate, repetition)
//	hist/*.hlog   one HdrHistogram interval log per Point
//	report.md     WriteReport: per-stack tables, capacity lines, latency above the null stack
//
// Every file is written to a temporary name and renamed into place
// (WriteFileAtomic), so a reader never sees half a file.
package analysis
