package channel

import (
	"math/rand/v2"
	"testing"
	"time"
)

func newSleeper(t *testing.T, e *End) *Sleeper {
	t.Helper()
	s, err := e.NewSleeper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A sleep returns at once for a message already there, times out between
// max/2 and max on an empty ring, wakes for the peer's Notify and for Wake,
// and leaves the need-wakeup flag cleared.
func TestSleeper(t *testing.T) {
	p := newPair(t, Config{RingSize: 16, Buffers: 16, BufSize: 256})
	s := newSleeper(t, p.app)

	p.svc.Send(1, 2, 3, []byte("there"))
	start := time.Now()
	if err := s.Sleep(time.Hour); err != nil || time.Since(start) > time.Second {
		t.Fatalf("with a message pending: %v after %v", err, time.Since(start))
	}
	p.app.Recv(nil)

	start = time.Now()
	if err := s.Sleep(60 * time.Millisecond); err != ErrTimeout {
		t.Fatalf("on an empty ring: %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el < 30*time.Millisecond || el > 2*time.Second {
		t.Fatalf("timed out after %v, want 30 ms to 60 ms (2 s allowed for a noisy VM)", el)
	}
	if atomic32(p.app.ownWake) != 0 {
		t.Fatal("need-wakeup left set after a sleep")
	}

	for _, c := range []struct {
		name string
		wake func() error
	}{
		{"notify", func() error {
			if err := p.svc.Send(1, 2, 3, []byte("wake up")); err != nil {
				return err
			}
			return p.svc.Notify()
		}},
		{"wake", s.Wake},
	} {
		done := make(chan error, 1)
		go func() {
			time.Sleep(50 * time.Millisecond)
			done <- c.wake()
		}()
		start = time.Now()
		err := s.Sleep(10 * time.Second)
		el := time.Since(start)
		if err != nil || el < 40*time.Millisecond || el > 5*time.Second {
			t.Fatalf("%s: %v after %v, want a wake-up after the 50 ms pause", c.name, err, el)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		p.app.Recv(nil)
	}
}

// The poller's readiness is reset when the sleeper parks (RawConn.Read
// clears it before its first callback), so a Notify that came after
// PrepareSleep's check and was already seen by the poller before the park
// would be lost, and the sleep would last until its deadline, if the
// callback did not look at the ring first. beforePark puts the Notify
// exactly there and lets the poller see it (the 5 ms pause parks this
// goroutine, so the scheduler polls the network) before the sleep parks.
func TestSleeperKeepsAWakeupBeforeThePark(t *testing.T) {
	p := newPair(t, Config{RingSize: 16, Buffers: 16, BufSize: 256})
	s := newSleeper(t, p.app)
	for i := range 20 {
		s.beforePark = func() {
			if err := p.svc.Send(1, 2, 3, []byte("in the gap")); err != nil {
				t.Fatal(err)
			}
			if err := p.svc.Notify(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		start := time.Now()
		err := s.Sleep(4 * time.Second)
		if el := time.Since(start); err != nil || el > time.Second {
			t.Fatalf("sleep %d: %v after %v: the wake-up was lost (the deadline ended the sleep)", i, err, el)
		}
		if _, got, err := p.app.Recv(nil); err != nil || string(got) != "in the gap" {
			t.Fatalf("sleep %d: %q %v", i, got, err)
		}
	}
}

// Ping-pong between a Sleeper (the Go client's dispatcher) and Wait (a
// sleeping service), with random pauses so that messages arrive while the
// other side goes to sleep or sleeps: a lost wake-up on either ring shows as
// a round trip as long as the sleeping side's deadline (the sleeper's 1 s
// to 2 s, the service's 5 s), far above anything else on this machine.
func TestSleeperPingPong(t *testing.T) {
	p := newPair(t, Config{RingSize: 16, Buffers: 16, BufSize: 256})
	s := newSleeper(t, p.app)
	const n = 500
	stop, stopped := make(chan struct{}), make(chan struct{})
	defer func() { // wake the service to see stop, and wait for it before the region is unmapped
		close(stop)
		p.app.Send(1, 0, 0, nil)
		p.app.Notify()
		<-stopped
	}()
	go func() { // the service: echo every message
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			d, b, err := p.svc.Recv(nil)
			if err == ErrEmpty {
				p.svc.Wait(5 * time.Second)
				continue
			}
			if err != nil {
				return
			}
			p.svc.Send(d.Op, d.Sock, d.Arg, b)
			p.svc.Notify()
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	worst := time.Duration(0)
	for i := range n {
		if pause := rng.IntN(300); pause > 0 {
			time.Sleep(time.Duration(pause) * time.Microsecond)
		}
		start := time.Now()
		if err := p.app.Send(1, uint32(i), 0, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		p.app.Notify()
		for {
			d, _, err := p.app.Recv(nil)
			if err == nil {
				if d.Sock != uint32(i) {
					t.Fatalf("reply for %d, want %d", d.Sock, i)
				}
				break
			}
			if err != ErrEmpty {
				t.Fatal(err)
			}
			if err := s.Sleep(2 * time.Second); err == ErrTimeout {
				t.Fatalf("round trip %d: the sleeper slept to its deadline with the reply pending or lost", i)
			}
		}
		worst = max(worst, time.Since(start))
	}
	if worst >= time.Second {
		t.Fatalf("worst round trip %v: a lost wake-up", worst)
	}
	t.Logf("%d round trips, worst %v", n, worst)
}
