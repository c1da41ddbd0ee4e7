package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeValid(t *testing.T) {
	b, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got := m.ImageRepo(); got != "registry.example.com/lab/trainer" {
		t.Errorf("ImageRepo = %q", got)
	}
	if got := m.Datasets(); len(got) != 1 || got[0] != "medical-ct" {
		t.Errorf("Datasets = %v", got)
	}
	if m.MaxDuration.Hours() != 6 {
		t.Errorf("MaxDuration = %v", m.MaxDuration)
	}
}

func TestDecodeRejects(t *testing.T) {
	valid, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	v := string(valid)
	tests := []struct {
		name  string
		in    string
		wants []string // every substring must appear in the error
	}{
		{"unknown field", strings.Replace(v, `"version": 1,`, `"version": 1, "extra": true,`, 1), []string{"unknown field"}},
		{"trailing data", v + "{}", []string{"trailing data"}},
		{"wrong version", strings.Replace(v, `"version": 1`, `"version": 3`, 1), []string{"version: got 3"}},
		{"direction in version 1", strings.Replace(v, `"metric":`, `"direction": "lower", "metric":`, 1), []string{"evaluation.direction: needs manifest version 2"}},
		{"no direction in version 2", strings.Replace(v, `"version": 1`, `"version": 2`, 1), []string{"evaluation.direction"}},
		{"unknown direction", strings.NewReplacer(`"version": 1`, `"version": 2`, `"metric":`, `"direction": "sideways", "metric":`).Replace(v), []string{`"sideways"`}},
		{"tag not digest", strings.Replace(v, "trainer@sha256:1111111111111111111111111111111111111111111111111111111111111111", "trainer:latest", 1), []string{"pinned by digest"}},
		{"several problems at once",
			strings.NewReplacer(`"max_duration": "6h"`, `"max_duration": "0s"`, `"mode": "none"`, `"mode": "host"`, `"/out"`, `"out/../x"`).Replace(v),
			[]string{"max_duration", "network.mode", "output.path"}},
		{"both cid and dataset", strings.Replace(v, `{"dataset": "medical-ct"`, `{"cid": "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", "dataset": "medical-ct"`, 1), []string{"exactly one of cid, dataset and file"}},
		{"file and dataset", strings.Replace(v, `{"dataset": "medical-ct"`, `{"file": "scans/", "dataset": "medical-ct"`, 1), []string{"exactly one of cid, dataset and file"}},
		{"eval input from a dataset", strings.Replace(v, `"metric":`, `"inputs": [{"dataset": "medical-ct", "path": "/heldout"}], "metric":`, 1), []string{"validators have no rig's datasets"}},
		{"eval input over the checkpoint", strings.Replace(v, `"metric":`, `"inputs": [{"file": "x", "path": "/checkpoint/x"}], "metric":`, 1), []string{"overlaps /checkpoint"}},
		{"egress without domains", strings.Replace(v, `"mode": "none"`, `"mode": "egress"`, 1), []string{"egress needs 1..64 domains"}},
		{"too large", `{"version":1,"command":["` + strings.Repeat("a", MaxManifestBytes) + `"]}`, []string{"larger than"}},
		{"bad duration", strings.Replace(v, `"6h"`, `6`, 1), []string{"duration"}},
		// The NVIDIA Container Toolkit escape class: a job may not steer the dynamic loader
		// (CVE-2025-23266) nor the toolkit's choice of devices.
		{"LD_PRELOAD", strings.Replace(v, `"SEED": "42"`, `"LD_PRELOAD": "/out/x.so"`, 1), []string{"env LD_PRELOAD", "dynamic loader"}},
		{"LD_AUDIT", strings.Replace(v, `"SEED": "42"`, `"LD_AUDIT": "/out/x.so"`, 1), []string{"env LD_AUDIT"}},
		{"LD_LIBRARY_PATH", strings.Replace(v, `"SEED": "42"`, `"LD_LIBRARY_PATH": "/out"`, 1), []string{"env LD_LIBRARY_PATH"}},
		{"NVIDIA_VISIBLE_DEVICES", strings.Replace(v, `"SEED": "42"`, `"NVIDIA_VISIBLE_DEVICES": "all"`, 1), []string{"env NVIDIA_VISIBLE_DEVICES", "resources.gpus"}},
		{"NVIDIA_DRIVER_CAPABILITIES", strings.Replace(v, `"SEED": "42"`, `"NVIDIA_DRIVER_CAPABILITIES": "all"`, 1), []string{"env NVIDIA_DRIVER_CAPABILITIES"}},
		{"every reserved name at once", strings.Replace(v, `"SEED": "42"`, `"LD_PRELOAD": "a", "NVIDIA_VISIBLE_DEVICES": "all", "SEED": "1"`, 1), []string{"env LD_PRELOAD", "env NVIDIA_VISIBLE_DEVICES"}},
		{"memory overflows bytes", strings.Replace(v, `"memory_mib": 65536`, `"memory_mib": 9007199254740992`, 1), []string{"memory_mib and gpu_memory_mib must be at most"}},
		{"absurd amounts", strings.NewReplacer(`"cpus": 8`, `"cpus": 100000`, `"disk_mib": 102400`, `"disk_mib": 1099511627777`, `"min_score": 100`, `"min_score": 1e300`).Replace(v), []string{"resources.cpus", "resources.disk_mib", "resources.min_score"}},
		{"min_verified_score out of range", strings.Replace(v, `"min_score": 100`, `"min_score": 100, "min_verified_score": -1`, 1), []string{"resources.min_verified_score"}},
		{"negative nodes", strings.Replace(v, `"gpus": 2,`, `"nodes": -1, "gpus": 2,`, 1), []string{"resources.nodes: -1 out of range 1..64"}},
		{"too many nodes", strings.Replace(v, `"gpus": 2,`, `"nodes": 65, "gpus": 2,`, 1), []string{"resources.nodes: 65 out of range 1..64"}},
		{"nodes not a number", strings.Replace(v, `"gpus": 2,`, `"nodes": "2", "gpus": 2,`, 1), []string{"resources.nodes"}},
		{"a century", strings.Replace(v, `"6h"`, `"876000h"`, 1), []string{"max_duration: must be positive and at most"}},
		{"output past a petabyte", strings.Replace(v, `"max_bytes": 1073741824`, `"max_bytes": 1125899906842625`, 1), []string{"output.max_bytes"}},
		{"threshold past the contract", strings.Replace(v, `"threshold": 0.9`, `"threshold": 5000`, 1), []string{"evaluation.threshold"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tt.in))
			if err == nil {
				t.Fatal("Decode accepted a bad manifest")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	_, err = Decode(strings.NewReader(strings.Replace(v, `"version": 1`, `"version": 3`, 1)))
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("validation error %v does not wrap ErrInvalid", err)
	}
}

func TestDirection(t *testing.T) {
	valid, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	v1, err := Decode(bytes.NewReader(valid))
	if err != nil {
		t.Fatal(err)
	}
	if v1.Evaluation.LowerIsBetter() {
		t.Fatal("a version 1 manifest's metric is lower-is-better")
	}
	for _, d := range []string{DirectionHigher, DirectionLower} {
		s := strings.NewReplacer(`"version": 1`, `"version": 2`, `"metric":`, `"direction": "`+d+`", "metric":`).Replace(string(valid))
		m, err := Decode(strings.NewReader(s))
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if m.Evaluation.LowerIsBetter() != (d == DirectionLower) {
			t.Fatalf("%s: LowerIsBetter = %v", d, m.Evaluation.LowerIsBetter())
		}
	}
}

// FuzzDecode: any input either fails or yields a manifest that validates and survives a
// round trip through its own encoding.
func FuzzDecode(f *testing.F) {
	valid, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":1,"network":{"mode":"egress","domains":["pypi.org"]}}`))
	f.Add([]byte(`null`))
	f.Add(bytes.Replace(valid, []byte(`"min_score": 100`), []byte(`"min_score": 100, "min_verified_score": 2.5`), 1))
	f.Add([]byte(strings.NewReplacer(`"version": 1`, `"version": 2`, `"metric":`, `"direction": "lower", "metric":`).Replace(string(valid))))
	f.Add(bytes.Replace(valid, []byte(`"gpus": 2,`), []byte(`"nodes": 2, "gpus": 2,`), 1))
	f.Add(bytes.Replace(valid, []byte(`"gpus": 2,`), []byte(`"nodes": 65, "gpus": 2,`), 1))
	f.Add(bytes.Replace(valid, []byte(`"memory_mib": 65536`), []byte(`"memory_mib": 17592186044416`), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		if errs := m.Validate(); len(errs) > 0 {
			t.Fatalf("decoded manifest does not validate: %v", errs)
		}
		if _, _, err := ParseImage(m.Image); err != nil {
			t.Fatalf("decoded manifest has a bad image: %v", err)
		}
		if n := m.Resources.NodeCount(); n < 1 || n > 64 {
			t.Fatalf("decoded manifest spans %d nodes", n)
		}
		if m.Resources.MemoryMiB<<20>>20 != m.Resources.MemoryMiB || m.Evaluation.Threshold*1e6 > 1<<32-1 {
			t.Fatalf("decoded manifest overflows: memory_mib %d, threshold %v", m.Resources.MemoryMiB, m.Evaluation.Threshold)
		}
	})
}

// TestMarshalRoundTrip: a decoded manifest, marshalled again (as `gpunode job post` does
// after uploading local inputs), decodes strictly to the same manifest.
func TestMarshalRoundTrip(t *testing.T) {
	b, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	m.Inputs = append(m.Inputs, Input{File: "train.csv", Path: "/train"})
	m.Evaluation.Inputs = []Input{{File: "heldout.csv", Path: "/heldout"}}
	if got := m.LocalFiles(); len(got) != 2 || got[0] != "train.csv" || got[1] != "heldout.csv" {
		t.Errorf("LocalFiles = %v", got)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("round trip changed the manifest:\n%+v\n%+v", back, m)
	}
}

// TestExampleTemplateDecodes: the example job's manifest is valid once its images are
// filled in, and names its data as local files for `gpunode job post` to upload.
func TestExampleTemplateDecodes(t *testing.T) {
	b, err := os.ReadFile("../examples/job.template.json")
	if err != nil {
		t.Fatal(err)
	}
	digest := "@sha256:" + strings.Repeat("ab", 32)
	s := strings.NewReplacer("${TRAINER_IMAGE}", "127.0.0.1:5000/trainer"+digest, "${EVAL_IMAGE}", "127.0.0.1:5000/eval"+digest).Replace(string(b))
	m, err := Decode(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.LocalFiles(); len(got) != 2 {
		t.Errorf("local files %v, want the data set for training and for evaluation", got)
	}
}

// TestNodes: resources.nodes, absent or 0, means one rig; 1..64 are taken as written.
func TestNodes(t *testing.T) {
	valid, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		field string
		want  int
	}{{"", 1}, {`"nodes": 0,`, 1}, {`"nodes": 1,`, 1}, {`"nodes": 2,`, 2}, {`"nodes": 64,`, 64}} {
		m, err := Decode(strings.NewReader(strings.Replace(string(valid), `"gpus": 2,`, tt.field+`"gpus": 2,`, 1)))
		if err != nil {
			t.Fatalf("%q: %v", tt.field, err)
		}
		if got := m.Resources.NodeCount(); got != tt.want {
			t.Errorf("%q: NodeCount %d, want %d", tt.field, got, tt.want)
		}
	}
}
