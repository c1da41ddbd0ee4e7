package cpu

import "sync"

// ringAllReduce sums bufs element-wise across workers in place, the way NCCL and
// DeepBench's ring all-reduce do: each buffer is cut into len(bufs) chunks; in n−1
// reduce-scatter steps every worker adds the chunk its left neighbour passes on, after
// which worker i owns the full sum of chunk i+1; n−1 all-gather steps then pass the sums
// around. Each worker is a goroutine; a chunk is handed to the right neighbour as a slice
// and the neighbour acknowledges once it has read it, as a transport would after copying.
func ringAllReduce(bufs [][]float32) {
	n := len(bufs)
	if n < 2 {
		return
	}
	size := len(bufs[0])
	chunk := func(c int) (int, int) {
		c = ((c % n) + n) % n
		return c * size / n, (c + 1) * size / n
	}
	send := make([]chan []float32, n) // send[i]: from worker i to worker i+1
	ack := make([]chan struct{}, n)
	for i := range send {
		send[i] = make(chan []float32)
		ack[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			left := (w - 1 + n) % n
			buf := bufs[w]
			for phase := 0; phase < 2; phase++ {
				for s := 0; s < n-1; s++ {
					// Worker w sends chunk w−s (reduce-scatter) or w+1−s (all-gather) and
					// receives chunk w−s−1 or w−s.
					sc, rc := w-s, w-s-1
					if phase == 1 {
						sc, rc = w+1-s, w-s
					}
					lo, hi := chunk(sc)
					out := buf[lo:hi]
					done := make(chan struct{})
					go func() { send[w] <- out; <-ack[w]; close(done) }()
					in := <-send[left]
					lo, hi = chunk(rc)
					dst := buf[lo:hi]
					if phase == 0 {
						for i, v := range in {
							dst[i] += v
						}
					} else {
						copy(dst, in)
					}
					ack[left] <- struct{}{}
					<-done
				}
			}
		}()
	}
	wg.Wait()
}
