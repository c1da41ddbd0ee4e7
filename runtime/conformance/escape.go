package conformance

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/runtime"
)

// escape holds the attempts of a hostile job. Each must fail while the host (and the
// runtime) stays healthy.
func (s *suite) escape(t *testing.T, open func(*testing.T, Options) runtime.Runtime) {
	dsRoot := t.TempDir()
	allowed := filepath.Join(dsRoot, "allowed")
	secret := filepath.Join(dsRoot, "secret")
	for _, d := range []string{filepath.Join(allowed, "ds"), secret} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(allowed, "ds", "data.txt"), []byte("private\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secret, "key"), []byte("miner secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := s.options(t)
	o.DatasetAllowlist = []string{allowed}
	rt := open(t, o)

	t.Run("NetworkFilesystemPrivileges", func(t *testing.T) {
		testenv.Attack(t, "runtime", "NetworkFilesystemPrivileges")
		t.Parallel()
		port, accepted := hostListener(t)
		args := []string{
			fmt.Sprintf("tcp:127.0.0.1:%d", port),
			"udp:8.8.8.8:53",
			"dns:example.com",
			"ifaces",
			"write:/escape=x",
			"write:/data/escape=x",
			"read:/data/data.txt",
			"write:/tmp/ok=x",
			"fill:/tmp/big=16",
			"status",
			"mknod:/tmp/dev",
			"mount:/tmp",
			"stat:/var/run/docker.sock",
			"stat:/run/docker.sock",
		}
		for _, a := range s.h.HostAddrs {
			args = append(args, fmt.Sprintf("tcp:%s:%d", a, port))
		}
		spec := s.spec(t, args...)
		spec.Datasets = []runtime.Mount{{Source: filepath.Join(allowed, "ds"), Target: "/data"}}
		res, log := run(t, rt, spec)
		if res.ExitCode != 0 {
			t.Fatalf("probe failed: %+v\n%s", res, log)
		}
		l := lines(log)
		for _, verb := range []string{"tcp", "udp", "dns", "write", "fill", "mknod", "mount", "stat"} {
			if len(l[verb]) == 0 {
				t.Errorf("probe printed nothing for %s:\n%s", verb, log)
			}
		}
		for _, v := range l["tcp"] {
			if !strings.HasPrefix(v, "error") {
				t.Errorf("TCP connection out of the job succeeded: %s", v)
			}
		}
		for _, verb := range []string{"udp", "dns", "fill", "mknod", "mount", "stat"} {
			for _, v := range l[verb] {
				if !strings.HasPrefix(v, "error") {
					t.Errorf("%s succeeded: %s", verb, v)
				}
			}
		}
		if got := l["ifaces"]; len(got) != 1 || got[0] != "ok lo" {
			t.Errorf("interfaces = %v, want only lo", got)
		}
		w := l["write"]
		if len(w) != 3 || !strings.HasPrefix(w[0], "error") || !strings.HasPrefix(w[1], "error") || !strings.HasPrefix(w[2], "ok") {
			t.Errorf("writes to /, the dataset, /tmp = %v; want error, error, ok", w)
		}
		if r := l["read"]; len(r) != 1 || r[0] != "ok private" {
			t.Errorf("dataset read = %v, want its content", r)
		}
		st := strings.Join(l["status"], "\n")
		for _, want := range []string{"CapEff=0000000000000000", "CapPrm=0000000000000000", "CapBnd=0000000000000000", "NoNewPrivs=1", "Seccomp=2"} {
			if !strings.Contains(st, want) {
				t.Errorf("process status lacks %s:\n%s", want, st)
			}
		}
		if n := accepted.Load(); n != 0 {
			t.Errorf("host listener accepted %d connections from the job", n)
		}
	})
	t.Run("ForkBomb", func(t *testing.T) {
		testenv.Attack(t, "runtime", "ForkBomb")
		t.Parallel()
		spec := s.spec(t, "forkbomb:1000", "echo:survived")
		spec.Resources.PIDs = 32
		res, log := run(t, rt, spec)
		l := lines(log)
		fb := l["forkbomb"]
		var n int
		var errText string
		if len(fb) == 1 {
			fmt.Sscanf(fb[0], "spawned %d err=%s", &n, &errText)
		}
		if len(fb) != 1 || n >= 32 || errText == "<nil>" || errText == "" {
			t.Errorf("fork bomb = %v (exit %d), want stopped below the PID limit 32:\n%s", fb, res.ExitCode, log)
		}
		hostHealthy(t)
	})
	t.Run("MemoryLimitIsOOMKill", func(t *testing.T) {
		testenv.Attack(t, "runtime", "MemoryLimitIsOOMKill")
		t.Parallel()
		spec := s.spec(t, "alloc:512", "echo:survived")
		spec.Resources.MemoryBytes = 64 << 20
		res, log := run(t, rt, spec)
		if !res.OOMKilled || res.ExitCode == 0 || strings.Contains(log, "survived") {
			t.Errorf("result = %+v, want OOM-killed:\n%s", res, log)
		}
		hostHealthy(t)
	})
	t.Run("SetuidGainsNothing", func(t *testing.T) {
		testenv.Attack(t, "runtime", "SetuidGainsNothing")
		t.Parallel()
		spec := s.spec(t, "stat:/suid", "id", "exec:/suid", "write:/out/by-nobody=1")
		spec.User = "65534:65534"
		res, log := run(t, rt, spec)
		if res.ExitCode != 0 {
			t.Fatalf("result = %+v:\n%s", res, log)
		}
		l := lines(log)
		if st := l["stat"]; len(st) != 1 || !strings.Contains(st[0], "urwx") {
			t.Fatalf("/suid is not setuid in the image (%v): the test would prove nothing", st)
		}
		ex := strings.Join(l["exec"], "\n")
		if !strings.Contains(ex, "child id: uid=65534 euid=65534") {
			t.Errorf("setuid binary ran with other ids:\n%s", ex)
		}
		if !strings.Contains(ex, "child setuid0: error") {
			t.Errorf("setuid(0) succeeded:\n%s", ex)
		}
		if w := l["write"]; len(w) != 1 || !strings.HasPrefix(w[0], "ok") {
			t.Errorf("a non-root job cannot write its output directory: %v", w)
		}
	})
	t.Run("OutputCapWhileRunning", func(t *testing.T) {
		testenv.Attack(t, "runtime", "OutputCapWhileRunning")
		t.Parallel()
		// 64 MiB into a 16 MiB output cap, then a long sleep: the job must be stopped
		// while it runs, not judged after it exits.
		const cap = 16 << 20
		spec := s.spec(t, "fill:/out/big=64", "echo:filled", "sleep:110s", "echo:survived")
		spec.Resources.OutputBytes = cap
		own := s.options(t) // a runtime of its own, so its state holds only this job
		res, log := run(t, open(t, own), spec)
		if !res.OutputFull || res.Succeeded() || !strings.Contains(res.Error, "output") || strings.Contains(log, "survived") {
			t.Errorf("result = %+v, want stopped for its output cap:\n%s", res, log)
		}
		if res.WallTime > time.Minute {
			t.Errorf("the job ran %s: it was not stopped while running", res.WallTime)
		}
		// What the job left on the host: its published output and anything in the
		// runtime's state, together no more than the cap (and a little metadata).
		if n := treeBytes(own.StateDir) + treeBytes(spec.OutputDir); n > cap+1<<20 {
			t.Errorf("the job left %d bytes on the host, cap %d", n, cap)
		}
		hostHealthy(t)
	})
	t.Run("SetuidOutputNormalised", func(t *testing.T) {
		testenv.Attack(t, "runtime", "SetuidOutputNormalised")
		t.Parallel()
		// A root job leaves a setuid-root copy of a binary, a setgid folder, a sticky
		// world-writable folder and a private file in its output.
		spec := s.spec(t, "copy:/probe=/out/suid", "chmod:/out/suid=4755", "mkdir:/out/sg", "chmod:/out/sg=2777",
			"mkdir:/out/st", "chmod:/out/st=1777", "write:/out/private=x", "chmod:/out/private=0600", "stat:/out/suid",
			"symlink:/etc/shadow=/out/shadow", "symlink:/=/out/root", "write:/out/twice=x", "hardlink:/out/twice=/out/twice2")
		res, log := run(t, rt, spec)
		if !res.Succeeded() {
			t.Fatalf("result = %+v:\n%s", res, log)
		}
		if st := lines(log)["stat"]; len(st) != 1 || !strings.Contains(st[0], "urwx") {
			t.Fatalf("the job could not make /out/suid setuid (%v): the test would prove nothing", st)
		}
		want := map[string]os.FileMode{".": 0o755, "suid": 0o755, "sg": 0o755, "st": 0o755, "private": 0o644}
		for name, mode := range want {
			fi, err := os.Lstat(filepath.Join(spec.OutputDir, name))
			if err != nil {
				t.Errorf("published %s: %v", name, err)
				continue
			}
			if got := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky); got != mode {
				t.Errorf("published %s has mode %v, want %v", name, fi.Mode(), mode)
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
				t.Errorf("published %s is owned by uid %d, not the node (%d)", name, st.Uid, os.Geteuid())
			}
		}
		for _, name := range []string{"shadow", "root", "twice", "twice2"} {
			if _, err := os.Lstat(filepath.Join(spec.OutputDir, name)); err == nil {
				t.Errorf("published %s: links are left out", name)
			}
		}
		filepath.Walk(spec.OutputDir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
				t.Errorf("host copy %s keeps mode %v", p, fi.Mode())
			}
			if err == nil && fi.Mode()&os.ModeSymlink != 0 {
				t.Errorf("host copy %s is a symlink: links are left out", p)
			}
			return nil
		})
	})
	t.Run("Ulimits", func(t *testing.T) {
		testenv.Attack(t, "runtime", "Ulimits")
		t.Parallel()
		res, log := run(t, rt, s.spec(t, "limits"))
		l := lines(log)["limits"]
		if !res.Succeeded() || len(l) != 1 {
			t.Fatalf("result = %+v:\n%s", res, log)
		}
		var nofile, nofileH, nproc, nprocH, core, coreH uint64
		if _, err := fmt.Sscanf(l[0], "ok nofile=%d/%d nproc=%d/%d core=%d/%d", &nofile, &nofileH, &nproc, &nprocH, &core, &coreH); err != nil {
			t.Fatalf("limits %q: %v", l[0], err)
		}
		const unlimited = ^uint64(0)
		if core != 0 || coreH != 0 {
			t.Errorf("core dumps allowed: %d/%d", core, coreH)
		}
		if nofileH == unlimited || nprocH == unlimited || nofile == 0 || nproc == 0 {
			t.Errorf("nofile %d/%d, nproc %d/%d: want finite limits", nofile, nofileH, nproc, nprocH)
		}
	})
	t.Run("EngineNotReachable", func(t *testing.T) {
		t.Parallel()
		s.engineMounts(t, rt)
	})
	t.Run("DatasetSymlinks", func(t *testing.T) {
		t.Parallel()
		// allowed/link -> secret (the path is a symlink); allowed/dir -> dsRoot, so
		// allowed/dir/secret passes through a symlink out of the allowlist.
		link := filepath.Join(allowed, "link")
		dir := filepath.Join(allowed, "dir")
		if err := os.Symlink(secret, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(dsRoot, dir); err != nil {
			t.Fatal(err)
		}
		for name, src := range map[string]string{
			"IsSymlink":       link,
			"ContainsSymlink": filepath.Join(dir, "secret"),
			"Outside":         secret,
			"DotDot":          filepath.Join(allowed, "..", "secret"),
		} {
			t.Run(name, func(t *testing.T) {
				testenv.Attack(t, "runtime", "dataset symlink "+name)
				spec := s.spec(t, "write:/out/ran=1", "read:/data/key")
				spec.Datasets = []runtime.Mount{{Source: src, Target: "/data"}}
				_, err := rt.Start(ctxFor(t, time.Minute), spec)
				if !errors.Is(err, runtime.ErrDatasetRefused) {
					t.Fatalf("dataset %s: start = %v, want ErrDatasetRefused", src, err)
				}
				if _, err := os.Stat(filepath.Join(spec.OutputDir, "ran")); err == nil {
					t.Error("the job ran although its dataset was refused")
				}
			})
		}
	})
}

// engineMounts: no job sees the container engine's socket, through an input or
// its output directory.
func (s *suite) engineMounts(t *testing.T, rt runtime.Runtime) {
	for name, mod := range map[string]func(*runtime.Spec){
		"InputSocket": func(sp *runtime.Spec) {
			sp.Inputs = []runtime.Mount{{Source: "/var/run/docker.sock", Target: "/docker.sock"}}
		},
		"InputRunDir":    func(sp *runtime.Spec) { sp.Inputs = []runtime.Mount{{Source: "/run", Target: "/hostrun"}} },
		"InputHostRoot":  func(sp *runtime.Spec) { sp.Inputs = []runtime.Mount{{Source: "/", Target: "/host"}} },
		"OutputIsRunDir": func(sp *runtime.Spec) { sp.OutputDir = "/var/run" },
	} {
		t.Run(name, func(t *testing.T) {
			testenv.Attack(t, "runtime", "engine socket via "+name)
			spec := s.spec(t, "stat:/docker.sock")
			mod(&spec)
			_, err := rt.Start(ctxFor(t, time.Minute), spec)
			if !errors.Is(err, runtime.ErrMountRefused) {
				t.Errorf("start = %v, want ErrMountRefused", err)
			}
		})
	}
}

// treeBytes is the disk space the files under root take.
func treeBytes(root string) int64 {
	var n int64
	filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if st, ok := fi.Sys().(*syscall.Stat_t); err == nil && ok {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// hostHealthy checks that the host still forks processes after a job's abuse.
func hostHealthy(t testing.TB) {
	t.Helper()
	if out, err := exec.Command("true").CombinedOutput(); err != nil {
		t.Errorf("host cannot start a process after the job: %v %s", err, out)
	}
}
