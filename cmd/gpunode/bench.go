package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/benchmark"
	"github.com/gpunode/gpunode/benchmark/cpu"
	"github.com/gpunode/gpunode/benchmark/harness"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/benchrig"
	"github.com/gpunode/gpunode/node/datadir"
	"github.com/gpunode/gpunode/runtime/docker"
	"github.com/gpunode/gpunode/runtime/gpu"
)

func newBenchCmd() *cobra.Command {
	var (
		profile, backend, dataDir, keyPath, compare, python, image, base string
		threads                                                          int
		asJSON                                                           bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark the rig (DeepBench GEMM, conv, RNN, all-reduce) and print its score",
		Long: `Runs DeepBench's problems on the rig and prints each result, the comparison with
DeepBench's published V100 times and with the rig's previous report, and the score per
device and for the rig (its "DL hashrate"). The signed report is kept in the data
directory, where the daemon serves it.

Backends: cpu (OpenBLAS), cuda (the PyTorch harness on the GPUs), torch-cpu (the same
harness on PyTorch's CPU backend).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			layout := datadir.New(dataDir)
			var key ed25519.PrivateKey
			var err error
			if keyPath == "" {
				// The node's identity: reports are signed by the key its peer ID names.
				key, err = benchrig.Key(layout)
			} else {
				key, err = benchmark.LoadOrCreateKey(keyPath)
			}
			if err != nil {
				return err
			}
			var b benchmark.Backend
			switch backend {
			case "cpu":
				b, err = cpu.New(cpu.Config{Threads: threads})
			case "cuda", "torch-cpu":
				hcfg := harness.Config{Device: "cuda", Python: python, Threads: threads, BaseImage: base}
				if backend == "torch-cpu" {
					hcfg.Device = "cpu"
				}
				if !cmd.Flags().Changed("image") && backend == "cuda" {
					image = harness.Default().Image
				}
				if image == "" {
					b, err = harness.New(hcfg, nil)
					break
				}
				hcfg.Image = image
				var gpus []string
				var rt *docker.Runtime
				if gpus, rt, err = benchContainers(layout, hcfg.Device == "cuda"); err != nil {
					return err
				}
				defer rt.Close()
				b, err = benchrig.Harness(layout, hcfg, gpus, rt)
			default:
				return fmt.Errorf("unknown backend %q: want cpu, cuda or torch-cpu", backend)
			}
			if err != nil {
				return err
			}
			cfg := benchrig.Config(layout)
			cfg.Profile, cfg.Backend = benchmark.Profile(profile), backend
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			svc, err := benchmark.New(cfg, log, key, b)
			if err != nil {
				return err
			}
			prev := svc.Last()
			if compare != "" {
				if prev, err = readReport(compare); err != nil {
					return err
				}
			}
			stderr := cmd.ErrOrStderr()
			r, err := svc.Benchmark(ctx, cfg.Profile, backend, progressBar(stderr))
			fmt.Fprintln(stderr)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			var refs []*benchmark.Reference
			if v100, err := benchmark.V100(); err == nil {
				refs = append(refs, v100)
			}
			if prev != nil {
				if prev.Fingerprint == r.Fingerprint {
					refs = append(refs, benchmark.ReportReference("prev", prev))
				} else {
					fmt.Fprintf(stderr, "not comparing with the earlier report: it is of other hardware (%s, this rig %s)\n", prev.Fingerprint, r.Fingerprint)
				}
			}
			if err := benchmark.WriteTable(out, r, refs...); err != nil {
				return err
			}
			fmt.Fprintf(out, "signed report kept in %s\n", layout.BenchmarkReport())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&profile, "profile", "quick", "problem selection: quick or full")
	f.StringVar(&backend, "backend", "cpu", "cpu, cuda or torch-cpu")
	f.BoolVar(&asJSON, "json", false, "print the signed report as JSON instead of the table")
	f.StringVar(&dataDir, "data-dir", "/var/lib/gpunode", "node data directory: the report is kept in its benchmark/ folder")
	f.StringVar(&keyPath, "key", "", "Ed25519 signing key (PKCS#8 PEM), created if missing (default: the node's identity key in <data-dir>/p2p)")
	f.StringVar(&compare, "compare", "", "earlier report to compare with (default: the kept report of this rig)")
	f.IntVar(&threads, "threads", 0, "CPU threads (0: one per CPU for cpu, torch's default for torch-cpu)")
	f.StringVar(&python, "python", "python3", "Python with PyTorch, for the cuda and torch-cpu backends (in the image, or on the host without one)")
	f.StringVar(&image, "image", "", "harness image to run through the container runtime (default \""+harness.LocalImage+"\" for cuda: built here from the embedded Dockerfile on --base-image; \"\" runs the host's Python)")
	f.StringVar(&base, "base-image", harness.DefaultBase, "base of the locally built harness image, a PyTorch CUDA image; pin it by digest (repo@sha256:…)")
	cmd.AddCommand(newBenchVerifyCmd(), newBenchShowCmd(), newBenchChallengeCmd())
	return cmd
}

func newBenchVerifyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "verify FILE",
		Short: "Check a benchmark report's signature and that its scores follow from its results",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := readReport(args[0])
			if err != nil {
				return err
			}
			if err := r.Verify(); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: valid, signed by ed25519 key %s\nrig score %.4f TFLOPS, %d results, %s profile, %s, hardware %s, %s\n",
				args[0], hex.EncodeToString(r.PublicKey), r.Scores.Rig, len(r.Results), r.Profile, r.Harness, r.Fingerprint, r.CreatedAt.Format("2006-01-02 15:04:05 MST"))
			return err
		},
	}
}

func newBenchShowCmd() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the running daemon's last benchmark report",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := api.NewClient(socket).LastBenchmark(cmd.Context())
			if err != nil {
				return err
			}
			r, err := benchmark.DecodeReport(strings.NewReader(string(b)))
			if err != nil {
				return err
			}
			if err := r.Verify(); err != nil {
				return fmt.Errorf("the daemon's report: %w", err)
			}
			return benchmark.WriteTable(cmd.OutOrStdout(), r)
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	return cmd
}

// benchContainers opens the container runtime for the harness image (benchrig.Runtime:
// its own instance, so that a running daemon does not adopt these containers) and, for
// CUDA, lists the GPUs to attach by UUID.
func benchContainers(l datadir.Layout, cuda bool) ([]string, *docker.Runtime, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var uuids []string
	if cuda {
		inv, err := gpu.Open(gpu.Default(), log)
		if err != nil {
			return nil, nil, fmt.Errorf("cuda backend: %w; measure the CPU with --backend cpu", err)
		}
		uuids = inv.Allocatable()
		inv.Close()
		if len(uuids) == 0 {
			return nil, nil, errors.New("cuda backend: the NVIDIA driver lists no GPU")
		}
	}
	rt, err := benchrig.Runtime(l, log)
	if err != nil {
		return nil, nil, err
	}
	return uuids, rt, nil
}

func readReport(path string) (*benchmark.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := benchmark.DecodeReport(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// progressBar draws "[=====>    ] 5/16 gemm fp32 m=… 1.234 TFLOPS" on one line.
func progressBar(w io.Writer) func(done, total int, r benchmark.Result) {
	return func(done, total int, r benchmark.Result) {
		const width = 30
		n := width * done / max(total, 1)
		bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
		what := fmt.Sprintf("%.3f TFLOPS", r.TFLOPS)
		switch {
		case r.Skipped != "":
			what = "skipped"
		case r.Problem.Class == benchmark.ClassAllReduce:
			what = fmt.Sprintf("%.2f GB/s", r.BusBW)
		}
		line := fmt.Sprintf("[%s] %d/%d %s %s %s %s", bar, done, total, r.Problem.Class, r.Problem.Precision, r.Problem.Shape(), what)
		fmt.Fprintf(w, "\r%-120.120s", line)
	}
}
