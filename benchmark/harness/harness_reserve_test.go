package harness

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// recordingContainers runs nothing: it records the GPUs a harness container would get
// and answers as a harness with no results would.
type recordingContainers struct{ gpus [][]string }

func (r *recordingContainers) RunContainer(_ context.Context, spec ContainerSpec, stdout, _ io.Writer) (int, error) {
	r.gpus = append(r.gpus, spec.GPUs)
	io.WriteString(stdout, `{"type":"hello","protocol":1,"harness":"gpunode-harness/1","torch":"2.7.1","python":"3.12","device":"cuda","cpu":"x","cpu_count":8,"cuda":"12.8","cudnn":"9","nccl":"2.21","driver":"570","devices":[{"id":"gpu0","index":0,"name":"GPU","uuid":"GPU-a","memory_mb":81920}]}`+"\n"+`{"type":"done","results":0}`+"\n")
	return 0, nil
}

type fakeReserver struct {
	gpus     []string
	err      error
	released int
}

func (f *fakeReserver) Reserve(context.Context) ([]string, func(), error) {
	if f.err != nil {
		return nil, nil, f.err
	}
	return f.gpus, func() { f.released++ }, nil
}

// TestReservedGPUs: with a reserver (the node's job allocator), the harness measures the
// GPUs it hands out for the run and gives them back; when a job holds one, nothing runs.
func TestReservedGPUs(t *testing.T) {
	ctrs := &recordingContainers{}
	b, err := New(Config{Device: "cuda", Image: "example.invalid/harness:x", Python: "python3", GPUs: []string{"GPU-a", "GPU-b"}}, ctrs)
	if err != nil {
		t.Fatal(err)
	}
	res := &fakeReserver{gpus: []string{"GPU-a"}}
	b.SetReserver(res)
	if _, err := b.Capabilities(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(ctrs.gpus) != 1 || !slices.Equal(ctrs.gpus[0], []string{"GPU-a"}) || res.released != 1 {
		t.Errorf("ran on %v, released %d times; want the reserved GPU-a, released once", ctrs.gpus, res.released)
	}
	busy := &fakeReserver{err: errors.New("1 of 2 GPUs are leased to jobs")}
	b2, _ := New(Config{Device: "cuda", Image: "example.invalid/harness:x", Python: "python3"}, ctrs)
	b2.SetReserver(busy)
	if _, err := b2.Capabilities(t.Context()); err == nil || !strings.Contains(err.Error(), "leased to jobs") {
		t.Errorf("harness on leased GPUs: %v", err)
	}
	if len(ctrs.gpus) != 1 {
		t.Error("a harness container ran on GPUs leased to a job")
	}
}
