package digits

import (
	"os"
	"path/filepath"
	"testing"
)

// dataset returns Debian's copy of the digits, failing with how to get it.
func dataset(t testing.TB) string {
	if _, err := os.Stat(DebianPath); err != nil {
		t.Fatalf("%s missing: it comes from Debian's python3-sklearn package; run `make setup` (as root)", DebianPath)
	}
	return DebianPath
}

func TestTrainLearnsDigits(t *testing.T) {
	all, err := Load(dataset(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1797 {
		t.Fatalf("%d samples, want 1797", len(all))
	}
	train, held := Split(all)
	if len(train)+len(held) != len(all) || len(held) != 359 {
		t.Fatalf("split %d/%d", len(train), len(held))
	}
	untrained := Train(train, 0, 0.1, 1)
	if acc := untrained.Accuracy(held); acc > 0.2 {
		t.Errorf("untrained model: accuracy %.3f", acc)
	}
	m := Train(train, 15, 0.1, 1)
	acc := m.Accuracy(held)
	if acc < 0.93 {
		t.Errorf("held-out accuracy %.3f, want at least 0.93", acc)
	}
	path := filepath.Join(t.TempDir(), "model.json")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Accuracy(held) != acc {
		t.Error("a saved model scores differently")
	}
	// Training on from a checkpoint goes on learning.
	if acc := Resume(Train(train, 1, 0.1, 1), train, 14, 0.1, 2).Accuracy(held); acc < 0.93 {
		t.Errorf("resumed model: held-out accuracy %.3f, want at least 0.93", acc)
	}
	// Same seed, same model.
	if Train(train, 2, 0.1, 7).W != Train(train, 2, 0.1, 7).W {
		t.Error("training is not reproducible")
	}
}

func TestLoadRejectsBadData(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"short.csv": "1,2,3\n",
		"label.csv": "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,12\n",
		"empty.csv": "",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := Load(p); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	if _, err := LoadModel(filepath.Join(dir, "short.csv")); err == nil {
		t.Error("a csv loaded as a model")
	}
}
