package policy

import (
	"bytes"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpunode/gpunode/job"
)

func fuzzSeeds(f *testing.F) {
	f.Helper()
	files, _ := filepath.Glob("testdata/*.toml")
	files = append(files, "../../configs/policy.example.toml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(""))
	f.Add([]byte("version = 1\n[[rules]]\nname = \"r\"\nexpr = 'job.resources.gpus < 3'\n"))
	f.Add([]byte("version = 1\n[limits]\nmax_gpus = -1\n"))
	f.Add([]byte("version = 1\n[datasets]\n"))
	f.Add([]byte("version = 1\nmax_bond_wei = \"1000000000000000000\"\nmin_run_window_factor = 1.5\nmax_image_bytes = 1073741824\n"))
	f.Add([]byte("version = 1\n[validators]\nallow = [\"any\"]\ndeny = [\"0x3333333333333333333333333333333333333333\"]\n"))
	f.Add([]byte("version = 1\n[tokens.\"0x5555555555555555555555555555555555555555\"]\nmax_bond = \"7\"\nprice_floors = { \"*\" = \"1\" }\n"))
	f.Add([]byte("version = 1\nmin_run_window_factor = 0.0001\n"))
}

// probes are requests covering every rule kind, each allowed by testdata/strict.toml
// except where it differs on purpose.
func probes(t testing.TB) []Request {
	base := testRequest(t)
	base.Manifest.Resources.GPUs = 1
	var out []Request
	add := func(edit func(r *Request)) {
		r := base
		m := *base.Manifest
		m.Inputs = append([]job.Input(nil), m.Inputs...)
		r.Manifest = &m
		edit(&r)
		out = append(out, r)
	}
	add(func(r *Request) {})
	add(func(r *Request) { r.Manifest.Resources.GPUs = 8 })
	add(func(r *Request) { withEgress("pypi.org")(r) })
	add(func(r *Request) { withEgress("evil.com")(r) })
	add(withDataset)
	add(func(r *Request) { withDataset(r); r.Sponsor = sponsorB })
	add(func(r *Request) { r.Sponsor = sponsorB })
	add(func(r *Request) { r.PriceWei = big.NewInt(1) })
	add(func(r *Request) { r.Node.MaxGPUTempC = 99 })
	add(func(r *Request) { r.Node.Now = r.Node.Now.Add(-11 * 3600 * 1e9) })
	add(func(r *Request) { r.Manifest.MaxDuration.Duration = 100 * 3600 * 1e9 })
	add(func(r *Request) { r.Manifest.Image = "docker.io/x/xmrig@" + digest2 })
	add(func(r *Request) { r.Market.BondWei = big.NewInt(1) })
	add(func(r *Request) { r.Market.Token = tokenA })
	add(func(r *Request) { r.Market.Token = tokenA; r.Market.BondWei = big.NewInt(3) })
	add(func(r *Request) { r.Market.Validators = []string{validatorA, validatorB} })
	add(func(r *Request) { r.Market.RunWindow = 7 * time.Hour; r.Market.PrepareTime = 10 * time.Minute })
	add(func(r *Request) { r.Market.ImageBytes = 5 << 30 })
	return out
}

// FuzzParse: a malformed policy never panics and never loosens anything. Input that
// fails to parse leaves the policy in force untouched on reload; input that parses,
// used as a local layer, can only deny more of the probes than the pool alone.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f)
	strict, err := os.ReadFile("testdata/strict.toml")
	if err != nil {
		f.Fatal(err)
	}
	pool, err := Parse(strict)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs := probes(t)
		p, err := Parse(data)
		if err != nil {
			if p != nil {
				t.Fatal("Parse returned a policy with an error")
			}
			// Reload with the bad file keeps the previous policy.
			dir := t.TempDir()
			file := filepath.Join(dir, "policy.toml")
			if err := os.WriteFile(file, strict, 0o600); err != nil {
				t.Fatal(err)
			}
			h, err := New(Config{File: file}, discard(), nil)
			if err != nil {
				t.Fatal(err)
			}
			before := h.Set()
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := h.Reload(); err == nil {
				t.Fatal("Reload accepted what Parse refused")
			}
			if h.Set() != before {
				t.Fatal("a failed reload replaced the policy in force")
			}
			return
		}
		alone := &Set{Local: pool}
		both := &Set{Pool: pool, Local: p}
		for i, r := range reqs {
			for _, st := range []Stage{Offer, Container} {
				if both.Evaluate(r, st).Allow && !alone.Evaluate(r, st).Allow {
					t.Fatalf("probe %d stage %d: the local layer loosened the pool's decision", i, st)
				}
			}
			_ = (&Set{Local: p}).Evaluate(r, Offer)
			_, _ = (&Set{Local: p}).Container(r)
		}
		_ = CheckTightens(pool, p)
		_ = CheckTightens(p, pool)
	})
}

// FuzzVerify: signed pool policies arrive from the network; any envelope either fails or
// verifies under the pool key and yields a parsed policy.
func FuzzVerify(f *testing.F) {
	pub, priv, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	strict, _ := os.ReadFile("testdata/strict.toml")
	good, err := Sign(priv, 3, strict)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"seq": 3`), []byte(`"seq": 4`), 1))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Verify(pub, data)
		if err != nil {
			return
		}
		if v.Policy == nil {
			t.Fatal("verified envelope without a policy")
		}
		if !bytes.Equal(data, good) && v.Seq == 3 && bytes.Contains(data, []byte("max_gpus = 64")) {
			t.Fatal("a changed policy verified")
		}
	})
}
