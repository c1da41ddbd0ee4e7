//go:build integration

package docker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testkit"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

// The crash tests re-execute the test binary as "the process that runs the runtime":
// with GPUNODE_RUNTIME_CHILD set, TestMain runs childMain instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("GPUNODE_RUNTIME_CHILD") != "" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

type childArgs struct {
	Config    docker.Config `json:"config"`
	Spec      runtime.Spec  `json:"spec"`
	ResultDir string        `json:"result_dir"`
}

// childMain is a minimal node: open the runtime, re-attach, start the job unless it
// was started before, wait for its result and write it to ResultDir/result-<pid>.json.
func childMain() int {
	var a childArgs
	if err := json.Unmarshal([]byte(os.Getenv("GPUNODE_RUNTIME_CHILD")), &a); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rt, err := docker.New(a.Config, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := rt.Recover(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child: recover:", err)
		return 2
	}
	if _, err := rt.Start(ctx, a.Spec); err != nil && !errors.Is(err, runtime.ErrJobExists) {
		fmt.Fprintln(os.Stderr, "child: start:", err)
		return 2
	}
	res, err := rt.Wait(ctx, a.Spec.JobID)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: wait:", err)
		return 2
	}
	b, _ := json.Marshal(res)
	if err := os.WriteFile(filepath.Join(a.ResultDir, fmt.Sprintf("result-%d.json", os.Getpid())), b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	rt.Close()
	return 0
}

func startChild(t *testing.T, a childArgs) *exec.Cmd {
	t.Helper()
	b, _ := json.Marshal(a)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GPUNODE_RUNTIME_CHILD="+string(b))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestKill9 kills the runtime's process with SIGKILL while a job runs, restarts it, and
// checks the job completes exactly once with its output and log intact — both when
// the job is still running at restart and when it finished while nothing watched it.
func TestKill9(t *testing.T) {
	img := probeImage(t)
	cli := engine(t)
	for _, tc := range []struct {
		name         string
		finishBefore bool
	}{{"RunningAtRestart", false}, {"FinishedWhileDown", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := docker.Default()
			cfg.StateDir = filepath.Join(dir, "state")
			cfg.LogDir = filepath.Join(dir, "logs")
			cfg.Instance = instanceFor(cfg.StateDir)
			cfg.DockerConfig = "/nonexistent/config.json"
			t.Cleanup(func() { removeInstance(t, cfg.Instance) })
			resultDir := filepath.Join(dir, "results")
			os.MkdirAll(resultDir, 0o755)
			spec := runtime.Spec{
				JobID:     "kill9-" + strings.ToLower(tc.name),
				Image:     img,
				Command:   []string{"/probe", "append:/out/runs=run", "echo:epoch 1", "sleep:4s", "echo:epoch 2", "write:/out/model=trained"},
				OutputDir: filepath.Join(dir, "out"),
			}
			a := childArgs{Config: cfg, Spec: spec, ResultDir: resultDir}

			first := startChild(t, a)
			logFile := filepath.Join(cfg.LogDir, spec.JobID+".log")
			testkit.Eventually(t, 60*time.Second, func() bool {
				b, _ := os.ReadFile(logFile)
				return strings.Contains(string(b), "epoch 1")
			}, "the job to run and log")
			if err := first.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			first.Wait()
			name := jobContainer(t, cfg.Instance, spec.JobID).ID
			ins, err := cli.ContainerInspect(t.Context(), name)
			if err != nil {
				t.Fatalf("container gone after the runtime was killed: %v", err)
			}
			if tc.finishBefore {
				testkit.Eventually(t, 60*time.Second, func() bool {
					ins, err = cli.ContainerInspect(t.Context(), name)
					return err == nil && !ins.State.Running
				}, "the job to finish while the runtime is down")
			} else if !ins.State.Running {
				t.Fatalf("job finished before the restart; the test is too slow to show re-attach")
			}

			second := startChild(t, a)
			done := make(chan error, 1)
			go func() { done <- second.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("restarted runtime: %v", err)
				}
			case <-time.After(2 * time.Minute):
				second.Process.Kill()
				t.Fatal("restarted runtime did not finish")
			}

			results, _ := filepath.Glob(filepath.Join(resultDir, "*.json"))
			if len(results) != 1 {
				t.Fatalf("results = %v, want exactly one", results)
			}
			var res runtime.Result
			b, _ := os.ReadFile(results[0])
			if err := json.Unmarshal(b, &res); err != nil {
				t.Fatal(err)
			}
			// The job sleeps 4s; the engine's start and finish timestamps come from
			// different clocks' views, so allow some slack below that.
			if !res.Succeeded() || res.WallTime < 3500*time.Millisecond {
				t.Errorf("result = %+v, want a clean exit after about 4s", res)
			}
			if b, _ := os.ReadFile(filepath.Join(spec.OutputDir, "runs")); string(b) != "run\n" {
				t.Errorf("job ran %q, want exactly once", b)
			}
			if b, _ := os.ReadFile(filepath.Join(spec.OutputDir, "model")); string(b) != "trained\n" {
				t.Errorf("output model = %q", b)
			}
			wantLog := "append: ok /out/runs\nepoch 1\nepoch 2\nwrite: ok /out/model\n"
			if b, _ := os.ReadFile(res.LogFile); string(b) != wantLog {
				t.Errorf("log = %q, want %q", b, wantLog)
			}
			if _, err := cli.ContainerInspect(t.Context(), name); err == nil {
				t.Error("container not removed after its result was collected")
			}
		})
	}
}

// TestRecoverCrashWindows covers the windows between a record and its side effect:
// killed after writing "preparing" but before creating the container (the job never
// ran: interrupted), or after creating the container but before recording it (found
// by name and labels, and started once).
func TestRecoverCrashWindows(t *testing.T) {
	img := probeImage(t)
	dir := t.TempDir()
	cfg := testConfig(conformance.Options{StateDir: filepath.Join(dir, "s"), LogDir: filepath.Join(dir, "l")})
	rt := openRuntime(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	preparing := runtime.Spec{JobID: "died-preparing", Image: img, Command: []string{"/probe", "append:/out/runs=run"}, OutputDir: filepath.Join(dir, "o1")}
	if err := rt.CrashWhilePreparing(preparing); err != nil {
		t.Fatal(err)
	}
	created := runtime.Spec{JobID: "died-creating", Image: img, Command: []string{"/probe", "append:/out/runs=run"}, OutputDir: filepath.Join(dir, "o2")}
	if err := rt.CrashAfterCreate(ctx, created, img); err != nil {
		t.Fatal(err)
	}
	rt.Close()

	rt2 := openRuntime(t, cfg)
	defer rt2.Close()
	if _, err := rt2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := rt2.Wait(ctx, preparing.JobID)
	if err != nil || !strings.Contains(res.Error, runtime.ErrInterrupted.Error()) {
		t.Errorf("killed while preparing: %+v, %v; want interrupted", res, err)
	}
	if _, err := os.Stat(filepath.Join(preparing.OutputDir, "runs")); err == nil {
		t.Error("the interrupted job ran")
	}
	res, err = rt2.Wait(ctx, created.JobID)
	if err != nil || !res.Succeeded() {
		t.Errorf("killed after create: %+v, %v; want the job run", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(created.OutputDir, "runs")); string(b) != "run\n" {
		t.Errorf("job ran %q, want once", b)
	}
	for _, s := range []runtime.Spec{preparing, created} {
		if _, err := rt2.Start(ctx, s); !errors.Is(err, runtime.ErrJobExists) {
			t.Errorf("start %s again = %v, want ErrJobExists", s.JobID, err)
		}
	}
}
