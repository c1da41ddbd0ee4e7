//go:build integration

package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpunode/gpunode/examples/digits"
	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/jobs"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/node/validator"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/docker"
)

var (
	exampleOnce   sync.Once
	exampleImages map[string]string
	exampleErr    error
)

// exampleImage builds the example trainer and eval images and the test's probe image
// (static Go binaries FROM scratch) once per test process and returns the image ID of
// name.
func exampleImage(t *testing.T, name string) string {
	t.Helper()
	testenv.RequireDocker(t)
	exampleOnce.Do(func() {
		exampleImages = map[string]string{}
		root := testenv.RepoRoot(t)
		data, err := os.ReadFile(digits.DebianPath)
		if err != nil {
			exampleErr = fmt.Errorf("%v: the digits come from Debian's python3-sklearn; %s", err, testenv.Setup)
			return
		}
		for _, b := range []struct {
			name, pkg, dockerfile string
			files                 map[string][]byte
		}{
			{"trainer", "./examples/trainer", "", nil},
			{"eval", "./examples/eval", "", map[string][]byte{"digits.csv.gz": data}},
			{"probe", "./e2e/testdata/probe", "FROM scratch\nCOPY probe /probe\nUSER 65534:65534\nENTRYPOINT [\"/probe\"]\n", nil},
		} {
			if b.dockerfile == "" {
				df, err := os.ReadFile(filepath.Join(root, b.pkg, "Dockerfile"))
				if err != nil {
					exampleErr = err
					return
				}
				b.dockerfile = string(df)
			}
			id, err := buildStatic(root, b.name, b.pkg, b.dockerfile, b.files)
			if err != nil {
				exampleErr = err
				return
			}
			exampleImages[b.name] = id
		}
	})
	if exampleErr != nil {
		t.Fatal(exampleErr)
	}
	return exampleImages[name]
}

// buildStatic compiles pkg into a static binary called name and builds an image of it
// from dockerfile, with files beside it in the build context; it returns the image ID.
func buildStatic(root, name, pkg, dockerfile string, files map[string][]byte) (string, error) {
	dir, err := os.MkdirTemp("", "gpunode-example-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, name), pkg)
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", name, err, out)
	}
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644)
	for n, b := range files {
		os.WriteFile(filepath.Join(dir, n), b, 0o644)
	}
	cmd := exec.Command("docker", "build", "-q", "-t", "gpunode-example/"+name+":test", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("docker build %s: %v\n%s%s", name, err, out, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// dirContent serves checkpoints from local directories, standing in for IPFS.
type dirContent map[string]string

func (c dirContent) Fetch(_ context.Context, cid string) (string, error) {
	if d, ok := c[cid]; ok {
		return d, nil
	}
	return "", fmt.Errorf("%s: not found", cid)
}

type recordingChain struct{ scores map[string]uint32 }

func (c *recordingChain) Attest(_ context.Context, id string, score uint32) (string, error) {
	c.scores[id] = score
	return "0x" + id, nil
}

func openDocker(t *testing.T, allow ...string) *docker.Runtime {
	t.Helper()
	dir := t.TempDir()
	cfg := docker.Default()
	cfg.Instance = instanceFor("examples", dir)
	cfg.StateDir, cfg.LogDir = filepath.Join(dir, "jobs"), filepath.Join(dir, "logs")
	cfg.DatasetAllowlist = allow
	cfg.DockerConfig = "/nonexistent/config.json"
	rt, err := docker.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rt.Close()
		exec.Command("sh", "-c", "docker ps -aq --filter label="+docker.LabelInstance+"="+cfg.Instance+" | xargs -r docker rm -f -v").Run()
	})
	return rt
}

func runJob(t *testing.T, rt *docker.Runtime, spec runtime.Spec) runtime.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := rt.Start(ctx, spec); err != nil {
		t.Fatalf("start %s: %v", spec.JobID, err)
	}
	res, err := rt.Wait(ctx, spec.JobID)
	if err != nil {
		t.Fatalf("wait %s: %v", spec.JobID, err)
	}
	return res
}

// TestExampleTrainsOnPrivateDataAndValidates trains the example on a local dataset in a
// hardened container, publishes only the checkpoint, and has a validator score it with
// the eval image — all on the real Docker Engine.
func TestExampleTrainsOnPrivateDataAndValidates(t *testing.T) {
	trainer := exampleImage(t, "trainer")
	eval := exampleImage(t, "eval")
	datasets := t.TempDir()
	data, err := os.ReadFile(digits.DebianPath)
	if err != nil {
		t.Fatalf("%v: %s", err, testenv.Setup)
	}
	os.WriteFile(filepath.Join(datasets, "digits.csv.gz"), data, 0o644)
	rt := openDocker(t, datasets)

	train := func(id string, epochs int) (string, string) {
		out := filepath.Join(t.TempDir(), "out")
		os.MkdirAll(out, 0o777)
		os.Chmod(out, 0o777)
		res := runJob(t, rt, runtime.Spec{
			JobID:     id,
			Image:     trainer,
			Command:   []string{"/trainer", "-data", "/data/digits.csv.gz", "-out", "/out", "-epochs", fmt.Sprint(epochs)},
			Datasets:  []runtime.Mount{{Source: datasets, Target: "/data"}},
			OutputDir: out,
			Network:   runtime.NetworkNone,
		})
		if !res.Succeeded() {
			t.Fatalf("trainer %s: %+v", id, res)
		}
		staged := filepath.Join(t.TempDir(), "publish")
		skipped, err := jobs.Stage(out, staged, 10<<20)
		if err != nil || len(skipped) != 0 {
			t.Fatalf("stage: %v %v", skipped, err)
		}
		entries, _ := os.ReadDir(staged)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if strings.Join(names, ",") != "metrics.json,model.json" {
			t.Errorf("published output holds %v", names)
		}
		hash, err := treehash.Sum(staged)
		if err != nil {
			t.Fatal(err)
		}
		return staged, hash
	}
	good, goodHash := train("digits-15", 15)
	poor, poorHash := train("digits-0", 0)

	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	chain := &recordingChain{scores: map[string]uint32{}}
	v := validator.New(validator.Default(), st, chain, dirContent{"good": good, "poor": poor}, rt, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, tc := range []struct {
		job, cid, hash string
		pass           bool
	}{{"good", "good", goodHash, true}, {"poor", "poor", poorHash, false}} {
		verdict, err := v.Validate(t.Context(), validator.Task{
			JobID: tc.job, CheckpointCID: tc.cid, ResultHash: tc.hash, EvalImage: eval,
			EvalCommand: []string{"/eval-bin", "-checkpoint", "/checkpoint", "-out", "/out"},
			Metric:      "accuracy", Threshold: 900000,
		})
		if err != nil {
			t.Fatal(err)
		}
		if verdict.Pass != tc.pass || verdict.Reason != "" || chain.scores[tc.job] != verdict.Score {
			t.Errorf("%s: verdict %+v, chain score %d", tc.job, verdict, chain.scores[tc.job])
		}
		t.Logf("%s checkpoint: accuracy %.4f, score %d", tc.job, verdict.Value, verdict.Score)
	}
}
