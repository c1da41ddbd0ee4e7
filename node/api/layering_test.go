package api

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
)

const module = "github.com/gpunode/gpunode"

// Layering rules (DESIGN.md, and this package's doc):
//   - runtime/…, benchmark/…, contracts/…, job and internal/… never import node/…: they
//     are libraries below the daemon;
//   - node/api imports the standard library and apiAllowed only: it is a leaf that any
//     caller can link without the daemon's dependencies (no cgo GPU bindings, no
//     runtime, no chain).
var (
	belowDaemon = []string{"runtime", "benchmark", "contracts", "job", "internal"}
	apiAllowed  = map[string]string{
		module + "/internal/treetar": "the wire encoding of the IPFS upload and download routes",
	}
)

type listedPackage struct {
	ImportPath string
	Deps       []string
}

// violations checks pkgs (as `go list -json` describes them) against the rules.
func violations(pkgs []listedPackage) []string {
	var out []string
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		top, _, _ := strings.Cut(rel, "/")
		for _, d := range p.Deps {
			if !strings.HasPrefix(d, module+"/") {
				if rel == "node/api" && !standard(d) {
					out = append(out, p.ImportPath+" imports "+d+": node/api is a leaf (standard library and wire types only)")
				}
				continue
			}
			drel := strings.TrimPrefix(d, module+"/")
			for _, b := range belowDaemon {
				if top == b && (drel == "node" || strings.HasPrefix(drel, "node/")) {
					out = append(out, p.ImportPath+" imports "+d+": "+b+"/… is below the daemon and never imports node/…")
				}
			}
			if rel == "node/api" {
				if _, ok := apiAllowed[d]; !ok {
					out = append(out, p.ImportPath+" imports "+d+": node/api is a leaf (standard library and wire types only)")
				}
			}
		}
	}
	return out
}

// standard reports whether an import path is the standard library's: no dot in its
// first element (vendored std packages included).
func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// TestLayering lists the module's packages with `go list -json` (the go command only,
// nothing else) and checks the layering rules.
func TestLayering(t *testing.T) {
	gobin := filepath.Join(goruntime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Fatal("the go command is needed to list the module's packages: put it on PATH")
		}
	}
	cmd := exec.Command(gobin, "list", "-json", module+"/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(out)
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.ImportPath] = true
	}
	for _, want := range []string{module + "/node/api", module + "/runtime/docker", module + "/benchmark", module + "/job"} {
		if !seen[want] {
			t.Fatalf("go list did not list %s: the check would check nothing", want)
		}
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestLayeringRulesCatch feeds the checker imports that break each rule.
func TestLayeringRulesCatch(t *testing.T) {
	bad := []listedPackage{
		{ImportPath: module + "/runtime/docker", Deps: []string{"fmt", module + "/node/api"}},
		{ImportPath: module + "/benchmark", Deps: []string{module + "/node"}},
		{ImportPath: module + "/contracts/devchain", Deps: []string{module + "/node/store"}},
		{ImportPath: module + "/job", Deps: []string{module + "/node/policy"}},
		{ImportPath: module + "/internal/treetar", Deps: []string{module + "/node/ipfs"}},
		{ImportPath: module + "/node/api", Deps: []string{"net/http", module + "/runtime/gpu"}},
		{ImportPath: module + "/node/api", Deps: []string{"github.com/NVIDIA/go-nvml/pkg/nvml"}},
	}
	for _, p := range bad {
		if v := violations([]listedPackage{p}); len(v) != 1 {
			t.Errorf("%s importing %v: %d violations %v, want 1", p.ImportPath, p.Deps, len(v), v)
		}
	}
	good := []listedPackage{
		{ImportPath: module + "/node/api", Deps: []string{"net/http", "vendor/golang.org/x/net/idna", module + "/internal/treetar"}},
		{ImportPath: module + "/node/jobs", Deps: []string{module + "/node/api", module + "/runtime"}},
		{ImportPath: module + "/runtime/docker", Deps: []string{module + "/runtime", "github.com/docker/docker/client"}},
		{ImportPath: module + "/nodes", Deps: []string{module + "/node"}},
	}
	if v := violations(good); len(v) != 0 {
		t.Errorf("allowed imports flagged: %v", v)
	}
}
