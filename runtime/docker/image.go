package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/errdefs"

	"github.com/gpunode/gpunode/runtime"
)

// ImageRef is a parsed image reference.
type ImageRef struct {
	// Name is the fully qualified repository (docker.io/library/x), empty for a local ID.
	Name string `json:"name,omitempty"`
	// Domain is the registry host.
	Domain string `json:"domain,omitempty"`
	// Digest is the manifest digest the reference pins, if any.
	Digest string `json:"digest,omitempty"`
	// Tag is the tag, when the reference has no digest.
	Tag string `json:"tag,omitempty"`
	// LocalID is set for `sha256:<id>` references to an image already in the engine.
	LocalID string `json:"local_id,omitempty"`
}

// String is the form the engine is given.
func (r ImageRef) String() string {
	switch {
	case r.LocalID != "":
		return r.LocalID
	case r.Digest != "":
		return r.Name + "@" + r.Digest
	default:
		return r.Name + ":" + r.Tag
	}
}

var localIDRe = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// ParseImageRef parses an image reference from a job manifest or the CLI. A reference
// without a digest is refused with runtime.ErrTagNotAllowed unless allowTag.
func ParseImageRef(s string, allowTag bool) (ImageRef, error) {
	if len(s) > 1024 {
		return ImageRef{}, fmt.Errorf("image reference: longer than 1024 bytes")
	}
	if localIDRe.MatchString(s) {
		return ImageRef{LocalID: s}, nil
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return ImageRef{}, fmt.Errorf("image reference %q: %w", s, err)
	}
	ref := ImageRef{Name: named.Name(), Domain: reference.Domain(named)}
	if c, ok := named.(reference.Canonical); ok {
		ref.Digest = c.Digest().String()
		return ref, nil
	}
	if !allowTag {
		return ImageRef{}, fmt.Errorf("image reference %q: %w", s, runtime.ErrTagNotAllowed)
	}
	ref.Tag = "latest"
	if t, ok := named.(reference.Tagged); ok {
		ref.Tag = t.Tag()
	}
	return ref, nil
}

// Pull pulls ref with the node's registry credentials and, for a digest reference,
// verifies that the engine now holds the image under exactly that digest.
func (r *Runtime) Pull(ctx context.Context, ref string, allowTag bool, progress func(runtime.PullProgress)) (runtime.Image, error) {
	ir, err := ParseImageRef(ref, allowTag)
	if err != nil {
		return runtime.Image{}, err
	}
	if ir.LocalID != "" {
		return runtime.Image{}, fmt.Errorf("image %s: a local image ID cannot be pulled; use repo@sha256:…", ref)
	}
	id, err := r.pull(ctx, ir, progress)
	if err != nil {
		return runtime.Image{}, err
	}
	imgs, err := r.Images(ctx)
	if err != nil {
		return runtime.Image{}, err
	}
	for _, im := range imgs {
		if im.ID == id {
			return im, nil
		}
	}
	return runtime.Image{ID: id, Refs: []string{ir.String()}}, nil
}

func (r *Runtime) pull(ctx context.Context, ir ImageRef, progress func(runtime.PullProgress)) (string, error) {
	auth, err := r.registryAuth(ir.Domain)
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ir, err)
	}
	r.log.Info("pulling image", "image", ir.String())
	rc, err := r.cli.ImagePull(ctx, ir.String(), image.PullOptions{RegistryAuth: auth})
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ir, mapPullError(err))
	}
	defer rc.Close()
	last := runtime.PullProgress{Image: ir.String()}
	lastLog := time.Now()
	err = ParsePullStream(rc, func(p runtime.PullProgress) {
		p.Image = ir.String()
		last = p
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			r.log.Info("pull progress", "image", p.Image, "layers", p.Layers, "layers_done", p.LayersDone, "bytes", p.BytesDone, "bytes_total", p.BytesTotal)
		}
		if progress != nil {
			progress(p)
		}
	})
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ir, mapPullError(err))
	}
	r.log.Info("pulled image", "image", ir.String(), "layers", last.Layers, "bytes", last.BytesTotal)
	ins, err := r.cli.ImageInspect(ctx, ir.String())
	if err != nil {
		return "", fmt.Errorf("pull %s: inspect: %w", ir, err)
	}
	if ir.Digest != "" {
		if err := verifyDigest(ir, ins.RepoDigests); err != nil {
			return "", err
		}
	}
	r.images.pulled(ins.ID, ir.String())
	if r.cfg.ImageCacheBytes > 0 {
		rep, err := r.prune(ctx, r.cfg.ImageCacheBytes, ins.ID)
		if err != nil {
			r.log.Warn("image cache prune failed", "err", err)
		} else if len(rep.Removed) > 0 {
			r.log.Info("image cache pruned", "removed", len(rep.Removed), "freed_bytes", rep.FreedBytes, "total_bytes", rep.TotalBytes)
		}
	}
	return ins.ID, nil
}

// verifyDigest checks that repoDigests (name@digest as the engine records them)
// include ir's name and digest.
func verifyDigest(ir ImageRef, repoDigests []string) error {
	for _, rd := range repoDigests {
		n, err := reference.ParseNormalizedNamed(rd)
		if err != nil {
			continue
		}
		if c, ok := n.(reference.Canonical); ok && n.Name() == ir.Name && c.Digest().String() == ir.Digest {
			return nil
		}
	}
	return fmt.Errorf("image %s: %w: the engine holds it as %v", ir, runtime.ErrDigestMismatch, repoDigests)
}

// ensureImage returns the ID of the image for ref, pulling it if absent.
func (r *Runtime) ensureImage(ctx context.Context, ref string, allowTag bool, progress func(runtime.PullProgress)) (string, error) {
	ir, err := ParseImageRef(ref, allowTag)
	if err != nil {
		return "", err
	}
	ins, err := r.cli.ImageInspect(ctx, ir.String())
	switch {
	case err == nil:
		if ir.Digest != "" {
			if err := verifyDigest(ir, ins.RepoDigests); err != nil {
				return "", err
			}
		}
		return ins.ID, nil
	case !errdefs.IsNotFound(err):
		return "", fmt.Errorf("image %s: %w", ir, err)
	case ir.LocalID != "":
		return "", fmt.Errorf("image %s: %w (local image IDs are not pulled)", ir, runtime.ErrImageNotFound)
	}
	return r.pull(ctx, ir, progress)
}

// pullMessage is one line of the engine's pull stream.
type pullMessage struct {
	Status         string `json:"status"`
	ID             string `json:"id"`
	ProgressDetail struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
	Error       string `json:"error"`
	ErrorDetail struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

const maxLayers = 4096

// ParsePullStream reads the engine's JSON pull stream, calling fn with the running
// totals after each layer event, and returns the error the stream ends with, if any.
func ParsePullStream(rd io.Reader, fn func(runtime.PullProgress)) error {
	type layer struct {
		cur, total int64
		done       bool
	}
	layers := map[string]*layer{}
	var order []string
	dec := json.NewDecoder(rd)
	for {
		var m pullMessage
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("pull stream: %w", err)
		}
		if m.Error != "" || m.ErrorDetail.Message != "" {
			msg := m.ErrorDetail.Message
			if msg == "" {
				msg = m.Error
			}
			return errors.New(msg)
		}
		if m.ID == "" || !isLayerStatus(m.Status) {
			continue
		}
		l, ok := layers[m.ID]
		if !ok {
			if len(layers) >= maxLayers {
				return fmt.Errorf("pull stream: more than %d layers", maxLayers)
			}
			l = &layer{}
			layers[m.ID] = l
			order = append(order, m.ID)
		}
		switch m.Status {
		case "Downloading":
			if m.ProgressDetail.Total > 0 {
				l.total = m.ProgressDetail.Total
			}
			if m.ProgressDetail.Current >= 0 {
				l.cur = m.ProgressDetail.Current
			}
		case "Download complete", "Verifying Checksum":
			if l.total > 0 {
				l.cur = l.total
			}
		case "Pull complete", "Already exists":
			l.done = true
			if l.total > 0 {
				l.cur = l.total
			}
		}
		p := runtime.PullProgress{Status: m.Status, Layers: len(layers)}
		for _, id := range order {
			l := layers[id]
			p.BytesDone += l.cur
			p.BytesTotal += l.total
			if l.done {
				p.LayersDone++
			}
		}
		if fn != nil {
			fn(p)
		}
	}
}

func isLayerStatus(s string) bool {
	switch s {
	case "Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete",
		"Extracting", "Pull complete", "Already exists", "Retrying":
		return true
	}
	return strings.HasPrefix(s, "Retrying")
}

// mapPullError turns the engine's pull failures, which arrive as text, into sentinels.
func mapPullError(err error) error {
	if err == nil {
		return nil
	}
	s := strings.ToLower(err.Error())
	switch {
	case errdefs.IsUnauthorized(err), errdefs.IsForbidden(err),
		strings.Contains(s, "unauthorized"), strings.Contains(s, "authentication required"),
		strings.Contains(s, "no basic auth credentials"), strings.Contains(s, "denied"):
		return fmt.Errorf("%w: %v", runtime.ErrUnauthorized, err)
	case strings.Contains(s, "verification failed"), strings.Contains(s, "digest mismatch"),
		strings.Contains(s, "digest did not match"), strings.Contains(s, "unexpected digest"):
		return fmt.Errorf("%w: %v", runtime.ErrDigestMismatch, err)
	case errdefs.IsNotFound(err), strings.Contains(s, "manifest unknown"), strings.Contains(s, "not found"):
		return fmt.Errorf("%w: %v", runtime.ErrImageNotFound, err)
	}
	return err
}

// imageCache remembers which images this node pulled and when each was last used, so
// that pruning removes only the node's own images, least recently used first.
type imageCache struct {
	mu   sync.Mutex
	path string
}

type cacheEntry struct {
	Refs     []string  `json:"refs"`
	PulledAt time.Time `json:"pulled_at"`
	LastUsed time.Time `json:"last_used"`
}

type cacheFile struct {
	Version int                    `json:"version"`
	Images  map[string]*cacheEntry `json:"images"`
}

func (c *imageCache) load() cacheFile {
	cf := cacheFile{Version: 1, Images: map[string]*cacheEntry{}}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return cf
	}
	if json.Unmarshal(b, &cf) != nil || cf.Images == nil {
		cf.Images = map[string]*cacheEntry{}
	}
	return cf
}

func (c *imageCache) save(cf cacheFile) {
	b, _ := json.MarshalIndent(cf, "", "  ")
	_ = writeFileAtomic(c.path, b)
}

func (c *imageCache) update(fn func(cf *cacheFile)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cf := c.load()
	fn(&cf)
	c.save(cf)
}

func (c *imageCache) pulled(id, ref string) {
	now := time.Now().UTC()
	c.update(func(cf *cacheFile) {
		e := cf.Images[id]
		if e == nil {
			e = &cacheEntry{PulledAt: now}
			cf.Images[id] = e
		}
		e.LastUsed = now
		if !contains(e.Refs, ref) {
			e.Refs = append(e.Refs, ref)
		}
	})
}

// touch marks an image used, if it is one of the node's.
func (c *imageCache) touch(id, ref string) {
	c.update(func(cf *cacheFile) {
		if e := cf.Images[id]; e != nil {
			e.LastUsed = time.Now().UTC()
		}
	})
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Images lists the images this node pulled, least recently used first; images removed
// behind the node's back are forgotten.
func (r *Runtime) Images(ctx context.Context) ([]runtime.Image, error) {
	var out []runtime.Image
	var gone []string
	r.images.mu.Lock()
	cf := r.images.load()
	r.images.mu.Unlock()
	for id, e := range cf.Images {
		ins, err := r.cli.ImageInspect(ctx, id)
		if errdefs.IsNotFound(err) {
			gone = append(gone, id)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", id, err)
		}
		out = append(out, runtime.Image{ID: id, Refs: e.Refs, RepoDigests: ins.RepoDigests, SizeBytes: ins.Size, PulledAt: e.PulledAt, LastUsed: e.LastUsed})
	}
	if len(gone) > 0 {
		r.images.update(func(cf *cacheFile) {
			for _, id := range gone {
				delete(cf.Images, id)
			}
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.Before(out[j].LastUsed) })
	return out, nil
}

// PruneImages removes the node's least recently used images until they fit under
// Config.ImageCacheBytes. Images of jobs that are not finished are kept.
func (r *Runtime) PruneImages(ctx context.Context) (runtime.PruneReport, error) {
	return r.PruneImagesTo(ctx, r.cfg.ImageCacheBytes)
}

// PruneImagesTo is PruneImages with an explicit cap; 0 removes every unused image.
func (r *Runtime) PruneImagesTo(ctx context.Context, capBytes int64) (runtime.PruneReport, error) {
	return r.prune(ctx, capBytes, "")
}

// prune removes least recently used images, never keep nor those of unfinished jobs.
func (r *Runtime) prune(ctx context.Context, capBytes int64, keep string) (runtime.PruneReport, error) {
	imgs, err := r.Images(ctx)
	if err != nil {
		return runtime.PruneReport{}, err
	}
	inUse := map[string]bool{keep: true}
	r.mu.Lock()
	for _, j := range r.jobs {
		rec := j.snapshot()
		if rec.State != stateFinished {
			inUse[rec.ImageID] = true
		}
	}
	r.mu.Unlock()
	rep := runtime.PruneReport{CapBytes: capBytes}
	for _, im := range imgs {
		rep.TotalBytes += im.SizeBytes
	}
	for _, im := range imgs {
		if rep.TotalBytes <= capBytes {
			break
		}
		if inUse[im.ID] {
			continue
		}
		if _, err := r.cli.ImageRemove(ctx, im.ID, image.RemoveOptions{PruneChildren: true}); err != nil {
			if errdefs.IsConflict(err) {
				r.log.Info("image in use; kept", "image_id", shortID(im.ID), "err", err)
				continue
			}
			if !errdefs.IsNotFound(err) {
				return rep, fmt.Errorf("remove image %s: %w", shortID(im.ID), err)
			}
		}
		r.images.update(func(cf *cacheFile) { delete(cf.Images, im.ID) })
		rep.Removed = append(rep.Removed, im)
		rep.FreedBytes += im.SizeBytes
		rep.TotalBytes -= im.SizeBytes
	}
	return rep, nil
}
