// Command gen compiles the Solidity contracts with the pinned solc-js and regenerates the
// committed artifacts (contracts/build) and abigen v2 Go bindings (contracts/bindings,
// contracts/bindings/mocks). `make contracts` runs it; its test checks that the committed
// files are what it would produce.
//
// Usage: go run ./contracts/internal/gen [-dir contracts] [-out contracts]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi/abigen"
)

// bindingSets says which compiled contracts go into which Go package.
var bindingSets = []struct {
	dir, pkg  string
	contracts []string
}{
	{"bindings", "bindings", []string{"JobMarket", "JobMarketV2"}},
	{"bindings/mocks", "mocks", []string{"MockToken", "FeeToken", "FalseToken", "ReentrantAttacker"}},
	{"bindings/payouts", "payouts", []string{"PoolPayouts"}},
}

func main() {
	dir := flag.String("dir", "contracts", "folder with package.json, compile.js and the sources")
	out := flag.String("out", "", "folder to write build/ and bindings/ into (default: -dir)")
	flag.Parse()
	if *out == "" {
		*out = *dir
	}
	if err := generate(context.Background(), *dir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "contracts gen:", err)
		os.Exit(1)
	}
}

// generate compiles the sources in dir into out/build and writes the bindings under out.
func generate(ctx context.Context, dir, out string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "solc")); err != nil {
		return fmt.Errorf("solc-js not installed in %s/node_modules: run `npm ci` there (scripts/setup.d/30-contracts.sh does)", dir)
	}
	build := filepath.Join(out, "build")
	if err := os.RemoveAll(build); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "node", "compile.js", mustAbs(build))
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("compile: %w\n%s", err, stderr.String())
	}
	for _, set := range bindingSets {
		var types, abis, bins []string
		for _, name := range set.contracts {
			a, err := os.ReadFile(filepath.Join(build, name+".abi"))
			if err != nil {
				return fmt.Errorf("artifact %s: %w", name, err)
			}
			b, err := os.ReadFile(filepath.Join(build, name+".bin"))
			if err != nil {
				return fmt.Errorf("artifact %s: %w", name, err)
			}
			types = append(types, name)
			abis = append(abis, string(a))
			bins = append(bins, strings.TrimSpace(string(b)))
		}
		code, err := abigen.BindV2(types, abis, bins, set.pkg, nil, nil)
		if err != nil {
			return fmt.Errorf("bind %s: %w", set.pkg, err)
		}
		d := filepath.Join(out, set.dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, set.pkg+".go"), []byte(code), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(errors.New("abs " + p))
	}
	return a
}
