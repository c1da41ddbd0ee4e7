//go:build integration

package docker_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"golang.org/x/crypto/bcrypt"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/runtime"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

const (
	regUser = "miner"
	regPass = "s3cret-pass"
)

// startRegistry starts Debian's docker-registry on a free loopback port over storage,
// with htpasswd auth if auth is set, and returns its host:port.
func startRegistry(t *testing.T, storage string, auth bool) string {
	t.Helper()
	var extra string
	if auth {
		hash, err := bcrypt.GenerateFromPassword([]byte(regPass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(regUser+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		extra = fmt.Sprintf("auth:\n  htpasswd:\n    realm: gpunode-test\n    path: %s\n", htpasswd)
	}
	return testenv.Registry(t, storage, extra)
}

// pushUnique builds a FROM scratch image whose layer is unique to this call, pushes it
// to addr as repo:tag, deletes it from the engine and returns its repo@digest.
func pushUnique(t *testing.T, addr, repo, tag string) string {
	t.Helper()
	cli := engine(t)
	rnd := make([]byte, 16)
	rand.Read(rnd)
	payload := make([]byte, 256<<10)
	rand.Read(payload)
	ref := addr + "/" + repo + ":" + tag
	if _, err := buildImage(cli, ref, "FROM scratch\nCOPY payload /payload\nCOPY id /id\n",
		map[string]tarFile{"payload": {payload, 0o644}, "id": {[]byte(hex.EncodeToString(rnd)), 0o644}}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("docker", "push", ref).CombinedOutput(); err != nil {
		t.Fatalf("docker push %s: %v\n%s", ref, err, out)
	}
	ins, err := cli.ImageInspect(t.Context(), ref)
	if err != nil || len(ins.RepoDigests) == 0 {
		t.Fatalf("pushed image has no repo digest: %v %v", ins.RepoDigests, err)
	}
	digestRef := ins.RepoDigests[0]
	removeImage(t, ins.ID)
	return digestRef
}

func removeImage(t *testing.T, id string) {
	cli := engine(t)
	if _, err := cli.ImageRemove(t.Context(), id, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
		t.Logf("remove image %s: %v", id, err)
	}
}

func registryRuntime(t *testing.T, mod func(*docker.Config)) *docker.Runtime {
	dir := t.TempDir()
	cfg := testConfig(conformance.Options{StateDir: filepath.Join(dir, "s"), LogDir: filepath.Join(dir, "l")})
	if mod != nil {
		mod(&cfg)
	}
	rt := openRuntime(t, cfg)
	t.Cleanup(func() { rt.Close() })
	return rt
}

func TestPullByDigest(t *testing.T) {
	storage := t.TempDir()
	addr := startRegistry(t, storage, false)
	ref := pushUnique(t, addr, "gpunode/pull", "v1")
	rt := registryRuntime(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	t.Run("TagRefused", func(t *testing.T) {
		_, err := rt.Pull(ctx, addr+"/gpunode/pull:v1", false, nil)
		if !errors.Is(err, runtime.ErrTagNotAllowed) {
			t.Errorf("pull by tag = %v, want ErrTagNotAllowed", err)
		}
		spec := runtime.Spec{JobID: "tag-job", Image: addr + "/gpunode/pull:v1", Command: []string{"/x"}, OutputDir: filepath.Join(t.TempDir(), "o")}
		if _, err := rt.Start(ctx, spec); !errors.Is(err, runtime.ErrTagNotAllowed) {
			t.Errorf("job with a tag = %v, want ErrTagNotAllowed", err)
		}
	})
	t.Run("DigestWithProgress", func(t *testing.T) {
		var last runtime.PullProgress
		var events int
		im, err := rt.Pull(ctx, ref, false, func(p runtime.PullProgress) { last = p; events++ })
		if err != nil {
			t.Fatal(err)
		}
		if events == 0 || last.Layers < 1 || last.LayersDone != last.Layers || last.BytesTotal < 256<<10 || last.BytesDone != last.BytesTotal {
			t.Errorf("progress: %d events, last %+v; want every layer done and the payload's bytes", events, last)
		}
		if !strings.HasPrefix(im.ID, "sha256:") || im.SizeBytes < 256<<10 {
			t.Errorf("image = %+v", im)
		}
		imgs, err := rt.Images(ctx)
		if err != nil || len(imgs) != 1 || imgs[0].ID != im.ID {
			t.Fatalf("cache = %+v, %v; want the pulled image", imgs, err)
		}
		rep, err := rt.PruneImagesTo(ctx, 0)
		if err != nil || len(rep.Removed) != 1 {
			t.Fatalf("prune = %+v, %v; want the image removed", rep, err)
		}
		if _, err := engine(t).ImageInspect(ctx, im.ID); err == nil {
			t.Error("pruned image still in the engine")
		}
	})
	t.Run("LeastRecentlyUsedFirst", func(t *testing.T) {
		refB := pushUnique(t, addr, "gpunode/pull", "v2")
		a, err := rt.Pull(ctx, ref, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := rt.Pull(ctx, refB, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Using A makes B the least recently used.
		spec := runtime.Spec{JobID: "lru-user", Image: ref, Command: []string{"/payload"}, OutputDir: filepath.Join(t.TempDir(), "o")}
		rt.Start(ctx, spec) // /payload is not executable; the image counts as used all the same
		rep, err := rt.PruneImagesTo(ctx, a.SizeBytes)
		if err != nil || len(rep.Removed) != 1 || rep.Removed[0].ID != b.ID {
			t.Fatalf("prune to one image = %+v, %v; want %s (least recently used) removed", rep, err, b.ID)
		}
		if _, err := rt.PruneImagesTo(ctx, 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("TagAllowed", func(t *testing.T) {
		im, err := rt.Pull(ctx, addr+"/gpunode/pull:v1", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		removeImage(t, im.ID)
	})
	t.Run("Unknown", func(t *testing.T) {
		_, err := rt.Pull(ctx, addr+"/gpunode/pull@sha256:"+strings.Repeat("ab", 32), false, nil)
		if !errors.Is(err, runtime.ErrImageNotFound) {
			t.Errorf("pull of an unknown digest = %v, want ErrImageNotFound", err)
		}
	})
}

// TestDigestMismatch puts a lying proxy in front of the registry: asked for image A's
// manifest by digest, it serves image B's. The pull must fail as a digest mismatch.
func TestDigestMismatch(t *testing.T) {
	storage := t.TempDir()
	addr := startRegistry(t, storage, false)
	refA := pushUnique(t, addr, "gpunode/mismatch", "a")
	refB := pushUnique(t, addr, "gpunode/mismatch", "b")
	_, digestA, _ := strings.Cut(refA, "@")
	_, digestB, _ := strings.Cut(refB, "@")
	target, _ := url.Parse("http://" + addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	inner := proxy.Director
	proxy.Director = func(r *http.Request) {
		inner(r)
		r.URL.Path = strings.Replace(r.URL.Path, "/manifests/"+digestA, "/manifests/"+digestB, 1)
	}
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Header.Get("Docker-Content-Digest") == digestB {
			resp.Header.Set("Docker-Content-Digest", digestA)
		}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	rt := registryRuntime(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	lying := ln.Addr().String() + "/gpunode/mismatch@" + digestA
	im, err := rt.Pull(ctx, lying, false, nil)
	if !errors.Is(err, runtime.ErrDigestMismatch) {
		t.Fatalf("pull through the lying proxy = %+v, %v; want ErrDigestMismatch", im, err)
	}
	t.Logf("lying proxy: %v", err)
	// The honest registry still serves A.
	im, err = rt.Pull(ctx, refA, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	removeImage(t, im.ID)
}

func TestRegistryAuth(t *testing.T) {
	storage := t.TempDir()
	open := startRegistry(t, storage, false)
	ref := pushUnique(t, open, "gpunode/private", "v1")
	// The same storage behind a registry that wants a password.
	addr := startRegistry(t, storage, true)
	ref = addr + strings.TrimPrefix(ref, open)

	helperDir := t.TempDir()
	helper := "#!/bin/sh\nread server\nif [ \"$server\" = \"" + addr + "\" ]; then\n" +
		"  echo '{\"ServerURL\":\"'$server'\",\"Username\":\"" + regUser + "\",\"Secret\":\"" + regPass + "\"}'\n" +
		"else echo 'credentials not found in native keychain'; exit 1; fi\n"
	if err := os.WriteFile(filepath.Join(helperDir, "docker-credential-gpunodetest"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", helperDir+string(os.PathListSeparator)+os.Getenv("PATH"))

	writeConfig := func(body string) string {
		p := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	basic := base64.StdEncoding.EncodeToString([]byte(regUser + ":" + regPass))
	wrong := base64.StdEncoding.EncodeToString([]byte(regUser + ":wrong"))
	for _, tc := range []struct {
		name string
		mod  func(*docker.Config)
		ok   bool
	}{
		{"Anonymous", nil, false},
		{"WrongPassword", func(c *docker.Config) {
			c.DockerConfig = writeConfig(`{"auths":{"` + addr + `":{"auth":"` + wrong + `"}}}`)
		}, false},
		{"ConfigFileAuths", func(c *docker.Config) {
			c.DockerConfig = writeConfig(`{"auths":{"` + addr + `":{"auth":"` + basic + `"}},"detachKeys":"ctrl-x"}`)
		}, true},
		{"CredentialHelper", func(c *docker.Config) {
			c.DockerConfig = writeConfig(`{"credHelpers":{"` + addr + `":"gpunodetest"}}`)
		}, true},
		{"CredentialsStore", func(c *docker.Config) {
			c.DockerConfig = writeConfig(`{"credsStore":"gpunodetest"}`)
		}, true},
		{"PerRegistrySetting", func(c *docker.Config) {
			c.DockerConfig = writeConfig(`{"auths":{"` + addr + `":{"auth":"` + wrong + `"}}}`)
			c.Registries = map[string]docker.Registry{addr: {Username: regUser, Password: regPass}}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := registryRuntime(t, tc.mod)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			im, err := rt.Pull(ctx, ref, false, nil)
			if tc.ok {
				if err != nil {
					t.Fatalf("pull = %v", err)
				}
				removeImage(t, im.ID)
				return
			}
			if !errors.Is(err, runtime.ErrUnauthorized) {
				t.Fatalf("pull = %+v, %v; want ErrUnauthorized", im, err)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// TestPrepareTimeout: a registry that never answers must not eat the job's running
// time; preparing fails on its own timeout and the job never starts.
func TestPrepareTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stall := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stall:
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { close(stall); srv.Close() })

	rt := registryRuntime(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	spec := runtime.Spec{
		JobID: "prepare-timeout", Image: ln.Addr().String() + "/gpunode/slow@sha256:" + strings.Repeat("cd", 32),
		Command: []string{"/probe"}, OutputDir: filepath.Join(t.TempDir(), "out"),
		PrepareTimeout: 2 * time.Second, RunTimeout: time.Hour,
	}
	t0 := time.Now()
	_, err = rt.Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "preparing took longer than 2s") {
		t.Fatalf("start = %v, want the preparing timeout", err)
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("start returned after %v with a 2s preparing timeout", d)
	}
	res, err := rt.Wait(ctx, spec.JobID)
	if err != nil || res.Error == "" || !res.StartedAt.IsZero() {
		t.Errorf("result = %+v, %v; want a preparing error and no start", res, err)
	}
}
