package docker

import (
	"context"
	"path/filepath"
	"time"

	"github.com/gpunode/gpunode/runtime"
)

// BypassPreflight lets a test reach the engine's own error for a GPU request.
func (r *Runtime) BypassPreflight() { r.bypassPreflight = true }

// CrashWhilePreparing leaves what a node killed while preparing a job leaves: a
// "preparing" record and nothing else.
func (r *Runtime) CrashWhilePreparing(spec runtime.Spec) error {
	spec = r.withDefaults(spec)
	return r.records.create(&record{Version: recordVersion, Spec: spec, State: statePreparing,
		LogFile: filepath.Join(r.cfg.LogDir, spec.JobID+".log"), CreatedAt: time.Now(),
		ContainerName: r.newContainerName(spec.JobID)})
}

// CrashAfterCreate leaves what a node killed right after creating a job's container
// leaves: a "preparing" record and a created, never started, container.
func (r *Runtime) CrashAfterCreate(ctx context.Context, spec runtime.Spec, imageID string) error {
	if err := r.CrashWhilePreparing(spec); err != nil {
		return err
	}
	spec = r.withDefaults(spec)
	mounts, err := r.mounts(spec)
	if err != nil {
		return err
	}
	c, hc := r.containerConfig(spec, imageID, mounts, nil)
	rec, err := r.records.load(spec.JobID)
	if err != nil {
		return err
	}
	if err := r.prepareOutput(ctx, rec); err != nil {
		return err
	}
	if err := r.records.save(rec); err != nil {
		return err
	}
	_, err = r.cli.ContainerCreate(ctx, c, hc, nil, nil, rec.ContainerName)
	return err
}
