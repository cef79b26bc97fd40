// Package experiments reads the experiment files in this directory and runs them.
//
// An experiment asks one question of several network stacks under the same load.
// Its file names the stacks (each a registered stack with its typed options, see
// package stacks), the application they serve, and a workload: a transport, a
// request size, an arrival process and a list of offered rates. The experiment is
// the product
//
//	stacks × rates × repetitions
//
// and each element of it is a Point: one stack, offered one rate for a measured
// duration after a discarded warm-up, in one repetition. Points returns them in
// the order they run; by default the order is interleaved and seeded, so that a
// machine that drifts during the run (a shared or virtual one always does) biases
// no stack more than another. Every point has its own schedule seed, derived
// from the experiment's seed, so a run can be reproduced point by point.
//
// Parsing is strict and happens before anything starts. An unknown key at any
// level, a value of the wrong type (a number where a duration such as "2s" is
// expected), an impossible value (a negative rate, rates out of order), an
// unknown stack or an unknown stack option is an error; Load reports all of them
// at once, each with the file, the line, the key and what is allowed:
//
//	experiments/bad.yaml:3: unknown key "stackz" (allowed: name, description, ...)
//	experiments/bad.yaml:5: stacks[1].name: unknown stack "foo" (registered: kernel, null)
//	experiments/bad.yaml:7: workload.rates[2]: -5 is not a positive rate (requests/s > 0)
//
// A half-understood experiment file never costs an hour of machine time.
//
// rpc-latency.yaml is the commented reference for the format; smoke.yaml is the
// smallest run of every stack.
package experiments
