package doctor

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpunode/gpunode/node/datadir"
)

// TestSave: the report is kept whole in the data directory, where the daemon serves it;
// a folder it cannot write is an error, and the previous report stays.
func TestSave(t *testing.T) {
	dir := t.TempDir()
	rep := Report{CheckedAt: time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC), Checks: []Result{{Name: "docker", Status: OK, Detail: "Docker Engine 20.10"}}}
	if err := Save(rep, dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(datadir.New(dir).DoctorReport())
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(b, &got); err != nil || !got.CheckedAt.Equal(rep.CheckedAt) || len(got.Checks) != 1 || got.Checks[0] != rep.Checks[0] {
		t.Fatalf("saved %s (%v)", b, err)
	}
	if err := Save(rep, filepath.Join(dir, "missing", "dir")); err == nil {
		t.Error("saving into a folder that does not exist succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files left in the data dir: %v", entries)
	}
}
