package docker

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/errdefs"

	"github.com/gpunode/gpunode/runtime"
)

// LabelCheck marks the short-lived container of a dry run; it carries the job's ID
// but not LabelJob, so a restart never mistakes it for the job's own container.
const LabelCheck = "gpunode.check"

// Check is the dry run of a job before the node takes it: it pulls the image by digest
// (refusing one whose layers already exceed maxImageBytes before they are all
// downloaded), inspects its size and platform, creates the job's container with
// exactly the hardened configuration Start would use, and removes it at once. Nothing
// is left running; the pulled image stays in the node's image cache for Start.
func (r *Runtime) Check(ctx context.Context, spec runtime.Spec, maxImageBytes int64) (runtime.Checked, error) {
	if errs := spec.Validate(); len(errs) > 0 {
		return runtime.Checked{}, fmt.Errorf("job %s: spec: %w", spec.JobID, errors.Join(errs...))
	}
	if err := r.overCaps(spec); err != nil {
		return runtime.Checked{}, err
	}
	spec = r.withDefaults(spec)
	id := spec.JobID
	mounts, err := r.mounts(spec)
	if err != nil {
		return runtime.Checked{}, fmt.Errorf("job %s: %w", id, err)
	}
	mounts = r.checkMounts(spec, mounts)
	devs, err := deviceRequests(spec.GPUs)
	if err != nil {
		return runtime.Checked{}, fmt.Errorf("job %s: %w", id, err)
	}
	if len(devs) > 0 {
		if err := r.PreflightGPU(ctx, spec.GPUs); err != nil {
			return runtime.Checked{}, fmt.Errorf("job %s: %w", id, err)
		}
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var tooLarge int64
	imageID, err := r.ensureImage(pctx, spec.Image, spec.AllowTag, func(p runtime.PullProgress) {
		// Compressed layers are never larger than what they unpack to.
		if maxImageBytes > 0 && p.BytesTotal > maxImageBytes && tooLarge == 0 {
			tooLarge = p.BytesTotal
			cancel()
		}
	})
	if tooLarge > 0 {
		return runtime.Checked{}, fmt.Errorf("job %s: image %s: its layers are %d bytes, cap %d: %w", id, spec.Image, tooLarge, maxImageBytes, runtime.ErrImageTooLarge)
	}
	if err != nil {
		return runtime.Checked{}, fmt.Errorf("job %s: %w", id, err)
	}
	ins, err := r.cli.ImageInspect(ctx, imageID)
	if err != nil {
		return runtime.Checked{}, fmt.Errorf("job %s: inspect image %s: %w", id, spec.Image, err)
	}
	out := runtime.Checked{ImageID: imageID, ImageBytes: ins.Size, Platform: ins.Os + "/" + ins.Architecture}
	if maxImageBytes > 0 && ins.Size > maxImageBytes {
		r.removeImage(imageID)
		return out, fmt.Errorf("job %s: image %s is %d bytes, cap %d: %w", id, spec.Image, ins.Size, maxImageBytes, runtime.ErrImageTooLarge)
	}
	if ins.Os != "linux" || ins.Architecture != goruntime.GOARCH {
		return out, fmt.Errorf("job %s: image %s is for %s, this node runs linux/%s: %w", id, spec.Image, out.Platform, goruntime.GOARCH, runtime.ErrPlatform)
	}
	if ins.Config != nil {
		if err := refuseImageEnv(ins.Config.Env); err != nil {
			return out, fmt.Errorf("job %s: image %s: %w", id, spec.Image, err)
		}
	}

	cfg, hc := r.containerConfig(spec, imageID, mounts, devs)
	cfg.Labels = map[string]string{LabelInstance: r.cfg.Instance, LabelCheck: id}
	// A check the node was killed in the middle of may have left its container.
	r.removeChecks(id)
	resp, err := r.cli.ContainerCreate(ctx, cfg, hc, nil, nil, r.newContainerName(id)+"-check")
	if err != nil {
		err = mapEngineError(err)
		if errors.Is(err, runtime.ErrNoGPURuntime) || ctx.Err() != nil {
			return out, fmt.Errorf("job %s: create container: %w", id, err)
		}
		return out, fmt.Errorf("job %s: %w: %v", id, runtime.ErrContainerRefused, err)
	}
	r.removeContainer(resp.ID)
	return out, nil
}

// removeChecks removes the dry-run containers of job id this instance left behind.
func (r *Runtime) removeChecks(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelInstance+"="+r.cfg.Instance), filters.Arg("label", LabelCheck+"="+id))})
	if err != nil {
		r.log.Warn("list leftover check containers", "job_id", id, "err", err)
		return
	}
	for _, c := range list {
		if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errdefs.IsNotFound(err) {
			r.log.Warn("remove leftover check container", "job_id", id, "container_id", shortID(c.ID), "err", err)
		}
	}
}

// removeImage removes an image refused by a check, so it takes no disk.
func (r *Runtime) removeImage(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.cli.ImageRemove(ctx, id, image.RemoveOptions{PruneChildren: true}); err != nil {
		r.log.Warn("remove refused image", "image", id, "err", err)
	}
}
