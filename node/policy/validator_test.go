package policy

import (
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	evalImage = "registry.example.com/lab/eval@" + digest1
	tokenOK   = "0x4444444444444444444444444444444444444444"
	tokenBad  = "0x5555555555555555555555555555555555555555"
)

func validatorPolicy(t testing.TB) *Policy {
	t.Helper()
	b, err := os.ReadFile("testdata/validator.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func goodDuty() DutyRequest {
	return DutyRequest{Sponsor: sponsorA, FeeWei: big.NewInt(1000), Image: evalImage}
}

// TestDuty: each [validator] rule declines the duty that breaks it, with its rule and
// reason kind, and only that duty.
func TestDuty(t *testing.T) {
	set := &Set{Local: validatorPolicy(t)}
	tests := []struct {
		name string
		edit func(*DutyRequest)
		rule string // the failing rule; "" allows
		kind Kind
	}{
		{"fits", func(*DutyRequest) {}, "", ""},
		{"sponsor case differs", func(r *DutyRequest) { r.Sponsor = strings.ToUpper(sponsorA[2:]); r.Sponsor = "0x" + r.Sponsor }, "", ""},
		{"before the manifest is read", func(r *DutyRequest) { r.Image = "" }, "", ""},
		{"sponsor not allowed", func(r *DutyRequest) { r.Sponsor = sponsorB }, "validator.sponsors", KindSponsor},
		{"sponsor denied", func(r *DutyRequest) { r.Sponsor = "0x000000000000000000000000000000000000dEaD" }, "validator.deny_sponsors", KindSponsor},
		{"image from elsewhere", func(r *DutyRequest) { r.Image = "docker.io/anyone/eval@" + digest1 }, "validator.images.allow", KindImage},
		{"image denied", func(r *DutyRequest) { r.Image = "registry.example.com/lab/xmrig@" + digest1 }, "validator.images.deny", KindImage},
		{"image by tag", func(r *DutyRequest) { r.Image = "registry.example.com/lab/eval:latest" }, "validator.images", KindImage},
		{"fee below the floor", func(r *DutyRequest) { r.FeeWei = big.NewInt(999) }, "validator.min_fee_wei", KindPrice},
		{"no fee", func(r *DutyRequest) { r.FeeWei = nil }, "validator.min_fee_wei", KindPrice},
		{"listed token", func(r *DutyRequest) { r.Token = tokenOK; r.FeeWei = big.NewInt(5000) }, "", ""},
		{"listed token, fee too low", func(r *DutyRequest) { r.Token = tokenOK; r.FeeWei = big.NewInt(4999) }, "validator.token_min_fees", KindPrice},
		{"unlisted token", func(r *DutyRequest) { r.Token = tokenBad; r.FeeWei = big.NewInt(1 << 60) }, "validator.token_min_fees", KindPrice},
		{"ETH as the zero address", func(r *DutyRequest) { r.Token = zeroAddress }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := goodDuty()
			tt.edit(&r)
			lim, d := set.Duty(r)
			if want := tt.rule == ""; d.Allow != want {
				t.Fatalf("allow = %v, want %v: %v", d.Allow, want, d.Reasons())
			}
			if lim != (EvalLimits{CPUs: 2, MemoryBytes: 4096 << 20, MaxDuration: 30 * time.Minute, MaxImageBytes: 2 << 30}) {
				t.Errorf("limits %+v", lim)
			}
			if tt.rule == "" {
				return
			}
			f := d.Failed()
			if len(f) == 0 || f[0].Rule != tt.rule {
				t.Fatalf("failed %v, want %s first", f, tt.rule)
			}
			for _, c := range f {
				if c.Kind != tt.kind {
					t.Errorf("failed %v: want only %s reasons", c, tt.kind)
				}
			}
		})
	}
}

// TestDutyLayers: a duty needs every layer's consent, the caps are the smallest any
// layer sets, and a token job is declined unless some layer lists tokens.
func TestDutyLayers(t *testing.T) {
	pool := validatorPolicy(t)
	local, err := Parse([]byte("version = 1\n[validator]\nmax_cpus = 1\nmax_image_bytes = 4294967296\nmin_fee_wei = \"2000\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	both := &Set{Pool: pool, Local: local}
	lim, d := both.Duty(goodDuty())
	if d.Allow {
		t.Error("the local fee floor of 2000 wei allowed a fee of 1000")
	}
	if lim.CPUs != 1 || lim.MaxImageBytes != 2<<30 || lim.MemoryBytes != 4096<<20 {
		t.Errorf("limits %+v: want the smallest of each layer's", lim)
	}
	// Without any [validator] section, duties are evaluated uncapped, as before.
	empty := &Set{}
	if lim, d := empty.Duty(goodDuty()); !d.Allow || lim != (EvalLimits{}) {
		t.Errorf("no policy: %+v %v", lim, d.Reasons())
	}
	// A token job with no token table anywhere is declined.
	r := goodDuty()
	r.Token = tokenOK
	if _, d := empty.Duty(r); d.Allow {
		t.Error("a fee in an unlisted token was accepted")
	}
	// The local layer may not loosen the pool's.
	loose, err := Parse([]byte(`version = 1
[validator]
sponsors = ["0x2222222222222222222222222222222222222222"]
max_cpus = 8
min_fee_wei = "1"
[validator.images]
allow = ["docker.io/*/*"]
[validator.token_min_fees]
"0x5555555555555555555555555555555555555555" = "1"
`))
	if err != nil {
		t.Fatal(err)
	}
	errs := CheckTightens(pool, loose)
	var text []string
	for _, e := range errs {
		text = append(text, e.Error())
	}
	for _, want := range []string{"validator.sponsors", "validator.max_cpus", "validator.min_fee_wei", "validator.images.allow", "validator.token_min_fees"} {
		if !strings.Contains(strings.Join(text, "\n"), want) {
			t.Errorf("CheckTightens did not report %s: %v", want, text)
		}
	}
	if errs := CheckTightens(pool, local); len(errs) != 1 || !strings.Contains(errs[0].Error(), "max_image_bytes") {
		t.Errorf("local layer with a larger image cap: %v, want only max_image_bytes reported", errs)
	}
}

func TestValidatorKeysRefused(t *testing.T) {
	for name, body := range map[string]string{
		"bad sponsor":        `sponsors = ["bob"]`,
		"bad deny":           `deny_sponsors = ["0x12"]`,
		"negative image cap": `max_image_bytes = -1`,
		"negative cpus":      `max_cpus = -0.5`,
		"absurd cpus":        `max_cpus = 1e9`,
		"absurd memory":      `max_memory_mib = 9223372036854775807`,
		"negative duration":  `max_duration = "-1m"`,
		"fee not a number":   `min_fee_wei = "1e18"`,
		"bad pattern":        "[validator.images]\nallow = [\"[\"]",
		"bad digest":         "[validator.images]\npinned = [\"sha256:abc\"]",
		"bad token":          "[validator.token_min_fees]\n\"usdc\" = \"1\"",
		"unknown key":        `max_gpus_please = 3`,
	} {
		if _, err := Parse([]byte("version = 1\n[validator]\n" + body + "\n")); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDutyMetrics(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/p.toml"
	b, _ := os.ReadFile("testdata/validator.toml")
	os.WriteFile(file, b, 0o600)
	reg := prometheus.NewPedanticRegistry()
	h, err := New(Config{File: file, History: 10}, discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	r := goodDuty()
	r.Sponsor = sponsorB
	if _, d := h.Duty(r); d.Allow {
		t.Fatal("allowed")
	}
	if _, d := h.Duty(goodDuty()); !d.Allow {
		t.Fatal(d.Reasons())
	}
	if got := testutil.ToFloat64(h.m.duties.WithLabelValues(string(KindSponsor))); got != 1 {
		t.Errorf("declined duties by sponsor: %v", got)
	}
	if got := testutil.ToFloat64(h.m.decisions.WithLabelValues("duty", "allow")); got != 1 {
		t.Errorf("allowed duties: %v", got)
	}
	if rj := h.Rejections(); len(rj) != 1 || rj[0].Sponsor != sponsorB || rj[0].Image != evalImage {
		t.Errorf("rejections %+v", rj)
	}
}

func dutyProbes() []DutyRequest {
	var out []DutyRequest
	for _, sponsor := range []string{sponsorA, sponsorB, "0x3333333333333333333333333333333333333333"} {
		for _, image := range []string{"", evalImage, "docker.io/x/xmrig@" + digest2, "registry.example.com/lab/eval@" + digest2} {
			for _, token := range []string{"", tokenOK, tokenBad} {
				for _, fee := range []int64{0, 999, 1000, 5000, 1 << 40} {
					out = append(out, DutyRequest{Sponsor: sponsor, Image: image, Token: token, FeeWei: big.NewInt(fee)})
				}
			}
		}
	}
	return out
}

// FuzzValidatorSection: whatever [validator] section parses, used as a local layer under
// testdata/validator.toml as the pool, can only decline more duties and lower the caps;
// alone it never yields a negative cap.
func FuzzValidatorSection(f *testing.F) {
	for _, s := range []string{
		"", "sponsors = []", `max_cpus = 0.5`, `min_fee_wei = "0"`, `max_duration = "1h"`,
		"[validator.images]\npinned = [\"" + digest1 + "\"]",
		"[validator.token_min_fees]\n\"" + tokenOK + "\" = \"1\"",
		`sponsors = ["0x2222222222222222222222222222222222222222"]` + "\nmax_memory_mib = 1",
	} {
		f.Add([]byte(s))
	}
	pool := validatorPolicy(f)
	probes := dutyProbes()
	f.Fuzz(func(t *testing.T, section []byte) {
		p, err := Parse(append([]byte("version = 1\n[validator]\n"), section...))
		if err != nil {
			return
		}
		lim, _ := (&Set{Local: p}).Duty(goodDuty())
		if lim.CPUs < 0 || lim.MemoryBytes < 0 || lim.MaxDuration < 0 || lim.MaxImageBytes < 0 {
			t.Fatalf("negative cap %+v", lim)
		}
		alone, both := &Set{Local: pool}, &Set{Pool: pool, Local: p}
		for i, r := range probes {
			la, da := alone.Duty(r)
			lb, db := both.Duty(r)
			if db.Allow && !da.Allow {
				t.Fatalf("probe %d %+v: the local layer loosened the pool's decision", i, r)
			}
			if lb.CPUs > la.CPUs || lb.MemoryBytes > la.MemoryBytes || lb.MaxDuration > la.MaxDuration || lb.MaxImageBytes > la.MaxImageBytes {
				t.Fatalf("the local layer raised a cap: %+v over %+v", lb, la)
			}
		}
		_ = CheckTightens(pool, p)
	})
}
