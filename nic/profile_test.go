package nic

import "testing"

func TestProfilesCutFeatures(t *testing.T) {
	all := Features{Driver: "mlx5_pci", RxQueues: 1, TxQueues: 1, MaxRxQueues: 64, MaxTxQueues: 64,
		RxIPv4Checksum: true, RxL4Checksum: true, TxIPv4Checksum: true, TxL4Checksum: true, TSO: true, RSS: true, FlowSteering: true}
	lcd, err := LookupProfile("")
	if err != nil || lcd.Name != "lcd" {
		t.Fatalf("default profile: %+v %v", lcd, err)
	}
	if f := lcd.Allow(all); f.RxL4Checksum || f.TxIPv4Checksum || f.TSO || f.RSS || f.FlowSteering || f.MaxRxQueues != 1 || f.Driver != "mlx5_pci" {
		t.Fatalf("lcd lets through %+v", f)
	}
	cx5, _ := LookupProfile("cx5")
	if f := cx5.Allow(all); !f.RxL4Checksum || !f.TxL4Checksum || !f.TSO || !f.RSS || f.MaxRxQueues != 16 {
		t.Fatalf("cx5 on a ConnectX device: %+v", f)
	}
	// A profile never adds what the device lacks.
	if f := cx5.Allow(Features{Driver: "net_af_xdp", MaxRxQueues: 1}); f.RxL4Checksum || f.TSO || f.RSS || f.MaxRxQueues != 1 {
		t.Fatalf("cx5 on af_xdp: %+v", f)
	}
	if _, err := LookupProfile("e810"); err == nil {
		t.Fatal("an unknown profile was accepted")
	}
}
