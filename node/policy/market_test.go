package policy

import (
	"math/big"
	"strings"
	"testing"
	"time"
)

const (
	validatorA = "0x3333333333333333333333333333333333333333"
	validatorB = "0x44444444444444444444444444444444444444bb"
	tokenA     = "0x55555555555555555555555555555555555555aa"
	tokenB     = "0x6666666666666666666666666666666666666666"
)

func eth(n int64) *big.Int { return new(big.Int).Mul(big.NewInt(n), big.NewInt(1e18)) }

// TestMarketRules covers the open-market keys, allowing and denying, and names the rule
// and the reason of each decision.
func TestMarketRules(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		edit   func(r *Request)
		allow  bool
		rule   string
		detail string
	}{
		{"no bond asked, no cap set", ``, func(r *Request) {}, true, "", ""},
		{"bond without any cap", ``, func(r *Request) { r.Market.BondWei = big.NewInt(1) }, false, "max_bond_wei (unset: no bond)", "bond of 1, cap 0"},
		{"bond under the cap", `max_bond_wei = "2000000000000000000"`, func(r *Request) { r.Market.BondWei = eth(1) }, true, "max_bond_wei", "cap 2000000000000000000"},
		{"bond at the cap", `max_bond_wei = "1000000000000000000"`, func(r *Request) { r.Market.BondWei = eth(1) }, true, "max_bond_wei", ""},
		{"bond above the cap", `max_bond_wei = "1000000000000000000"`, func(r *Request) { r.Market.BondWei = eth(2) }, false, "max_bond_wei", "bond of 2000000000000000000, cap 1000000000000000000"},
		{"ETH cap does not cover a token bond", `max_bond_wei = "5"
[tokens."` + tokenA + `"]
price_floors = { "*" = "1" }`, func(r *Request) { r.Market.Token = tokenA; r.Market.BondWei = big.NewInt(5) }, false, "tokens." + tokenA + ".max_bond (unset: no bond)", "cap 0"},
		{"token bond under its cap", `[tokens."` + tokenA + `"]
max_bond = "10"`, func(r *Request) { r.Market.Token = tokenA; r.Market.BondWei = big.NewInt(5) }, true, "tokens." + tokenA + ".max_bond", ""},
		{"unlisted token", ``, func(r *Request) { r.Market.Token = tokenB }, false, "tokens", "not listed under [tokens]"},
		{"token listed in another case", `[tokens."` + "0x" + strings.ToUpper(tokenA[2:]) + `"]`, func(r *Request) { r.Market.Token = tokenA }, true, "tokens", "is accepted"},
		{"token below its floor", `[tokens."` + tokenA + `"]
price_floors = { "*" = "3000000000000000" }`, func(r *Request) { r.Market.Token = tokenA }, false, "tokens." + tokenA + ".price_floors", "floor for \"*\" is 3000000000000000"},
		{"token floor met, the ETH floor not applied", `[price_floors]
"*" = "9000000000000000000"
[tokens."` + tokenA + `"]
price_floors = { "*" = "1" }`, func(r *Request) { r.Market.Token = tokenA }, true, "tokens." + tokenA + ".price_floors", ""},
		{"the zero address pays in ETH", `[price_floors]
"*" = "9000000000000000000"`, func(r *Request) { r.Market.Token = "0x0000000000000000000000000000000000000000" }, false, "price_floors", "floor for"},
		{"validators allowed", `[validators]
allow = ["` + validatorA + `", "` + validatorB + `"]`, func(r *Request) { r.Market.Validators = []string{validatorA, validatorB} }, true, "validators.allow", "every validator (2)"},
		{"a validator not allowed", `[validators]
allow = ["` + validatorA + `"]`, func(r *Request) { r.Market.Validators = []string{validatorA, validatorB} }, false, "validators.allow", "[" + validatorB + "] are not on the allow list"},
		{"any validator", `[validators]
allow = ["any"]`, func(r *Request) { r.Market.Validators = []string{validatorB} }, true, "", ""},
		{"a denied validator", `[validators]
deny = ["0x` + strings.ToUpper(validatorB[2:]) + `"]`, func(r *Request) { r.Market.Validators = []string{validatorA, validatorB} }, false, "validators.deny", validatorB},
		{"run window too short", ``, func(r *Request) { r.Market.RunWindow = time.Second }, false, "min_run_window_factor", "run window 1s; the job needs 1.25 × (max_duration 6h0m0s"},
		{"run window covers the job", ``, func(r *Request) { r.Market.RunWindow = 8 * time.Hour }, true, "min_run_window_factor", ""},
		{"prepare time counts", `min_run_window_factor = 1.0`, func(r *Request) {
			r.Market.RunWindow = 6*time.Hour + time.Minute
			r.Market.PrepareTime = 2 * time.Minute
		}, false, "min_run_window_factor", "prepare 2m0s"},
		{"image under the default cap", ``, func(r *Request) { r.Market.ImageBytes = 1 << 30 }, true, "max_image_bytes", ""},
		{"image above the cap", `max_image_bytes = 1000`, func(r *Request) { r.Market.ImageBytes = 1001 }, false, "max_image_bytes", "image is 1001 bytes, cap 1000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest(t)
			tc.edit(&r)
			d := (&Set{Local: mustParse(t, tc.policy)}).Evaluate(r, Offer)
			if d.Allow != tc.allow {
				t.Fatalf("allow = %v, want %v:\n%s", d.Allow, tc.allow, explain(d))
			}
			if tc.rule == "" {
				return
			}
			for _, c := range d.Checks {
				if c.Rule == tc.rule && c.Pass == tc.allow && strings.Contains(c.Detail, tc.detail) {
					return
				}
			}
			t.Errorf("no check %q (pass %v) saying %q:\n%s", tc.rule, tc.allow, tc.detail, explain(d))
		})
	}
}

// TestMarketLayers: every layer must allow the bond, the token and the validators; a
// pool without a bond cap keeps its members from risking one.
func TestMarketLayers(t *testing.T) {
	pool := mustParse(t, "[validators]\nallow = [\""+validatorA+"\"]\n")
	local := mustParse(t, "max_bond_wei = \"100\"\n[tokens.\""+tokenA+"\"]\nmax_bond = \"100\"\n")
	r := testRequest(t)
	r.Market.BondWei = big.NewInt(50)
	if d := (&Set{Pool: pool, Local: local}).Evaluate(r, Offer); d.Allow {
		t.Errorf("a bond was allowed although the pool sets no cap:\n%s", explain(d))
	}
	r.Market.BondWei = nil
	r.Market.Token = tokenA
	if d := (&Set{Pool: pool, Local: local}).Evaluate(r, Offer); d.Allow {
		t.Errorf("a token the pool does not list was allowed:\n%s", explain(d))
	}
	r.Market.Token = ""
	r.Market.Validators = []string{validatorB}
	if d := (&Set{Pool: pool, Local: local}).Evaluate(r, Offer); d.Allow {
		t.Errorf("a validator the pool does not allow was allowed:\n%s", explain(d))
	}
	errs := CheckTightens(pool, local)
	var text []string
	for _, e := range errs {
		text = append(text, e.Error())
	}
	for _, want := range []string{"max_bond_wei = 100 exceeds the pool's 0", "tokens." + tokenA + " is not accepted by the pool"} {
		if !strings.Contains(strings.Join(text, "\n"), want) {
			t.Errorf("CheckTightens lacks %q: %v", want, text)
		}
	}
	s := &Set{Pool: mustParse(t, "min_run_window_factor = 2.0\nmax_image_bytes = 500\n"), Local: mustParse(t, "min_run_window_factor = 1.5\nmax_image_bytes = 900\n")}
	if f, m := s.RunWindowFactor(), s.MaxImageBytes(); f != 2 || m != 500 {
		t.Errorf("factor %v, image cap %d: want the strictest, 2 and 500", f, m)
	}
	if f, m := (&Set{}).RunWindowFactor(), (&Set{}).MaxImageBytes(); f != DefaultRunWindowFactor || m != DefaultMaxImageBytes {
		t.Errorf("defaults: factor %v, image cap %d", f, m)
	}
}

func TestMarketParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`max_bond_wei = "-1"`, "non-negative"},
		{"[validators]\nallow = [\"nobody\"]", `"nobody" is neither "any" nor an Ethereum address`},
		{"[validators]\ndeny = [\"any\"]", "only meaningful in validators.allow"},
		{`min_run_window_factor = 0.5`, "out of range 1..100"},
		{`min_run_window_factor = nan`, "out of range"},
		{`max_image_bytes = -1`, "max_image_bytes: negative"},
		{"[tokens.\"0x12\"]", "not a token contract address"},
		{"[tokens.\"0x0000000000000000000000000000000000000000\"]", "stands for ETH"},
		{"[tokens.\"" + tokenA + "\"]\nmax_bond = \"x\"", "wei amount"},
		{"[tokens.\"" + tokenA + "\"]\nfloor = \"1\"", "unknown key"},
	} {
		_, err := Parse([]byte("version = 1\n" + tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", tc.src, err, tc.want)
		}
	}
}

func TestMeasured(t *testing.T) {
	s := &Set{Local: mustParse(t, "max_image_bytes = 100\n")}
	r := testRequest(t)
	r.Market = Terms{RunWindow: 8 * time.Hour, PrepareTime: time.Minute, ImageBytes: 50}
	if d := s.Measured(r); !d.Allow || len(d.Checks) != 2 {
		t.Errorf("measured job within limits:\n%s", explain(d))
	}
	r.Market.PrepareTime = 2 * time.Hour
	r.Market.ImageBytes = 101
	if d := s.Measured(r); d.Allow || len(d.Failed()) != 2 {
		t.Errorf("measured job over both limits:\n%s", explain(d))
	}
}

// FuzzMarketTerms: whatever terms a hostile sponsor posts, evaluation never panics, and a
// job it allows keeps within every open-market limit of the policy.
func FuzzMarketTerms(f *testing.F) {
	f.Add("1000", "", validatorA, int64(8*3600), int64(60), int64(4000))
	f.Add("1001", tokenA, validatorB, int64(1), int64(0), int64(6000))
	f.Add("", "0x0000000000000000000000000000000000000000", "any", int64(-5), int64(-1<<62), int64(-1))
	f.Add("115792089237316195423570985008687907853269984665640564039457584007913129639936", "0xzz", "", int64(1<<62), int64(1<<62), int64(1<<62))
	p, err := Parse([]byte("version = 1\nmax_bond_wei = \"1000\"\nmax_image_bytes = 5000\nmin_run_window_factor = 1.5\n" +
		"[validators]\nallow = [\"" + validatorA + "\"]\n[tokens.\"" + tokenA + "\"]\nmax_bond = \"10\"\n"))
	if err != nil {
		f.Fatal(err)
	}
	s := &Set{Local: p}
	f.Fuzz(func(t *testing.T, bond, token, validator string, runWindow, prepare, image int64) {
		r := testRequest(t)
		r.Market = Terms{Token: token, Validators: []string{validator}, RunWindow: time.Duration(runWindow),
			PrepareTime: time.Duration(prepare), ImageBytes: image}
		if b, ok := new(big.Int).SetString(bond, 10); ok {
			r.Market.BondWei = b
		}
		d := s.Evaluate(r, Offer)
		m := s.Measured(r)
		if !d.Allow {
			return
		}
		capWei := big.NewInt(1000)
		if !r.Market.PaysETH() {
			capWei = big.NewInt(10)
			if !strings.EqualFold(token, tokenA) {
				t.Fatalf("allowed a job paying in unlisted token %q", token)
			}
		}
		if r.Market.BondWei != nil && r.Market.BondWei.Cmp(capWei) > 0 {
			t.Fatalf("allowed a bond of %s above the cap %s", r.Market.BondWei, capWei)
		}
		if !strings.EqualFold(validator, validatorA) {
			t.Fatalf("allowed validator %q", validator)
		}
		if image > 5000 {
			t.Fatalf("allowed an image of %d bytes", image)
		}
		if runWindow > 0 && r.Market.RunWindow < RunWindowNeeded(1.5, r.Manifest.MaxDuration.Duration, r.Market.PrepareTime) {
			t.Fatalf("allowed run window %s", r.Market.RunWindow)
		}
		if !m.Allow {
			t.Fatalf("Evaluate allowed what Measured refuses:\n%s", explain(m))
		}
	})
}
