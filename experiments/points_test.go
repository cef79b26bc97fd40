package experiments

// The order of a run's points: complete, interleaved or sequential, and each
// point's seed independent of the order.

import (
	"fmt"
	"slices"
	"testing"
)

func pointsOf(t *testing.T, nStacks, nRates, reps int, order string, seed int64) (*Experiment, []Point) {
	t.Helper()
	e := &Experiment{Repetitions: reps, Order: order, Seed: seed}
	for i := range nStacks {
		e.Stacks = append(e.Stacks, StackSpec{Name: fmt.Sprintf("s%d", i)})
	}
	for i := range nRates {
		e.Workload.Rates = append(e.Workload.Rates, float64(1000*(i+1)))
	}
	return e, e.Points()
}

type cell struct {
	stack string
	rate  float64
	rep   int
}

func TestPointsComplete(t *testing.T) {
	for _, order := range []string{"interleaved", "sequential"} {
		for _, shape := range [][3]int{{1, 1, 1}, {1, 5, 2}, {2, 8, 3}, {3, 4, 2}, {4, 1, 3}} {
			_, pts := pointsOf(t, shape[0], shape[1], shape[2], order, 7)
			if len(pts) != shape[0]*shape[1]*shape[2] {
				t.Fatalf("%s %v: %d points", order, shape, len(pts))
			}
			seen := map[cell]bool{}
			seeds := map[int64]bool{}
			for i, p := range pts {
				if p.Index != i {
					t.Errorf("%s %v: point %d has Index %d", order, shape, i, p.Index)
				}
				c := cell{p.Stack.Name, p.Rate, p.Rep}
				if seen[c] {
					t.Errorf("%s %v: %v twice", order, shape, c)
				}
				seen[c] = true
				if seeds[p.Seed] {
					t.Errorf("%s %v: seed %d twice", order, shape, p.Seed)
				}
				seeds[p.Seed] = true
			}
		}
	}
}

func TestPointsInterleaved(t *testing.T) {
	e, pts := pointsOf(t, 3, 8, 4, "interleaved", 1)
	// Consecutive points always change stack, across repetitions too.
	for i := 1; i < len(pts); i++ {
		if pts[i].Stack.Name == pts[i-1].Stack.Name {
			t.Errorf("points %d and %d are both on %s", i-1, i, pts[i].Stack.Name)
		}
	}
	// Each repetition is complete before the next starts.
	for i, p := range pts {
		if p.Rep != i/(3*8) {
			t.Errorf("point %d in rep %d", i, p.Rep)
		}
	}
	// The rates are not in ascending order, and differ between repetitions.
	rates := func(rep int, stack string) []float64 {
		var r []float64
		for _, p := range pts {
			if p.Rep == rep && p.Stack.Name == stack {
				r = append(r, p.Rate)
			}
		}
		return r
	}
	if slices.IsSorted(rates(0, "s0")) && slices.IsSorted(rates(0, "s1")) && slices.IsSorted(rates(0, "s2")) {
		t.Errorf("interleaved order left the rates ascending")
	}
	if slices.Equal(rates(0, "s0"), rates(1, "s0")) && slices.Equal(rates(1, "s0"), rates(2, "s0")) {
		t.Errorf("every repetition has the same order")
	}
	// The same seed gives the same order; another seed another order.
	if !slices.EqualFunc(pts, e.Points(), func(a, b Point) bool {
		return a.Stack.Name == b.Stack.Name && a.Rate == b.Rate && a.Rep == b.Rep && a.Seed == b.Seed
	}) {
		t.Errorf("Points is not deterministic")
	}
	_, other := pointsOf(t, 3, 8, 4, "interleaved", 2)
	if slices.EqualFunc(pts, other, func(a, b Point) bool { return a.Stack.Name == b.Stack.Name && a.Rate == b.Rate }) {
		t.Errorf("seeds 1 and 2 give the same order")
	}
}

func TestPointsSequential(t *testing.T) {
	_, pts := pointsOf(t, 2, 3, 2, "sequential", 1)
	var got []string
	for _, p := range pts {
		got = append(got, fmt.Sprintf("%s/%g/%d", p.Stack.Name, p.Rate, p.Rep))
	}
	want := []string{
		"s0/1000/0", "s0/1000/1", "s0/2000/0", "s0/2000/1", "s0/3000/0", "s0/3000/1",
		"s1/1000/0", "s1/1000/1", "s1/2000/0", "s1/2000/1", "s1/3000/0", "s1/3000/1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("sequential order\ngot  %v\nwant %v", got, want)
	}
}

// A point's seed does not depend on the order, only on what the point is.
func TestPointSeedsIndependentOfOrder(t *testing.T) {
	_, a := pointsOf(t, 2, 4, 2, "interleaved", 5)
	_, b := pointsOf(t, 2, 4, 2, "sequential", 5)
	seedOf := map[cell]int64{}
	for _, p := range a {
		seedOf[cell{p.Stack.Name, p.Rate, p.Rep}] = p.Seed
	}
	for _, p := range b {
		if seedOf[cell{p.Stack.Name, p.Rate, p.Rep}] != p.Seed {
			t.Errorf("%s %g %d: seed differs between orders", p.Stack.Name, p.Rate, p.Rep)
		}
	}
	_, c := pointsOf(t, 2, 4, 2, "sequential", 6)
	if c[0].Seed == b[0].Seed {
		t.Errorf("experiment seed does not change point seeds")
	}
}

func ExampleExperiment_Points() {
	e, err := Parse("example.yaml", []byte(`
name: example
stacks: [kernel, null]
workload:
  rates: [1000, 2000, 3000]
repetitions: 2
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range e.Points() {
		fmt.Printf("%d: rep %d %-6s %g/s\n", p.Index, p.Rep, p.Stack.Name, p.Rate)
	}
	// Output:
	// 0: rep 0 kernel 1000/s
	// 1: rep 0 null   3000/s
	// 2: rep 0 kernel 3000/s
	// 3: rep 0 null   2000/s
	// 4: rep 0 kernel 2000/s
	// 5: rep 0 null   1000/s
	// 6: rep 1 kernel 3000/s
	// 7: rep 1 null   2000/s
	// 8: rep 1 kernel 2000/s
	// 9: rep 1 null   3000/s
	// 10: rep 1 kernel 1000/s
	// 11: rep 1 null   1000/s
}
