// Command eval is the example evaluation image: it scores a checkpoint (model.json under
// -checkpoint) on the held-out part of the digits data set and writes the result file of
// gpunode's evaluation protocol to -out/result.json:
//
//	{"version": 1, "metrics": {"accuracy": 0.9638}}
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gpunode/gpunode/examples/digits"
)

func main() {
	checkpoint := flag.String("checkpoint", "/checkpoint", "directory holding model.json")
	data := flag.String("data", "/eval/digits.csv.gz", "digits data set; its held-out part is scored")
	out := flag.String("out", "/out", "where result.json is written")
	flag.Parse()
	if err := run(*checkpoint, *data, *out); err != nil {
		fmt.Fprintln(os.Stderr, "eval:", err)
		os.Exit(1)
	}
}

func run(checkpoint, data, out string) error {
	m, err := digits.LoadModel(filepath.Join(checkpoint, "model.json"))
	if err != nil {
		return err
	}
	all, err := digits.Load(data)
	if err != nil {
		return err
	}
	_, held := digits.Split(all)
	acc := m.Accuracy(held)
	fmt.Printf("held-out accuracy %.4f on %d samples\n", acc, len(held))
	b, _ := json.Marshal(map[string]any{"version": 1, "metrics": map[string]float64{"accuracy": acc}})
	return os.WriteFile(filepath.Join(out, "result.json"), b, 0o644)
}
