package docker

import (
	"context"
	"fmt"
	"io"

	"github.com/docker/docker/api/types/build"
)

// BuildImage builds an image from a build context (a tar stream with its Dockerfile)
// with the engine's classic builder, which works without BuildKit, and tags it. Its base
// comes from the engine's cache or registry as the Dockerfile names it. It returns the
// image ID.
func (r *Runtime) BuildImage(ctx context.Context, tag string, buildContext io.Reader, args map[string]string) (string, error) {
	buildArgs := map[string]*string{}
	for k, v := range args {
		buildArgs[k] = &v
	}
	resp, err := r.cli.ImageBuild(ctx, buildContext, build.ImageBuildOptions{
		Tags: []string{tag}, BuildArgs: buildArgs, Remove: true, ForceRemove: true,
		Version: build.BuilderV1, Labels: map[string]string{LabelInstance: r.cfg.Instance},
	})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if err := ParsePullStream(resp.Body, nil); err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	ins, err := r.cli.ImageInspect(ctx, tag)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	return ins.ID, nil
}
