//go:build integration

package validator

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/gpunode/gpunode/internal/testenv"
	"github.com/gpunode/gpunode/job/treehash"
	"github.com/gpunode/gpunode/node/policy"
	"github.com/gpunode/gpunode/node/store"
	"github.com/gpunode/gpunode/runtime/conformance"
	"github.com/gpunode/gpunode/runtime/docker"
)

// pushEval imports a FROM-nothing image holding the conformance probe as /probe and a
// file unique to this call, pushes it to ref (host/repo:tag), removes it from the engine
// and returns its repo@digest.
func pushEval(t *testing.T, cli *client.Client, probe []byte, ref string) string {
	t.Helper()
	ctx := t.Context()
	id := make([]byte, 16)
	rand.Read(id)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, f := range map[string]struct {
		b    []byte
		mode int64
	}{"probe": {probe, 0o755}, "id": {[]byte(hex.EncodeToString(id)), 0o644}} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: f.mode, Size: int64(len(f.b)), ModTime: time.Unix(0, 0)})
		tw.Write(f.b)
	}
	tw.Close()
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, ref, image.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	if out, err := exec.Command("docker", "push", ref).CombinedOutput(); err != nil {
		t.Fatalf("docker push %s: %v\n%s", ref, err, out)
	}
	ins, err := cli.ImageInspect(ctx, ref)
	if err != nil || len(ins.RepoDigests) == 0 {
		t.Fatalf("pushed image %s has no repo digest: %v", ref, err)
	}
	if _, err := cli.ImageRemove(ctx, ins.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
		t.Fatal(err)
	}
	return ins.RepoDigests[0]
}

// engineEvents records dockerd's container events for one runtime instance and its image
// events, from now until the test ends.
type engineEvents struct {
	mu   sync.Mutex
	msgs []events.Message
}

func watchEngine(t *testing.T, cli *client.Client, instance string) *engineEvents {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	e := &engineEvents{}
	since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	for _, f := range []filters.Args{
		filters.NewArgs(filters.Arg("type", "container"), filters.Arg("label", docker.LabelInstance+"="+instance)),
		filters.NewArgs(filters.Arg("type", "image")),
	} {
		msgs, errs := cli.Events(ctx, events.ListOptions{Since: since, Filters: f})
		go func() {
			for {
				select {
				case m := <-msgs:
					e.mu.Lock()
					e.msgs = append(e.msgs, m)
					e.mu.Unlock()
				case <-errs:
					return
				}
			}
		}()
	}
	return e
}

// find returns the events of type typ and action act whose actor mentions s.
func (e *engineEvents) find(typ events.Type, act events.Action, s string) []events.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []events.Message
	for _, m := range e.msgs {
		if m.Type != typ || m.Action != act {
			continue
		}
		text := m.Actor.ID
		for k, v := range m.Actor.Attributes {
			text += " " + k + "=" + v
		}
		if strings.Contains(text, s) {
			out = append(out, m)
		}
	}
	return out
}

// TestConsentOnDocker: a validator named by a sponsor its policy does not allow, or for
// an evaluation image outside its policy, pulls nothing and creates no container on a
// real dockerd, and says why; an image over its size cap is declined and not kept. The
// same validator evaluates an allowed duty, which shows the pull and the containers on
// the same event stream.
func TestConsentOnDocker(t *testing.T) {
	testenv.RequireDocker(t)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	probe, err := os.ReadFile(conformance.BuildProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := testenv.Registry(t, t.TempDir(), "")
	lab, other, lab2 := pushEval(t, cli, probe, addr+"/lab/eval:t"), pushEval(t, cli, probe, addr+"/other/eval:t"), pushEval(t, cli, probe, addr+"/lab/eval2:t")
	big := pushEval(t, cli, probe, addr+"/lab/big:t")

	dir := t.TempDir()
	rcfg := docker.Default()
	rnd := make([]byte, 6)
	rand.Read(rnd)
	rcfg.Instance = "test-consent-" + hex.EncodeToString(rnd)
	rcfg.StateDir, rcfg.LogDir = filepath.Join(dir, "state"), filepath.Join(dir, "logs")
	rcfg.DockerConfig = "/nonexistent/config.json"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := docker.New(rcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	seen := watchEngine(t, cli, rcfg.Instance)
	t.Cleanup(func() {
		// The runtime removes its containers when they finish; a failed test may not.
		list, _ := cli.ContainerList(context.Background(), container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+rcfg.Instance))})
		for _, c := range list {
			cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		}
	})
	t.Cleanup(func() {
		for _, ref := range []string{lab, other, lab2, big} {
			cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
		}
	})

	rules := `version = 1
[validator]
sponsors = ["0x1111111111111111111111111111111111111111"]
max_image_bytes = %d
[validator.images]
allow = ["127.0.0.1:*/lab/*"]
`
	pol, err := policy.Parse([]byte(fmt.Sprintf(rules, 64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	// The probe image is a few MiB: over this validator's cap.
	small, err := policy.Parse([]byte(fmt.Sprintf(rules, 64<<10)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ckpt := filepath.Join(dir, "ckpt")
	os.MkdirAll(ckpt, 0o755)
	os.WriteFile(filepath.Join(ckpt, "model.json"), []byte(`{"w":1}`), 0o644)
	hash, err := treehash.Sum(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	chain := &fakeChain{scores: map[string]uint32{}}
	v := New(Default(), st, chain, fakeContent{dirs: map[string]string{"bafyckpt": ckpt}}, rt, filepath.Join(dir, "work"), log)
	v.SetConsent(PolicyConsent(&policy.Set{Local: pol}))
	tight := New(Default(), st, chain, fakeContent{dirs: map[string]string{"bafyckpt": ckpt}}, rt, filepath.Join(dir, "work-tight"), log)
	tight.SetConsent(PolicyConsent(&policy.Set{Local: small}))
	task := func(id, sponsor, img string) Task {
		return Task{JobID: id, CheckpointCID: "bafyckpt", ResultHash: hash, EvalImage: img, Metric: "accuracy", Threshold: 900000,
			EvalCommand: []string{"/probe", `write:/out/result.json={"version":1,"metrics":{"accuracy":0.95}}`},
			Sponsor:     sponsor, FeeWei: "0"}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const allowed, stranger = "0x1111111111111111111111111111111111111111", "0x2222222222222222222222222222222222222222"
	for _, c := range []struct {
		task   Task
		reason string
	}{
		{task("1", stranger, lab2), "validator.sponsors"},
		{task("2", allowed, other), "validator.images.allow"},
	} {
		verdict, err := v.Validate(ctx, c.task)
		if err != nil {
			t.Fatal(err)
		}
		if !verdict.Declined || !strings.Contains(verdict.Reason, c.reason) {
			t.Fatalf("job %s: verdict %+v, want declined by %s", c.task.JobID, verdict, c.reason)
		}
	}
	// An image over the cap is declined, and does not stay on the engine.
	verdict, err := tight.Validate(ctx, task("4", allowed, big))
	if err != nil || !verdict.Declined || !strings.Contains(verdict.Reason, "cap 65536") {
		t.Fatalf("image over the cap: %+v %v", verdict, err)
	}
	// The control: an allowed duty is pulled, created and evaluated.
	verdict, err = v.Validate(ctx, task("3", allowed, lab))
	if err != nil || verdict.Declined || verdict.Score != 950000 {
		t.Fatalf("allowed duty: %+v %v", verdict, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if len(seen.find(events.ImageEventType, events.ActionPull, addr+"/lab/eval@")) > 0 &&
			len(seen.find(events.ContainerEventType, events.ActionCreate, "eval-3")) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd did not report the allowed duty's pull and container: %+v", seen.msgs)
		}
	}
	// Events arrive in order: whatever the declined duties did came before the control's.
	// The allowed duty's are its dry run and its evaluation.
	if all, ok := seen.find(events.ContainerEventType, events.ActionCreate, ""), seen.find(events.ContainerEventType, events.ActionCreate, "eval-3"); len(all) != len(ok) {
		t.Errorf("containers created: %d, want only the allowed duty's (%d): %+v", len(all), len(ok), all)
	}
	for _, ref := range []string{addr + "/lab/eval2", addr + "/other/eval"} {
		if got := seen.find(events.ImageEventType, events.ActionPull, ref); len(got) > 0 {
			t.Errorf("declined image %s was pulled: %+v", ref, got)
		}
	}
	for _, ref := range []string{lab2, other, big} {
		if _, err := cli.ImageInspect(ctx, ref); !errdefs.IsNotFound(err) {
			t.Errorf("declined image %s is on the engine: %v", ref, err)
		}
	}
	if chain.attests != 1 {
		t.Errorf("%d attestations, want the allowed duty's only", chain.attests)
	}
}
