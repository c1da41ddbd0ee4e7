// Package harness runs the PyTorch benchmark harness (harness.py, embedded) and reads its
// results: the CUDA backend of gpunode's benchmark. On a rig the harness runs in a
// container with the GPUs attached (Dockerfile, the production image); the same script
// runs with --device cpu on any PyTorch, which is how CI tests the protocol (PROTOCOL.md)
// and this package's parser against real PyTorch.
package harness

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/gpunode/gpunode/benchmark"
)

// Script is harness.py, the program the harness image runs.
//
//go:embed harness.py
var Script []byte

// Dockerfile builds the production harness image for GPU rigs.
//
//go:embed Dockerfile
var Dockerfile []byte

// ScriptPath is where the harness image keeps the script.
const ScriptPath = "/opt/gpunode/harness.py"

// Config configures the harness backend.
type Config struct {
	// Device is "cuda" (GPUs) or "cpu" (PyTorch on the CPU: CI, or a rig without GPUs).
	Device string `toml:"device"`
	// Image is the harness image: "local" (LocalImage) builds it from the embedded
	// Dockerfile on BaseImage; another reference runs that image as it is; empty runs
	// the script with Python on the host instead.
	Image string `toml:"image"`
	// BaseImage is the base of the locally built image: a PyTorch image with CUDA. Pin
	// it by digest (repo@sha256:…).
	BaseImage string `toml:"base_image"`
	// Python is the interpreter for host runs and inside the image.
	Python string `toml:"python"`
	// GPUs are the GPU UUIDs to attach and measure; empty means all.
	GPUs []string `toml:"gpus"`
	// HostMounts are host paths bind-mounted read-only at the same place in the container.
	// CI sets /usr, /lib, /lib64 and /etc/alternatives so an image built FROM scratch with
	// only the script runs the host's Python and PyTorch; production images need none.
	HostMounts []string `toml:"host_mounts"`
	// Threads is torch's CPU thread count for Device "cpu"; 0 keeps torch's default.
	Threads int `toml:"threads"`
	// WorkDir holds each run's folder (the plan, the results), mounted into the harness
	// container. The node sets it under its data directory: the engine must see it, and
	// under systemd's PrivateTmp= the node's /tmp is not the engine's. Empty uses the
	// system's temporary directory (tests, host runs).
	WorkDir string `toml:"work_dir"`
}

// LocalImage as Config.Image builds the harness image on the rig from the embedded
// Dockerfile (ImageTag).
const LocalImage = "local"

// Default returns the production configuration: the harness image, built on the rig, on
// all GPUs.
func Default() Config {
	return Config{Device: "cuda", Image: LocalImage, BaseImage: DefaultBase, Python: "python3"}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.Device != "cuda" && c.Device != "cpu" {
		errs = append(errs, fmt.Errorf("device: %q, want cuda or cpu", c.Device))
	}
	if c.Image == LocalImage && c.BaseImage == "" {
		errs = append(errs, errors.New("base_image: must not be empty when image is \"local\""))
	}
	if c.Python == "" {
		errs = append(errs, errors.New("python: must not be empty"))
	}
	for _, m := range c.HostMounts {
		if !filepath.IsAbs(m) {
			errs = append(errs, fmt.Errorf("host_mounts: %q is not an absolute path", m))
		}
	}
	if c.WorkDir != "" && !filepath.IsAbs(c.WorkDir) {
		errs = append(errs, fmt.Errorf("work_dir: %q is not an absolute path", c.WorkDir))
	}
	if c.Threads < 0 {
		errs = append(errs, fmt.Errorf("threads: %d, want ≥ 0", c.Threads))
	}
	return errs
}

// Mount is a bind mount into the harness container.
type Mount struct {
	Source   string
	Target   string
	ReadOnly bool
}

// ContainerSpec is what the harness needs of a container run.
type ContainerSpec struct {
	Image string
	Cmd   []string
	// OutputDir is a host directory to mount writable at /out, empty at start. As the
	// harness runs it holds a copy of its output lines (/out/results.jsonl).
	OutputDir string
	// Mounts are extra read-only host mounts.
	Mounts []Mount
	// GPUs are the UUIDs of the GPUs to attach; "all" attaches every GPU.
	GPUs []string
}

// Containers runs a container to completion, streaming its stdout and stderr. It is the
// part of the node's runtime the harness uses. A runtime that cannot keep the container's
// stdout apart from its stderr copies OutputDir/results.jsonl to stdout once the
// container has exited instead.
type Containers interface {
	RunContainer(ctx context.Context, spec ContainerSpec, stdout, stderr io.Writer) (exitCode int, err error)
}

// Backend runs the harness and parses its output.
type Backend struct {
	cfg        Config
	containers Containers

	mu    sync.Mutex
	hello *Hello // from the first successful probe

	buildMu sync.Mutex
	built   bool // the local image was built by this process

	reserver Reserver // nil: cfg.GPUs as they are
}

// Reserver hands the harness the GPUs to measure for one run and takes them back after:
// the node's job allocator, so that the benchmark never runs on a GPU leased to a job.
type Reserver interface {
	Reserve(ctx context.Context) (gpus []string, release func(), err error)
}

// SetReserver makes every CUDA run take its GPUs from r instead of Config.GPUs. Call it
// before the backend runs.
func (b *Backend) SetReserver(r Reserver) { b.reserver = r }

// New returns a harness backend. containers may be nil when cfg.Image is empty.
func New(cfg Config, containers Containers) (*Backend, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("harness: %w", errors.Join(errs...))
	}
	if cfg.Image != "" && containers == nil {
		return nil, errors.New("harness: an image needs a container runtime")
	}
	return &Backend{cfg: cfg, containers: containers}, nil
}

// Name is the device the harness measures: "cuda", or "torch-cpu".
func (b *Backend) Name() string {
	if b.cfg.Device == "cpu" {
		return "torch-cpu"
	}
	return "cuda"
}

// Harness is the harness's own name and version as it reported it, with PyTorch's.
func (b *Backend) Harness() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hello == nil {
		return "gpunode-harness"
	}
	return b.hello.Harness + " torch " + b.hello.Torch
}

// probe asks the harness which devices it sees, once it has answered; a failed probe
// (engine down, image missing) is tried again next time.
func (b *Backend) probe(ctx context.Context) (*Hello, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hello != nil {
		return b.hello, nil
	}
	var out bytes.Buffer
	runErr := b.run(ctx, nil, []string{"--probe"}, &out)
	hello, _, err := Parse(&out, benchmark.Plan{}, nil)
	switch {
	case runErr != nil && err != nil && !errors.Is(err, ErrProtocol):
		// The harness said why it failed: that is the message to show.
		return nil, fmt.Errorf("%w (%v)", err, runErr)
	case runErr != nil:
		return nil, runErr
	case err != nil:
		return nil, err
	}
	b.hello = hello
	return hello, nil
}

// Capabilities asks the harness which devices it sees: all precisions on CUDA, fp32 on
// CPU (the script also runs bf16 GEMM there, but far too slowly to plan); all-reduce
// across the GPUs.
func (b *Backend) Capabilities(ctx context.Context) (benchmark.Capabilities, error) {
	h, err := b.probe(ctx)
	if err != nil {
		return benchmark.Capabilities{}, err
	}
	fp32 := []benchmark.Precision{benchmark.FP32}
	if h.Device == "cpu" {
		return benchmark.Capabilities{Precisions: map[benchmark.Class][]benchmark.Precision{
			benchmark.ClassGEMM: fp32, benchmark.ClassConv: fp32, benchmark.ClassRNN: fp32,
		}, Workers: 1}, nil
	}
	half := []benchmark.Precision{benchmark.FP32, benchmark.FP16}
	return benchmark.Capabilities{Precisions: map[benchmark.Class][]benchmark.Precision{
		benchmark.ClassGEMM: {benchmark.FP32, benchmark.TF32, benchmark.FP16, benchmark.BF16},
		benchmark.ClassConv: {benchmark.FP32, benchmark.TF32, benchmark.FP16}, benchmark.ClassRNN: half,
		benchmark.ClassAllReduce: fp32,
	}, Devices: len(h.Devices), Workers: len(h.Devices)}, nil
}

// Hardware is what the harness reported.
func (b *Backend) Hardware(ctx context.Context) (benchmark.Hardware, error) {
	h, err := b.probe(ctx)
	if err != nil {
		return benchmark.Hardware{}, err
	}
	hw := benchmark.Hardware{OS: runtime.GOOS + "/" + runtime.GOARCH, CPU: h.CPU, Cores: h.CPUCount,
		Driver: h.Driver, CUDA: h.CUDA, CuDNN: h.CuDNN, NCCL: h.NCCL, Library: "torch " + h.Torch}
	if h.Device == "cuda" {
		for _, d := range h.Devices {
			hw.GPUs = append(hw.GPUs, benchmark.GPU{Index: d.Index, UUID: d.UUID, Name: d.Name, MemoryMB: d.MemoryMB})
		}
	}
	return hw, nil
}

// Run runs the plan in one harness process and parses its output as it streams.
func (b *Backend) Run(ctx context.Context, plan benchmark.Plan, progress func(benchmark.Result)) ([]benchmark.Result, error) {
	if _, err := b.probe(ctx); err != nil {
		return nil, err
	}
	pj, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	type parsed struct {
		res []benchmark.Result
		err error
	}
	done := make(chan parsed, 1)
	go func() {
		_, res, err := Parse(pr, plan, progress)
		pr.CloseWithError(err) // unblock the writer if parsing stopped early
		io.Copy(io.Discard, pr)
		done <- parsed{res, err}
	}()
	runErr := b.run(ctx, pj, []string{"--plan", "/in/plan.json"}, pw)
	pw.Close()
	p := <-done
	if p.err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("%w (%v)", runErr, p.err)
		}
		return nil, p.err
	}
	if runErr != nil {
		return nil, runErr
	}
	return p.res, nil
}

// ResultsFile is the copy of the output lines the harness writes in OutputDir.
const ResultsFile = "results.jsonl"

// run starts the harness with args, the plan (if any) at /in/plan.json, stdout to out.
func (b *Backend) run(ctx context.Context, plan []byte, args []string, out io.Writer) error {
	var inputs map[string][]byte
	if plan != nil {
		inputs = map[string][]byte{"plan.json": plan}
	}
	return b.runFiles(ctx, inputs, args, out, nil)
}

// runFiles starts the harness with args, the inputs as files in /in (an argument
// "/in/NAME" names one; on the host it becomes the file's path there) and an empty
// writable /out (likewise), stdout to out; collect, if set, reads /out's files on the host
// after the harness exited and before they are removed.
func (b *Backend) runFiles(ctx context.Context, inputs map[string][]byte, args []string, out io.Writer, collect func(outDir string) error) error {
	if b.cfg.WorkDir != "" {
		if err := os.MkdirAll(b.cfg.WorkDir, 0o750); err != nil {
			return fmt.Errorf("harness work dir: %w", err)
		}
	}
	dir, err := os.MkdirTemp(b.cfg.WorkDir, "gpunode-harness-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Writable by the container's user whatever it is (results.jsonl); the inputs are not
	// secret, and the folder is removed after the run.
	if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	// In a container the inputs are read-only at /in: /out belongs to the runtime, which
	// gives the job an empty, size-capped folder and copies it out after.
	in, outDir := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	for _, d := range []string{in, outDir} {
		if err := os.Mkdir(d, 0o777); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o777); err != nil { // the container's user writes /out
			return err
		}
	}
	for name, data := range inputs {
		if err := os.WriteFile(filepath.Join(in, name), data, 0o644); err != nil {
			return err
		}
	}
	args = append(args, "--device", b.cfg.Device)
	if b.cfg.Threads > 0 {
		args = append(args, "--threads", strconv.Itoa(b.cfg.Threads))
	}
	var stderr tail
	if b.cfg.Image == "" {
		script := filepath.Join(dir, "harness.py")
		if err := os.WriteFile(script, Script, 0o644); err != nil {
			return err
		}
		for i, a := range args {
			if rest, ok := strings.CutPrefix(a, "/in/"); ok {
				args[i] = filepath.Join(in, rest)
			} else if a == "/out" {
				args[i] = outDir
			}
		}
		cmd := exec.CommandContext(ctx, b.cfg.Python, append([]string{script}, args...)...)
		cmd.Stdout, cmd.Stderr = out, &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("harness %s: %w: %s", b.cfg.Python, err, stderr.String())
		}
	} else {
		if err := b.runImage(ctx, in, outDir, inputs != nil, args, out, &stderr); err != nil {
			return err
		}
	}
	if collect != nil {
		return collect(outDir)
	}
	return nil
}

func (b *Backend) runImage(ctx context.Context, in, outDir string, haveInputs bool, args []string, out io.Writer, stderr *tail) error {
	image, err := b.image(ctx)
	if err != nil {
		return err
	}
	var mounts []Mount
	if haveInputs {
		mounts = append(mounts, Mount{Source: in, Target: "/in", ReadOnly: true})
	}
	spec := ContainerSpec{
		Image:     image,
		Cmd:       append([]string{b.cfg.Python, ScriptPath}, append(args, "--out", "/out/"+ResultsFile)...),
		OutputDir: outDir,
		Mounts:    mounts,
	}
	for _, m := range b.cfg.HostMounts {
		spec.Mounts = append(spec.Mounts, Mount{Source: m, Target: m, ReadOnly: true})
	}
	if b.cfg.Device == "cuda" {
		spec.GPUs = b.cfg.GPUs
		if b.reserver != nil {
			gpus, release, err := b.reserver.Reserve(ctx)
			if err != nil {
				return fmt.Errorf("harness: reserve gpus: %w", err)
			}
			defer release()
			spec.GPUs = gpus
		}
		if len(spec.GPUs) == 0 {
			spec.GPUs = []string{"all"}
		}
	}
	code, err := b.containers.RunContainer(ctx, spec, out, stderr)
	if err != nil {
		return fmt.Errorf("harness image %s: %w", b.cfg.Image, err)
	}
	if code != 0 {
		return fmt.Errorf("harness image %s: exit status %d: %s", b.cfg.Image, code, stderr.String())
	}
	return nil
}

// image is the image to run, building the local one first (once per process; the
// engine's cache makes a rebuild of the same content quick).
func (b *Backend) image(ctx context.Context) (string, error) {
	if b.cfg.Image != LocalImage {
		return b.cfg.Image, nil
	}
	tag := ImageTag(b.cfg.BaseImage)
	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	if b.built {
		return tag, nil
	}
	builder, ok := b.containers.(Builder)
	if !ok {
		return "", errors.New("harness: the container runtime cannot build the local harness image")
	}
	if _, err := builder.BuildImage(ctx, tag, BuildContext(), map[string]string{"BASE": b.cfg.BaseImage}); err != nil {
		return "", fmt.Errorf("harness: build image on %s: %w", b.cfg.BaseImage, err)
	}
	b.built = true
	return tag, nil
}

// tail keeps the last 4 KiB written to it, for error messages.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string(t.b)) }
