package validator

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/gpunode/gpunode/node/policy"
)

// DutyPolicy is the workload policy's judgement of validation duties (the [validator]
// rules of the policy file): *policy.Holder, or a *policy.Set in tests.
type DutyPolicy interface {
	Duty(r policy.DutyRequest) (policy.EvalLimits, policy.Decision)
}

// PolicyConsent is the consent of the [validator] rules: a task they decline is never
// evaluated, and one they allow runs within their caps.
func PolicyConsent(p DutyPolicy) Consent {
	return func(t Task) (Limits, error) {
		lim, d := p.Duty(DutyRequest(t))
		if !d.Allow {
			return Limits{}, fmt.Errorf("%w: %s", ErrDeclined, strings.Join(d.Reasons(), "; "))
		}
		return Limits{CPUs: lim.CPUs, MemoryBytes: lim.MemoryBytes, RunTimeout: lim.MaxDuration, MaxImageBytes: lim.MaxImageBytes}, nil
	}
}

// DutyRequest is the policy's view of a task. A fee that is not a decimal number is
// read as 0, which no fee floor allows.
func DutyRequest(t Task) policy.DutyRequest {
	fee, ok := new(big.Int).SetString(t.FeeWei, 10)
	if !ok || fee.Sign() < 0 {
		fee = new(big.Int)
	}
	return policy.DutyRequest{Sponsor: t.Sponsor, Token: t.Token, FeeWei: fee, Image: t.EvalImage}
}
