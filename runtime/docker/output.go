package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"syscall"

	"github.com/docker/docker/api/types/mount"
	"golang.org/x/sys/unix"

	"github.com/gpunode/gpunode/internal/treetar"
	"github.com/gpunode/gpunode/runtime"
)

// Output quota modes (Config.OutputQuota).
const (
	// QuotaAuto picks QuotaLoop when the node can mount (root, mkfs.ext4 present),
	// QuotaWatch otherwise.
	QuotaAuto = "auto"
	// QuotaLoop gives each job a loop-mounted ext4 image of its output cap: the
	// kernel refuses writes past it, and the job is stopped once it is full.
	QuotaLoop = "loop"
	// QuotaWatch measures the output folder every second and stops the job past
	// its cap; a fast writer can overshoot by what it writes in that second.
	QuotaWatch = "watch"
)

// quotaMode resolves Config.OutputQuota against what this process can do, with the
// reason when it cannot give a hard limit.
func (r *Runtime) quotaMode() (mode, note string) {
	want := r.cfg.OutputQuota
	if want == "" {
		want = QuotaAuto
	}
	if want == QuotaWatch {
		return QuotaWatch, "runtime.output_quota is \"watch\""
	}
	var why string
	if os.Geteuid() != 0 {
		why = "the node is not root, so it cannot loop-mount a size-limited filesystem per job"
	} else if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		why = "mkfs.ext4 is missing (install e2fsprogs)"
	}
	if why == "" {
		return QuotaLoop, ""
	}
	return QuotaWatch, why + "; job output is measured every second and the job stopped past its cap, which a fast writer can overshoot by a second's worth of writes"
}

// rawOutput is the folder the job's container writes, in the runtime's state dir
// (0700): never the published output folder, which the node fills from it after the
// job, normalised.
func (r *Runtime) rawOutput(jobID string) string {
	return filepath.Join(r.cfg.StateDir, "out", jobID)
}

// prepareOutput makes the job's raw output folder: a loop-mounted ext4 filesystem of
// the output cap (QuotaLoop), or a plain folder (QuotaWatch). It is writable by the
// job's user: owned by it when the node may chown and the user is numeric, else 0777
// (reachable only through the 0700 state dir, so not by other host users).
func (r *Runtime) prepareOutput(ctx context.Context, rec *record) error {
	spec := rec.Spec
	parent := filepath.Join(r.cfg.StateDir, "out")
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	raw := r.rawOutput(spec.JobID)
	if err := r.releaseOutput(rec); err != nil {
		return err
	}
	if err := os.Mkdir(raw, 0o755); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	rec.OutputRaw = raw
	mode, _ := r.quotaMode()
	if mode == QuotaLoop && spec.Resources.OutputBytes > 0 {
		img := raw + ".img"
		// ext4 keeps a few MiB and some per cent for itself: the filesystem is a
		// little larger than the cap, and the watcher stops the job at the cap.
		size := spec.Resources.OutputBytes + spec.Resources.OutputBytes/16 + 8<<20
		f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("output image: %w", err)
		}
		err = f.Truncate(size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(img)
			return fmt.Errorf("output image: %w", err)
		}
		rec.OutputImage = img
		if out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "root_owner=0:0,lazy_itable_init=1,nodiscard", img).CombinedOutput(); err != nil {
			return fmt.Errorf("output image: mkfs.ext4: %v: %s", err, out)
		}
		if out, err := exec.CommandContext(ctx, "mount", "-o", "loop,nosuid,nodev", img, raw).CombinedOutput(); err != nil {
			return fmt.Errorf("output image: mount: %v: %s", err, out)
		}
		rec.OutputMounted = true
		os.Remove(filepath.Join(raw, "lost+found"))
	}
	if uid, gid, ok := numericUser(spec.User); ok && os.Geteuid() == 0 {
		if err := os.Chown(raw, uid, gid); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		return os.Chmod(raw, 0o700)
	}
	return os.Chmod(raw, 0o777)
}

// checkMounts points the output mount of a dry-run container (see Check), which is
// never started, at the output dir itself: the raw output folder exists only for a
// job being started.
func (r *Runtime) checkMounts(spec runtime.Spec, mounts []mount.Mount) []mount.Mount {
	raw := r.rawOutput(spec.JobID)
	for i := range mounts {
		if mounts[i].Source == raw {
			mounts[i].Source = spec.OutputDir
		}
	}
	return mounts
}

// outputUsed is how many bytes the job's output takes on disk, and whether that has
// reached the cap (or its loop filesystem is full).
func (r *Runtime) outputUsed(rec record) (used int64, full bool) {
	filepath.WalkDir(rec.OutputRaw, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				used += max(st.Blocks*512, 0)
			}
		}
		return nil
	})
	capBytes := rec.Spec.Resources.OutputBytes
	full = capBytes > 0 && used >= capBytes
	if rec.OutputMounted {
		var st unix.Statfs_t
		if err := unix.Statfs(rec.OutputRaw, &st); err == nil && int64(st.Bavail)*st.Bsize < 1<<20 {
			full = true
		}
	}
	return used, full
}

// publishOutput copies what the job wrote into the spec's output folder through the
// engine (which reads it as root, whatever user the job ran as), normalised: regular
// files 0644 or 0755, folders 0755, owned by the node, no setuid, setgid or sticky
// bits; no devices, FIFOs or hard links; no symlink out of the tree; no more than the
// output cap.
func (r *Runtime) publishOutput(ctx context.Context, rec record) error {
	spec := rec.Spec
	if rec.OutputRaw == "" {
		return nil // a record from before raw output folders: the job wrote OutputDir
	}
	rc, _, err := r.cli.CopyFromContainer(ctx, rec.ContainerID, spec.OutputTarget)
	if err != nil {
		return fmt.Errorf("output: copy from the container: %w", err)
	}
	defer rc.Close()
	tmp, err := os.MkdirTemp(filepath.Dir(spec.OutputDir), ".publish-")
	if err != nil {
		return fmt.Errorf("output: %w", err)
	}
	defer os.RemoveAll(tmp)
	limit := spec.Resources.OutputBytes
	files := onlyFilesAndDirs(rc)
	defer files.Close()
	if _, err := treetar.Extract(files, tmp, limit); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	// A hard link's first name came through as a regular file: it goes too.
	for _, name := range files.linked() {
		if p := filepath.Join(tmp, filepath.FromSlash(path.Clean(name))); filepath.IsLocal(path.Clean(name)) {
			os.Remove(p)
		}
	}
	src := filepath.Join(tmp, path.Base(spec.OutputTarget))
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if err := os.MkdirAll(spec.OutputDir, 0o755); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if err := os.Chmod(spec.OutputDir, 0o755); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(src, e.Name()), filepath.Join(spec.OutputDir, e.Name())); err != nil {
			return fmt.Errorf("output: %w", err)
		}
	}
	return nil
}

// filteredTar is a tar stream with only folders and regular files.
type filteredTar struct {
	*io.PipeReader
	done    chan struct{}
	targets []string // the names that hard links of the stream point to
}

// linked returns the names hard links pointed to, once the stream has been read.
func (f *filteredTar) linked() []string {
	<-f.done
	return f.targets
}

// onlyFilesAndDirs passes on a tar stream's folders and regular files and drops the
// rest: the node never publishes symlinks, hard links or special files (see
// node/jobs.Stage), so a job's link does not fail the job, it is left out.
func onlyFilesAndDirs(r io.Reader) *filteredTar {
	pr, pw := io.Pipe()
	f := &filteredTar{PipeReader: pr, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		tr := tar.NewReader(r)
		tw := tar.NewWriter(pw)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				pw.CloseWithError(tw.Close())
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if h.Typeflag == tar.TypeLink {
				f.targets = append(f.targets, h.Linkname)
			}
			if h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeReg {
				continue
			}
			if err := tw.WriteHeader(h); err == nil && h.Typeflag == tar.TypeReg {
				_, err = io.Copy(tw, tr)
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return f
}

// releaseOutput unmounts and removes a job's raw output.
func (r *Runtime) releaseOutput(rec *record) error {
	raw := r.rawOutput(rec.Spec.JobID)
	if rec.OutputMounted || isMountPoint(raw) {
		if out, err := exec.Command("umount", raw).CombinedOutput(); err != nil && isMountPoint(raw) {
			return fmt.Errorf("output: umount %s: %v: %s", raw, err, out)
		}
		rec.OutputMounted = false
	}
	if err := os.RemoveAll(raw); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	if err := os.Remove(raw + ".img"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("output: %w", err)
	}
	return nil
}

// isMountPoint reports whether p is mounted on (its device differs from its parent's).
func isMountPoint(p string) bool {
	var a, b unix.Stat_t
	if unix.Lstat(p, &a) != nil || unix.Lstat(filepath.Dir(p), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}
