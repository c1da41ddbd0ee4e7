// Package docker runs gpunode jobs on the Docker Engine: it pulls images by digest with
// the node's registry credentials, creates hardened containers with GPUs attached by
// UUID, streams their logs to size-capped files, enforces the preparing and running
// timeouts, and re-attaches to its containers after a restart.
//
// Crash safety rests on two things: every job has a record in Config.StateDir written
// before its side effects (see record.go), and every container carries labels naming
// this node's instance and the job. A restarted node calls Recover (Run does) and picks
// up where the records and labels say it was; it never creates a job's container twice.
package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/gpunode/gpunode/runtime"
)

// Container labels.
const (
	LabelInstance = "io.gpunode.instance"
	LabelJob      = "io.gpunode.job"
	// LabelPreflight marks the GPU preflight's short-lived container.
	LabelPreflight = "io.gpunode.preflight"
)

// Runtime is the Docker implementation of runtime.Runtime.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	cli     *client.Client
	records recordStore
	images  *imageCache

	ctx    context.Context // lives until Close: monitors outlive the calls that start them
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	jobs      map[string]*job
	recoverMu sync.Mutex

	preflightMu sync.Mutex
	preflightOK map[string]bool // GPU driver kind → engine checked and able
	// bypassPreflight lets tests reach the engine's own GPU error.
	bypassPreflight bool
	// gpuStack is the GPU path's components at the last preflight.
	gpuStack []Component
	// toolVersion, when set by tests, stands in for asking the tools their versions.
	toolVersion func(component string) (string, error)
}

var _ runtime.Runtime = (*Runtime)(nil)

// job is a job this process watches.
type job struct {
	mu     sync.Mutex
	rec    *record
	cancel context.CancelFunc // cancels preparing
	done   chan struct{}      // closed once rec.Result is final
}

func (j *job) snapshot() record {
	j.mu.Lock()
	defer j.mu.Unlock()
	return *j.rec
}

// New connects to the engine and prepares the state and log directories. It does not
// touch existing jobs: call Recover (or Run) for that.
func New(cfg Config, log *slog.Logger) (*Runtime, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("runtime config: %w", errors.Join(errs...))
	}
	for _, d := range []string{cfg.StateDir, cfg.LogDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("runtime: %w", err)
		}
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	cfg = HostCaps(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{
		cfg:         cfg,
		log:         log.With("component", "runtime"),
		cli:         cli,
		records:     recordStore{dir: cfg.StateDir},
		ctx:         ctx,
		cancel:      cancel,
		jobs:        map[string]*job{},
		preflightOK: map[string]bool{},
	}
	r.images = &imageCache{path: filepath.Join(cfg.StateDir, "images.json")}
	if mode, note := r.quotaMode(); note != "" {
		r.log.Warn("job output has no hard size limit while jobs run", "output_quota", mode, "reason", note)
	}
	return r, nil
}

// Ping checks that the engine answers, saying how to fix it when it does not.
func (r *Runtime) Ping(ctx context.Context) error {
	if _, err := r.cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker engine at %s does not answer (%w): start dockerd (systemctl start docker) or set runtime.host", r.cli.DaemonHost(), err)
	}
	return nil
}

// Close stops watching jobs; their containers keep running and a later Recover
// re-attaches to them.
func (r *Runtime) Close() error {
	r.cancel()
	r.wg.Wait()
	return r.cli.Close()
}

// Run re-attaches to this node's jobs, then keeps the image cache under its cap until
// ctx is cancelled. Containers are not stopped on return.
func (r *Runtime) Run(ctx context.Context) error {
	if err := r.Ping(ctx); err != nil {
		return err
	}
	if _, err := r.Recover(ctx); err != nil {
		return err
	}
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := r.PruneImages(ctx); err != nil {
				r.log.Warn("image cache prune failed", "err", err)
			}
		}
	}
}

// newContainerName names a job's container: the instance and the job ID for people
// reading `docker ps`, and a random suffix so that a leftover container with the same
// instance and job ID (an earlier chain restarting job IDs at 1, an interrupted demo,
// another data dir) neither blocks the create nor passes for this job's container.
func (r *Runtime) newContainerName(jobID string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return "gpunode-" + r.cfg.Instance + "-" + jobID + "-" + hex.EncodeToString(b[:])
}

// withDefaults fills a spec's zero values from the configuration.
func (r *Runtime) withDefaults(s runtime.Spec) runtime.Spec {
	if s.Network == "" {
		s.Network = runtime.NetworkNone
	}
	if s.OutputTarget == "" {
		s.OutputTarget = "/out"
	}
	if s.User == "" {
		s.User = r.cfg.User
	}
	if s.PrepareTimeout == 0 {
		s.PrepareTimeout = r.cfg.PrepareTimeout
	}
	if s.StopGrace == 0 {
		s.StopGrace = r.cfg.StopGrace
	}
	// The operator's limits are ceilings (caps.go): a job gets what it asks, up to them.
	s.RunTimeout = ceiling(s.RunTimeout, r.cfg.RunTimeout)
	res := &s.Resources
	res.CPUs = ceiling(res.CPUs, r.cfg.CPUs)
	res.MemoryBytes = ceiling(res.MemoryBytes, r.cfg.MemoryBytes)
	if res.PIDs == 0 {
		res.PIDs = r.cfg.PIDs
	}
	res.TmpBytes = ceiling(res.TmpBytes, r.cfg.TmpBytes)
	if res.ShmBytes == 0 {
		res.ShmBytes = r.cfg.ShmBytes
	}
	if res.OutputBytes == 0 {
		res.OutputBytes = r.cfg.OutputBytes
	}
	if s.Cluster != nil {
		c := s.Cluster.WithDefaults()
		s.Cluster = &c
		s.Network = runtime.NetworkNone // the cluster network replaces it
	}
	return s
}

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, spec runtime.Spec) (runtime.Handle, error) {
	if errs := spec.Validate(); len(errs) > 0 {
		return runtime.Handle{}, fmt.Errorf("job %s: spec: %w", spec.JobID, errors.Join(errs...))
	}
	spec = r.withDefaults(spec)
	id := spec.JobID
	rec := &record{
		Version:   recordVersion,
		Spec:      spec,
		State:     statePreparing,
		LogFile:   filepath.Join(r.cfg.LogDir, id+".log"),
		CreatedAt: time.Now().UTC(),

		ContainerName: r.newContainerName(id),
	}
	r.mu.Lock()
	if _, ok := r.jobs[id]; ok {
		r.mu.Unlock()
		return runtime.Handle{}, fmt.Errorf("job %s: %w", id, runtime.ErrJobExists)
	}
	if err := r.records.create(rec); err != nil {
		r.mu.Unlock()
		return runtime.Handle{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, spec.PrepareTimeout)
	defer cancel()
	j := &job{rec: rec, cancel: cancel, done: make(chan struct{})}
	r.jobs[id] = j
	r.mu.Unlock()

	h, err := r.prepareAndStart(pctx, j)
	if err != nil {
		if errors.Is(pctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("job %s: preparing took longer than %s: %w", id, spec.PrepareTimeout, err)
		}
		r.finishWithError(j, err)
		r.release(j)
		return runtime.Handle{}, err
	}
	return h, nil
}

func (r *Runtime) prepareAndStart(ctx context.Context, j *job) (runtime.Handle, error) {
	spec := j.rec.Spec
	id := spec.JobID
	log := r.log.With("job_id", id)

	// The mounts are checked before the raw output folder exists, and built after.
	if _, err := r.mounts(spec); err != nil {
		return runtime.Handle{}, fmt.Errorf("job %s: %w", id, err)
	}
	j.mu.Lock()
	err := r.prepareOutput(ctx, j.rec)
	if serr := r.records.save(j.rec); err == nil {
		err = serr
	}
	j.mu.Unlock()
	if err != nil {
		return runtime.Handle{}, fmt.Errorf("job %s: %w", id, err)
	}
	mounts, err := r.mounts(spec)
	if err != nil {
		return runtime.Handle{}, fmt.Errorf("job %s: %w", id, err)
	}
	devs, err := deviceRequests(spec.GPUs)
	if err != nil {
		return runtime.Handle{}, fmt.Errorf("job %s: %w", id, err)
	}
	if len(devs) > 0 {
		if err := r.PreflightGPU(ctx, spec.GPUs); err != nil {
			return runtime.Handle{}, fmt.Errorf("job %s: %w", id, err)
		}
	}
	imageID, err := r.ensureImage(ctx, spec.Image, spec.AllowTag, func(p runtime.PullProgress) {
		log.Debug("pull progress", "image", spec.Image, "layers", p.Layers, "layers_done", p.LayersDone, "bytes", p.BytesDone, "bytes_total", p.BytesTotal)
	})
	if err != nil {
		return runtime.Handle{}, fmt.Errorf("job %s: %w", id, err)
	}
	if err := r.checkImageEnv(ctx, imageID); err != nil {
		return runtime.Handle{}, fmt.Errorf("job %s: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return runtime.Handle{}, fmt.Errorf("job %s: %w", id, err)
	}
	ins, err := r.cli.ImageInspect(ctx, imageID)
	if err != nil {
		return runtime.Handle{}, fmt.Errorf("job %s: inspect image: %w", id, err)
	}
	var volumes []string
	if ins.Config != nil {
		for v := range ins.Config.Volumes {
			volumes = append(volumes, v)
		}
	}

	cfg, hc := r.containerConfig(spec, imageID, mounts, devs)
	coverVolumes(hc, volumes, spec.Resources.TmpBytes)
	var netCfg *network.NetworkingConfig
	if spec.Cluster != nil {
		if netCfg, err = r.joinCluster(ctx, *spec.Cluster, cfg, hc); err != nil {
			return runtime.Handle{}, fmt.Errorf("job %s: %w", id, err)
		}
	}
	j.mu.Lock()
	j.rec.ImageID = imageID
	j.mu.Unlock()
	// From here on the preparing context no longer applies: a container that exists
	// must be started and watched, not abandoned half-way.
	cctx := context.WithoutCancel(ctx)
	resp, err := r.cli.ContainerCreate(cctx, cfg, hc, netCfg, nil, j.rec.ContainerName)
	if err != nil {
		r.leaveCluster(spec.Cluster)
		return runtime.Handle{}, fmt.Errorf("job %s: create container: %w", id, mapEngineError(err))
	}
	j.mu.Lock()
	j.rec.ContainerID = resp.ID
	j.rec.State = stateCreated
	err = r.records.save(j.rec)
	j.mu.Unlock()
	if err != nil {
		r.removeContainer(resp.ID)
		return runtime.Handle{}, err
	}
	r.images.touch(imageID, spec.Image)
	return r.startCreated(cctx, j)
}

// startCreated starts a created container and begins watching it.
func (r *Runtime) startCreated(ctx context.Context, j *job) (runtime.Handle, error) {
	rec := j.snapshot()
	id := rec.Spec.JobID
	// The log file is created before the container starts so that `gpunode logs -f`
	// can open it at once.
	if f, err := os.OpenFile(rec.LogFile, os.O_CREATE|os.O_WRONLY, 0o640); err == nil {
		f.Close()
	}
	if err := r.cli.ContainerStart(ctx, rec.ContainerID, container.StartOptions{}); err != nil {
		err = mapEngineError(err)
		r.removeContainer(rec.ContainerID)
		return runtime.Handle{}, fmt.Errorf("job %s: start container: %w", id, err)
	}
	j.mu.Lock()
	j.rec.State = stateRunning
	err := r.records.save(j.rec)
	j.mu.Unlock()
	if err != nil {
		r.log.Error("record not saved; the job keeps running", "job_id", id, "err", err)
	}
	return r.watch(ctx, j)
}

// watch inspects a started container and hands it to a monitor goroutine.
func (r *Runtime) watch(ctx context.Context, j *job) (runtime.Handle, error) {
	rec := j.snapshot()
	ins, err := r.cli.ContainerInspect(ctx, rec.ContainerID)
	if err != nil {
		return runtime.Handle{}, fmt.Errorf("job %s: inspect container: %w", rec.Spec.JobID, err)
	}
	started, _ := time.Parse(time.RFC3339Nano, ins.State.StartedAt)
	h := runtime.Handle{JobID: rec.Spec.JobID, ContainerID: rec.ContainerID, StartedAt: started}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.monitor(j, started)
	}()
	return h, nil
}

// monitor copies the container's logs, enforces the run timeout, and records the
// result once the container has exited. It returns early, without a result, when the
// runtime is closed: the container keeps running and Recover picks it up again.
func (r *Runtime) monitor(j *job, started time.Time) {
	rec := j.snapshot()
	id := rec.Spec.JobID
	log := r.log.With("job_id", id, "container_id", shortID(rec.ContainerID))

	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		if err := r.copyLogs(r.ctx, rec.ContainerID, rec.LogFile); err != nil && r.ctx.Err() == nil {
			log.Warn("log copy ended early", "err", err)
		}
	}()

	deadline := started.Add(rec.Spec.RunTimeout)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	quota := time.NewTicker(time.Second)
	defer quota.Stop()
	waitC, errC := r.cli.ContainerWait(r.ctx, rec.ContainerID, container.WaitConditionNotRunning)
	for {
		select {
		case <-waitC:
		case err := <-errC:
			if r.ctx.Err() != nil {
				return
			}
			if errdefs.IsNotFound(err) {
				r.finishWithError(j, fmt.Errorf("job %s: container vanished: %w (%v)", id, errRemovedOutside, err))
				r.release(j)
				return
			}
			log.Warn("wait for container failed; retrying", "err", err)
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			waitC, errC = r.cli.ContainerWait(r.ctx, rec.ContainerID, container.WaitConditionNotRunning)
			continue
		case <-quota.C:
			if rec.OutputRaw == "" {
				continue
			}
			used, full := r.outputUsed(j.snapshot())
			if !full {
				continue
			}
			log.Info("output cap reached; stopping", "output_bytes", rec.Spec.Resources.OutputBytes, "used_bytes", used)
			quota.Stop()
			j.mu.Lock()
			j.rec.OutputFull = true
			err := r.records.save(j.rec)
			j.mu.Unlock()
			if err != nil {
				log.Error("record not saved", "err", err)
			}
			go r.killContainer(rec.ContainerID)
			continue
		case <-timer.C:
			log.Info("run timeout reached; stopping", "run_timeout", rec.Spec.RunTimeout)
			j.mu.Lock()
			j.rec.TimedOut = true
			err := r.records.save(j.rec)
			j.mu.Unlock()
			if err != nil {
				log.Error("record not saved", "err", err)
			}
			go r.stopContainer(rec.ContainerID, rec.Spec.StopGrace)
			continue
		case <-r.ctx.Done():
			return
		}
		break
	}
	select {
	case <-logsDone:
	case <-time.After(10 * time.Second):
		log.Warn("log copy did not finish within 10s of exit")
	case <-r.ctx.Done():
		return
	}
	r.collect(j)
}

// collect records the result of an exited container, then removes the container.
func (r *Runtime) collect(j *job) {
	rec := j.snapshot()
	ins, err := r.cli.ContainerInspect(r.ctx, rec.ContainerID)
	if err != nil {
		if r.ctx.Err() != nil {
			return
		}
		gone := errdefs.IsNotFound(err)
		if gone {
			err = errRemovedOutside
		}
		r.finishWithError(j, fmt.Errorf("job %s: inspect exited container: %w", rec.Spec.JobID, err))
		if gone {
			r.release(j)
		}
		return
	}
	started, _ := time.Parse(time.RFC3339Nano, ins.State.StartedAt)
	finished, _ := time.Parse(time.RFC3339Nano, ins.State.FinishedAt)
	if finished.Before(started) {
		// A process that exits within a millisecond can be stamped finished before the
		// engine stamps it started.
		finished = started
	}
	wall := finished.Sub(started)
	res := runtime.Result{
		JobID:      rec.Spec.JobID,
		ExitCode:   ins.State.ExitCode,
		OOMKilled:  ins.State.OOMKilled,
		TimedOut:   rec.TimedOut,
		Cancelled:  rec.Cancelled,
		StartedAt:  started,
		FinishedAt: finished,
		WallTime:   wall,
		GPUSeconds: wall.Seconds() * float64(len(rec.Spec.GPUs)),
		OutputDir:  rec.Spec.OutputDir,
		LogFile:    rec.LogFile,
		OutputFull: rec.OutputFull,
	}
	if rec.OutputFull {
		res.Error = fmt.Sprintf("job %s: output passed its cap of %d bytes: the job was stopped", rec.Spec.JobID, rec.Spec.Resources.OutputBytes)
	}
	removing := ins.State.Status == "removing"
	if removing {
		// Killed by the removal (exit 137), and its files are going with it.
		res.Error = fmt.Sprintf("job %s: exit %d: %v", rec.Spec.JobID, ins.State.ExitCode, errRemovedOutside)
	} else if err := r.publishOutput(r.ctx, rec); err != nil {
		if r.ctx.Err() != nil {
			return
		}
		if res.Error == "" {
			res.Error = fmt.Sprintf("job %s: %v", rec.Spec.JobID, err)
		}
	}
	// The raw output goes first: once the result is final, the caller may look at
	// the host and must find only the published copy.
	r.release(j)
	r.finish(j, res)
	if !removing {
		r.removeContainer(rec.ContainerID)
	}
	r.leaveCluster(rec.Spec.Cluster)
}

// errRemovedOutside is why a job ends whose container the node did not remove: the
// engine removed it on someone else's request (docker rm -f, a cleanup by this node's
// instance label), killing the job.
var errRemovedOutside = errors.New("its container was removed from outside the node while the job ran (docker rm -f on it, or on every container with this node's instance label); the job was killed and its output is lost")

// release removes a finished job's raw output, once its container is gone.
func (r *Runtime) release(j *job) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.rec.OutputRaw == "" {
		return
	}
	if err := r.releaseOutput(j.rec); err != nil {
		r.log.Warn("raw output not removed", "job_id", j.rec.Spec.JobID, "err", err)
		return
	}
	j.rec.OutputRaw = ""
	if err := r.records.save(j.rec); err != nil {
		r.log.Warn("record not saved", "job_id", j.rec.Spec.JobID, "err", err)
	}
}

func (r *Runtime) finishWithError(j *job, err error) {
	rec := j.snapshot()
	r.finish(j, runtime.Result{
		JobID:     rec.Spec.JobID,
		Cancelled: rec.Cancelled,
		OutputDir: rec.Spec.OutputDir,
		LogFile:   rec.LogFile,
		Error:     err.Error(),
	})
}

func (r *Runtime) finish(j *job, res runtime.Result) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.rec.State == stateFinished {
		return
	}
	j.rec.State = stateFinished
	j.rec.Result = &res
	if err := r.records.save(j.rec); err != nil {
		r.log.Error("result not saved", "job_id", res.JobID, "err", err)
	}
	r.log.Info("job finished", "job_id", res.JobID, "exit_code", res.ExitCode, "oom_killed", res.OOMKilled,
		"timed_out", res.TimedOut, "cancelled", res.Cancelled, "wall_time", res.WallTime, "err", res.Error)
	close(j.done)
}

func (r *Runtime) removeContainer(id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
	defer cancel()
	// RemoveVolumes: an anonymous volume would outlive the job (image VOLUMEs are
	// covered by tmpfs, this is the second line).
	if err := r.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errdefs.IsNotFound(err) {
		r.log.Warn("remove container", "container_id", shortID(id), "err", err)
	}
}

// killContainer stops a job at once: one that filled its output gets no grace period.
func (r *Runtime) killContainer(id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
	defer cancel()
	if err := r.cli.ContainerKill(ctx, id, "SIGKILL"); err != nil && !errdefs.IsNotFound(err) {
		r.log.Warn("kill container", "container_id", shortID(id), "err", err)
	}
}

func (r *Runtime) stopContainer(id string, grace time.Duration) {
	secs := int(math.Ceil(r.stopGrace(grace).Seconds()))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), r.stopGrace(grace)+30*time.Second)
	defer cancel()
	if err := r.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil && !errdefs.IsNotFound(err) {
		r.log.Warn("stop container", "container_id", shortID(id), "err", err)
	}
}

// stopGrace is a job's grace period between SIGTERM and SIGKILL: its own, else the
// configured one (records written before jobs had their own carry none).
func (r *Runtime) stopGrace(spec time.Duration) time.Duration {
	if spec > 0 {
		return spec
	}
	return r.cfg.StopGrace
}

// Wait implements runtime.Runtime.
func (r *Runtime) Wait(ctx context.Context, jobID string) (runtime.Result, error) {
	r.mu.Lock()
	j, ok := r.jobs[jobID]
	r.mu.Unlock()
	if !ok {
		rec, err := r.records.load(jobID)
		if err != nil {
			return runtime.Result{}, err
		}
		if rec.State == stateFinished && rec.Result != nil {
			return *rec.Result, nil
		}
		return runtime.Result{}, fmt.Errorf("job %s: not watched by this process; call Recover first: %w", jobID, runtime.ErrUnknownJob)
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		return runtime.Result{}, ctx.Err()
	}
	rec := j.snapshot()
	return *rec.Result, nil
}

// Stop implements runtime.Runtime. A job still preparing is abandoned before its
// container exists.
func (r *Runtime) Stop(ctx context.Context, jobID string) error {
	r.mu.Lock()
	j, ok := r.jobs[jobID]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("job %s: %w", jobID, runtime.ErrUnknownJob)
	}
	j.mu.Lock()
	if j.rec.State == stateFinished {
		j.mu.Unlock()
		return nil
	}
	j.rec.Cancelled = true
	err := r.records.save(j.rec)
	cid := j.rec.ContainerID
	j.mu.Unlock()
	if err != nil {
		return err
	}
	grace := r.stopGrace(j.rec.Spec.StopGrace)
	if cid == "" {
		j.cancel()
		return nil
	}
	secs := int(math.Ceil(grace.Seconds()))
	if err := r.cli.ContainerStop(ctx, cid, container.StopOptions{Timeout: &secs}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("job %s: stop: %w", jobID, err)
	}
	return nil
}

// Recover implements runtime.Runtime.
func (r *Runtime) Recover(ctx context.Context) ([]runtime.Handle, error) {
	// The node's Run and the job machine both recover at start: one at a time, so a
	// job is watched (and its result collected) once.
	r.recoverMu.Lock()
	defer r.recoverMu.Unlock()
	ids, err := r.records.list()
	if err != nil {
		return nil, err
	}
	labelled, err := r.labelledContainers(ctx)
	if err != nil {
		return nil, err
	}
	var handles []runtime.Handle
	for _, id := range ids {
		r.mu.Lock()
		w, watched := r.jobs[id]
		r.mu.Unlock()
		if watched {
			// Watched since an earlier call, or started by this process: its
			// container is accounted for (one being created has no ID yet).
			cid := w.snapshot().ContainerID
			for c, jid := range labelled {
				if c == cid || (cid == "" && jid == id) {
					delete(labelled, c)
				}
			}
			continue
		}
		rec, err := r.records.load(id)
		if err != nil {
			r.log.Error("unreadable job record; skipped", "job_id", id, "err", err)
			continue
		}
		if rec.State == stateFinished {
			if _, ok := labelled[rec.ContainerID]; ok && rec.ContainerID != "" {
				r.removeContainer(rec.ContainerID)
				delete(labelled, rec.ContainerID)
			}
			continue
		}
		j := &job{rec: rec, cancel: func() {}, done: make(chan struct{})}
		r.mu.Lock()
		r.jobs[id] = j
		r.mu.Unlock()
		h, err := r.reattach(ctx, j)
		if cid := j.snapshot().ContainerID; cid != "" {
			delete(labelled, cid)
		}
		if err != nil {
			r.log.Error("re-attach failed", "job_id", id, "err", err)
			r.finishWithError(j, err)
			continue
		}
		if h != nil {
			handles = append(handles, *h)
		}
	}
	for cid, id := range labelled {
		r.log.Warn("container has this node's label but no job record; left alone", "job_id", id, "container_id", shortID(cid))
	}
	return handles, nil
}

func (r *Runtime) reattach(ctx context.Context, j *job) (*runtime.Handle, error) {
	rec := j.snapshot()
	id := rec.Spec.JobID
	cid := rec.ContainerID
	if cid == "" {
		// The node stopped while preparing; the container may have been created just
		// before the record said so, under the name the record chose. A record without
		// a name never got as far as creating one.
		if rec.ContainerName == "" {
			r.finishWithError(j, fmt.Errorf("job %s: %w", id, runtime.ErrInterrupted))
			return nil, nil
		}
		ins, err := r.cli.ContainerInspect(ctx, rec.ContainerName)
		if errdefs.IsNotFound(err) {
			r.finishWithError(j, fmt.Errorf("job %s: %w", id, runtime.ErrInterrupted))
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("job %s: inspect: %w", id, err)
		}
		if ins.Config == nil || ins.Config.Labels[LabelJob] != id || ins.Config.Labels[LabelInstance] != r.cfg.Instance {
			return nil, fmt.Errorf("job %s: container %s is not this job's", id, rec.ContainerName)
		}
		cid = ins.ID
		j.mu.Lock()
		j.rec.ContainerID = cid
		j.rec.State = stateCreated
		err = r.records.save(j.rec)
		j.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	ins, err := r.cli.ContainerInspect(ctx, cid)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("job %s: container %s vanished while the node was down", id, shortID(cid))
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: inspect: %w", id, err)
	}
	r.log.Info("re-attaching", "job_id", id, "container_id", shortID(cid), "status", ins.State.Status)
	if ins.State.Status == "created" {
		// Created but never started: starting it now is its first and only start.
		h, err := r.startCreated(ctx, j)
		if err != nil {
			return nil, err
		}
		return &h, nil
	}
	h, err := r.watch(ctx, j)
	if err != nil {
		return nil, err
	}
	if !ins.State.Running {
		return nil, nil
	}
	return &h, nil
}

// labelledContainers maps the IDs of this instance's job containers to their job IDs.
func (r *Runtime) labelledContainers(ctx context.Context) (map[string]string, error) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelInstance+"="+r.cfg.Instance)),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := map[string]string{}
	for _, c := range list {
		if id := c.Labels[LabelJob]; id != "" {
			out[c.ID] = id
		}
	}
	return out, nil
}

// containerConfig is where the hardening lives: everything a job is not given.
func (r *Runtime) containerConfig(spec runtime.Spec, imageID string, mounts []mount.Mount, devs []container.DeviceRequest) (*container.Config, *container.HostConfig) {
	grace := int(math.Ceil(r.stopGrace(spec.StopGrace).Seconds()))
	cfg := &container.Config{
		Image:       imageID,
		Entrypoint:  spec.Command[:1],
		Cmd:         spec.Command[1:],
		Env:         gpuEnv(spec.Env, devs),
		WorkingDir:  spec.WorkDir,
		User:        spec.User,
		Labels:      map[string]string{LabelInstance: r.cfg.Instance, LabelJob: spec.JobID},
		StopSignal:  "SIGTERM",
		StopTimeout: &grace,
		// An image's HEALTHCHECK makes the engine exec into the container on its
		// schedule (every millisecond, if it says so): never.
		Healthcheck: &container.HealthConfig{Test: []string{"NONE"}},
	}
	res := spec.Resources
	pids := res.PIDs
	hc := &container.HostConfig{
		NetworkMode:    container.NetworkMode(spec.Network),
		Privileged:     false,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		ReadonlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": fmt.Sprintf("rw,nosuid,nodev,size=%d", max(res.TmpBytes, 1<<20))},
		IpcMode:        container.IPCModePrivate,
		ShmSize:        res.ShmBytes,
		CgroupnsMode:   container.CgroupnsModePrivate,
		Mounts:         mounts,
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		// The engine's own copy must still hold the log's beginning when the copier
		// attaches, which on a busy host can be after the job printed a lot: with files
		// no smaller than engineLogMin it is not rotated away first.
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": strconv.FormatInt(max(r.cfg.LogMaxBytes, engineLogMin), 10), "max-file": "2",
		}},
		Resources: container.Resources{
			PidsLimit:      &pids,
			DeviceRequests: devs,
			Ulimits: []*container.Ulimit{
				{Name: "nofile", Soft: r.cfg.NoFile, Hard: r.cfg.NoFile},
				{Name: "nproc", Soft: r.cfg.NProc, Hard: r.cfg.NProc},
				{Name: "core", Soft: 0, Hard: 0},
			},
		},
	}
	if len(devs) == 0 {
		hc.Runtime = runcRuntime
	}
	if spec.Network == runtime.NetworkNone {
		cfg.NetworkDisabled = true
	}
	if res.MemoryBytes > 0 {
		hc.Resources.Memory = res.MemoryBytes
		hc.Resources.MemorySwap = res.MemoryBytes // no swap on top of the limit
	}
	if res.CPUs > 0 {
		hc.Resources.NanoCPUs = int64(res.CPUs * 1e9)
	}
	return cfg, hc
}

// coverVolumes mounts a size-capped tmpfs on each of the image's VOLUME paths that no
// mount of the job covers, so the engine creates no anonymous volume: one would be
// writable, unbounded, and outlive the container.
func coverVolumes(hc *container.HostConfig, volumes []string, size int64) {
	covered := map[string]bool{}
	for _, m := range hc.Mounts {
		covered[path.Clean(m.Target)] = true
	}
	for t := range hc.Tmpfs {
		covered[path.Clean(t)] = true
	}
	for _, v := range volumes {
		if v = path.Clean(v); !covered[v] {
			hc.Tmpfs[v] = fmt.Sprintf("rw,nosuid,nodev,size=%d", max(size, 1<<20))
		}
	}
}

// engineLogMin is the smallest log file the engine keeps per container (it keeps two).
const engineLogMin = 16 << 20

// copyLogs writes the container's whole log (stdout and stderr) to path, capped. It
// starts from the beginning each time, so a re-attached job's log file is rewritten
// from the engine's copy rather than appended to twice.
func (r *Runtime) copyLogs(ctx context.Context, containerID, path string) error {
	rc, err := r.cli.ContainerLogs(ctx, containerID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	w := &cappedWriter{w: f, max: r.cfg.LogMaxBytes}
	_, err = stdcopy.StdCopy(w, w, rc)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func numericUser(u string) (uid, gid int, ok bool) {
	if u == "" {
		return 0, 0, false
	}
	us, gs, hasG := strings.Cut(u, ":")
	uid, err := strconv.Atoi(us)
	if err != nil {
		return 0, 0, false
	}
	gid = uid
	if hasG {
		if gid, err = strconv.Atoi(gs); err != nil {
			return 0, 0, false
		}
	}
	return uid, gid, true
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
