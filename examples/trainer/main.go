// Command trainer is the example training job: it fits a softmax classifier on the
// training part of the digits data set mounted read-only at -data and writes the
// checkpoint (model.json) and its training metrics (metrics.json) to -out. It is a static
// binary in a FROM-scratch image (see Dockerfile).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gpunode/gpunode/examples/digits"
)

func main() {
	data := flag.String("data", "/data/digits.csv.gz", "digits data set (CSV, optionally gzipped)")
	out := flag.String("out", "/out", "output directory")
	epochs := flag.Int("epochs", 15, "passes over the training data")
	lr := flag.Float64("lr", 0.1, "learning rate")
	seed := flag.Int64("seed", 1, "shuffling seed")
	every := flag.Int("checkpoint-every", 0, "also keep the model every N epochs in checkpoints/ (0: only the final one)")
	flag.Parse()
	if err := run(*data, *out, *epochs, *every, *lr, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "trainer:", err)
		os.Exit(1)
	}
}

func run(data, out string, epochs, every int, lr float64, seed int64) error {
	start := time.Now()
	all, err := digits.Load(data)
	if err != nil {
		return err
	}
	train, _ := digits.Split(all)
	fmt.Printf("training on %d samples for %d epochs\n", len(train), epochs)
	var m *digits.Model
	if every > 0 {
		// Train in rounds of `every` epochs from the last round's weights, keeping each.
		if err := os.MkdirAll(filepath.Join(out, "checkpoints"), 0o755); err != nil {
			return err
		}
		for done := 0; done < epochs; done += every {
			n := min(every, epochs-done)
			m = digits.Resume(m, train, n, lr, seed+int64(done))
			if err := m.Save(filepath.Join(out, "checkpoints", fmt.Sprintf("epoch-%06d.json", done+n))); err != nil {
				return err
			}
		}
	} else {
		m = digits.Train(train, epochs, lr, seed)
	}
	acc := m.Accuracy(train)
	fmt.Printf("train accuracy %.4f in %s\n", acc, time.Since(start).Round(time.Millisecond))
	if err := m.Save(filepath.Join(out, "model.json")); err != nil {
		return err
	}
	metrics, _ := json.MarshalIndent(map[string]any{
		"train_accuracy": acc, "train_samples": len(train), "epochs": epochs, "learning_rate": lr, "seed": seed,
	}, "", "  ")
	return os.WriteFile(filepath.Join(out, "metrics.json"), metrics, 0o644)
}
