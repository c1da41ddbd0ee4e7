// Command ddpeval is the evaluation image of the end-to-end tests' multi-rig job: it
// scores the checkpoint of examples/ddp's train.py (model.pt and metrics.json under
// -checkpoint). A checkpoint passes only if it is a real torch archive and its metrics
// say every rank of a multi-rig run joined and the replicas ended equal; its score is
// then the train accuracy rank 0 measured. It writes gpunode's evaluation result to
// -out/result.json: {"version": 1, "metrics": {"accuracy": …}}.
package main

import (
	"archive/zip"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type metrics struct {
	WorldSize int    `json:"world_size"`
	Backend   string `json:"backend"`
	Ranks     []struct {
		Rank     int `json:"rank"`
		NodeRank int `json:"node_rank"`
	} `json:"ranks"`
	InSync   bool    `json:"replicas_in_sync"`
	Accuracy float64 `json:"train_accuracy"`
}

func main() {
	checkpoint := flag.String("checkpoint", "/checkpoint", "directory holding model.pt and metrics.json")
	ranks := flag.Int("ranks", 2, "ranks the run must have had")
	out := flag.String("out", "/out", "where result.json is written")
	flag.Parse()
	acc, err := score(*checkpoint, *ranks)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ddpeval:", err)
		acc = 0
	}
	fmt.Printf("ddpeval: accuracy %.4f\n", acc)
	b, _ := json.Marshal(map[string]any{"version": 1, "metrics": map[string]float64{"accuracy": acc}})
	if err := os.WriteFile(filepath.Join(*out, "result.json"), b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "ddpeval:", err)
		os.Exit(1)
	}
}

func score(dir string, ranks int) (float64, error) {
	z, err := zip.OpenReader(filepath.Join(dir, "model.pt"))
	if err != nil {
		return 0, fmt.Errorf("model.pt is not a torch archive: %w", err)
	}
	pickle := false
	for _, f := range z.File {
		pickle = pickle || strings.HasSuffix(f.Name, "/data.pkl")
	}
	z.Close()
	if !pickle {
		return 0, fmt.Errorf("model.pt holds no data.pkl")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		return 0, err
	}
	var m metrics
	if err := json.Unmarshal(raw, &m); err != nil {
		return 0, fmt.Errorf("metrics.json: %w", err)
	}
	if m.WorldSize != ranks || len(m.Ranks) != ranks || !m.InSync {
		return 0, fmt.Errorf("metrics.json: world size %d, %d ranks, in sync %v; want %d ranks in sync", m.WorldSize, len(m.Ranks), m.InSync, ranks)
	}
	for i, r := range m.Ranks {
		if r.Rank != i || r.NodeRank != i {
			return 0, fmt.Errorf("metrics.json: rank %d reports rank %d on node %d", i, r.Rank, r.NodeRank)
		}
	}
	return m.Accuracy, nil
}
