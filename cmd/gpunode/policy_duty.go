package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/policy"
)

// explainDuty prints, rule by rule, whether the policy's [validator] section lets the
// node evaluate the job as one of its validators, and the caps the evaluation would run
// with.
func explainDuty(out io.Writer, set *policy.Set, m *job.Manifest, sponsor, token, fee string, asJSON bool) error {
	feeWei := new(big.Int)
	if fee != "" {
		v, ok := new(big.Int).SetString(fee, 10)
		if !ok || v.Sign() < 0 {
			return fmt.Errorf("--fee %q: want a non-negative decimal amount", fee)
		}
		feeWei = v
	}
	lim, d := set.Duty(policy.DutyRequest{Sponsor: sponsor, Token: token, FeeWei: feeWei, Image: m.Evaluation.Image})
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			policy.Decision
			Limits policy.EvalLimits `json:"limits"`
		}{d, lim}); err != nil {
			return err
		}
	} else {
		for _, c := range d.Checks {
			fmt.Fprintln(out, c.String())
		}
		if len(d.Checks) == 0 {
			fmt.Fprintln(out, "no [validator] rule applies")
		}
	}
	if !d.Allow {
		return fmt.Errorf("policy declines the validation duty: %d rule(s) failed", len(d.Failed()))
	}
	if !asJSON {
		fmt.Fprintf(out, "EVALUATE (caps: cpus %s, memory %s, run time %s, image %s)\n",
			orNone(lim.CPUs > 0, fmt.Sprint(lim.CPUs)), orNone(lim.MemoryBytes > 0, fmt.Sprintf("%d MiB", lim.MemoryBytes>>20)),
			orNone(lim.MaxDuration > 0, lim.MaxDuration.String()), orNone(lim.MaxImageBytes > 0, fmt.Sprintf("%d bytes", lim.MaxImageBytes)))
	}
	return nil
}

func orNone(ok bool, s string) string {
	if ok {
		return s
	}
	return "the node's own"
}
