package channel

import (
	"testing"
	"time"
)

// BenchmarkRoundTrip64 is one RPC through the data plane on one goroutine:
// the app sends 64 bytes, the service receives them and sends a 64-byte
// reply, the app receives it.
func BenchmarkRoundTrip64(b *testing.B) {
	p := newPair(b, Config{})
	req := payload(64, 1)
	dst1 := make([]byte, 0, 4096)
	dst2 := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.app.Send(1, 2, 3, req); err != nil {
			b.Fatal(err)
		}
		p.app.Notify()
		_, got, err := p.svc.Recv(dst1)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.svc.Send(2, 2, 3, got); err != nil {
			b.Fatal(err)
		}
		p.svc.Notify()
		if _, _, err := p.app.Recv(dst2); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(p.svcRegion.Size()), "region-bytes")
}

func benchSend(b *testing.B, size int) {
	p := newPair(b, Config{})
	msg := payload(size, 1)
	dst := make([]byte, 0, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.app.Send(1, 2, 3, msg); err != nil {
			b.Fatal(err)
		}
		if _, _, err := p.svc.Recv(dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSend* send one message from the app and receive it in the service
// (one copy in, one copy out).
func BenchmarkSend64(b *testing.B)    { benchSend(b, 64) }
func BenchmarkSend2KiB(b *testing.B)  { benchSend(b, 2048) }
func BenchmarkSend64KiB(b *testing.B) { benchSend(b, 64<<10) }

// BenchmarkSendBatch32 sends 32 messages of 64 bytes, then receives them:
// the cached counters make a batch cheaper per message.
func BenchmarkSendBatch32(b *testing.B) {
	p := newPair(b, Config{})
	msg := payload(64, 1)
	dst := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		for range 32 {
			if err := p.app.Send(1, 2, 3, msg); err != nil {
				b.Fatal(err)
			}
		}
		p.app.Notify()
		for range 32 {
			if _, _, err := p.svc.Recv(dst); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32), "ns/msg")
}

// BenchmarkPingPongWait is a round trip between two goroutines that both
// sleep on their eventfds between messages: the cost of a wakeup each way.
func BenchmarkPingPongWait(b *testing.B) {
	p := newPair(b, Config{})
	msg := payload(64, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		dst := make([]byte, 0, 2048)
		for {
			if err := p.svc.Wait(time.Second); err != nil {
				continue
			}
			d, got, err := p.svc.Recv(dst)
			if err == ErrEmpty {
				continue
			}
			if err != nil || d.Op == 0 {
				return
			}
			p.svc.Send(2, 0, 0, got)
			p.svc.Notify()
		}
	}()
	dst := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		p.app.Send(1, 0, 0, msg)
		p.app.Notify()
		for {
			if _, _, err := p.app.Recv(dst); err == nil {
				break
			}
			p.app.Wait(time.Second)
		}
	}
	p.app.Send(0, 0, 0, nil)
	p.app.Notify()
	<-done
}
