//go:build integration

package ipfs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkAdd1GiB measures, in one run, the add throughput of 1 GiB for gpunode
// and for `ipfs add --cid-version 1 --raw-leaves` (kubo, same file), both with their
// default durability (neither fsyncs blocks), and prints both with their ratio
// (target: gpunode >= kubo). gpunode with sync_writes = true is printed too.
// Run it with: go test -run XXX -bench Add1GiB -benchtime 1x ./node/ipfs/
func BenchmarkAdd1GiB(b *testing.B) {
	const size = 1 << 30
	file := filepath.Join(b.TempDir(), "1GiB.bin")
	writeRandom(b, file, size, 77)
	syncFile(b, file) // its dirty pages are not the adders' work
	ctx := b.Context()
	var gTotal, sTotal, kTotal time.Duration
	gpunodeAdd := func(sync bool) (string, time.Duration) {
		b.StopTimer()
		defer b.StopTimer()
		dir := b.TempDir()
		defer os.RemoveAll(dir)
		cfg := Default()
		cfg.Dir, cfg.MaxStorageBytes, cfg.SyncWrites = dir, 4<<30, sync
		n, err := New(cfg, dir, newHost(b), nil, testLogger(b))
		if err != nil {
			b.Fatal(err)
		}
		defer n.Close()
		b.StartTimer()
		start := time.Now()
		res, err := n.Add(ctx, file, "")
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		return res.CID, d
	}
	for i := 0; i < b.N; i++ {
		c, d := gpunodeAdd(false)
		gTotal += d
		k := newKubo(b)
		start := time.Now()
		kc := k.run("add", "-Q", "--cid-version", "1", "--raw-leaves", file)
		kTotal += time.Since(start)
		os.RemoveAll(k.repo)
		if kc != c {
			b.Fatalf("CIDs differ: gpunode %s, kubo %s", c, kc)
		}
		_, d = gpunodeAdd(true)
		sTotal += d
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	g, kb, s := mbps(gTotal), mbps(kTotal), mbps(sTotal)
	b.ReportMetric(g, "gpunode-MB/s")
	b.ReportMetric(kb, "kubo-MB/s")
	b.ReportMetric(g/kb, "ratio")
	b.ReportMetric(s, "gpunode-sync-MB/s")
	fmt.Printf("\nadd 1 GiB        gpunode %8.1f MB/s   kubo %8.1f MB/s   gpunode/kubo %.2f   (gpunode sync_writes: %.1f MB/s)\n", g, kb, g/kb, s)
}

// BenchmarkTransfer256MiB measures, in one run, how fast a kubo daemon fetches 256 MiB
// over bitswap on loopback from gpunode and from another kubo daemon (`ipfs pin add`
// on the receiver), and prints both with their ratio.
// Run it with: go test -run XXX -bench Transfer256MiB -benchtime 1x ./node/ipfs/
func BenchmarkTransfer256MiB(b *testing.B) {
	const size = 256 << 20
	file := filepath.Join(b.TempDir(), "256MiB.bin")
	writeRandom(b, file, size, 78)
	syncFile(b, file)
	ctx := b.Context()
	var gTotal, kTotal time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h := newHost(b)
		n := newNode(b, "", h, nil)
		res, err := n.Add(ctx, file, "")
		if err != nil {
			b.Fatal(err)
		}
		fromG := newKubo(b)
		fromG.start()
		connect(b, h, fromG.addr)
		b.StartTimer()
		start := time.Now()
		if err := fromG.rpc("pin/add", nil, "arg", res.CID); err != nil {
			b.Fatal(err)
		}
		gTotal += time.Since(start)
		b.StopTimer()
		fromG.stop()

		src, dst := newKubo(b), newKubo(b)
		src.start()
		if c := src.run("add", "-Q", "--cid-version", "1", "--raw-leaves", file); c != res.CID {
			b.Fatalf("CIDs differ: gpunode %s, kubo %s", res.CID, c)
		}
		dst.start()
		if err := dst.rpc("swarm/connect", nil, "arg", src.addr.Addrs[0].String()+"/p2p/"+src.id.String()); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if err := dst.rpc("pin/add", nil, "arg", res.CID); err != nil {
			b.Fatal(err)
		}
		kTotal += time.Since(start)
		src.stop()
		dst.stop()
		n.Close()
		h.Close()
	}
	g := float64(size) * float64(b.N) / gTotal.Seconds() / 1e6
	kb := float64(size) * float64(b.N) / kTotal.Seconds() / 1e6
	b.ReportMetric(g, "kubo<-gpunode-MB/s")
	b.ReportMetric(kb, "kubo<-kubo-MB/s")
	b.ReportMetric(g/kb, "ratio")
	fmt.Printf("\ntransfer 256 MiB kubo<-gpunode %8.1f MB/s   kubo<-kubo %8.1f MB/s   ratio %.2f\n", g, kb, g/kb)
}

func syncFile(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
}
