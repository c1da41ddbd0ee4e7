package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
)

// Limits on custom rules: a pool policy is signed, but a rule must still not be able to
// stall the node.
const (
	maxExprBytes = 4096
	celCostLimit = 100_000
	celTimeout   = 200 * time.Millisecond
)

var (
	celEnvOnce sync.Once
	celEnv     *cel.Env
	celEnvErr  error
)

// env declares the variables a rule sees:
//
//	job    the manifest as JSON field names: job.resources.gpus, job.image, job.network.mode,
//	       plus job.image_repo, job.image_digest, job.datasets, job.max_duration_seconds
//	offer  offer.sponsor, offer.price_wei (string), offer.price_gwei (double)
//	node   node.gpu_model, node.gpus, node.gpus_free, node.max_gpu_temp_c,
//	       node.max_gpu_power_w, node.hour, node.weekday ("mon".."sun"), node.time
func env() (*cel.Env, error) {
	celEnvOnce.Do(func() {
		m := cel.MapType(cel.StringType, cel.DynType)
		celEnv, celEnvErr = cel.NewEnv(
			cel.Variable("job", m),
			cel.Variable("offer", m),
			cel.Variable("node", m),
			cel.CrossTypeNumericComparisons(true),
			cel.ParserExpressionSizeLimit(maxExprBytes),
		)
	})
	return celEnv, celEnvErr
}

type program struct {
	rule Rule
	prg  cel.Program
}

func compileRule(r Rule) (*program, error) {
	if strings.TrimSpace(r.Expr) == "" {
		return nil, errors.New("expr: empty")
	}
	if len(r.Expr) > maxExprBytes {
		return nil, fmt.Errorf("expr: longer than %d bytes", maxExprBytes)
	}
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	ast, iss := e.Compile(r.Expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("expr: %w", iss.Err())
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("expr: has type %s, want bool", ast.OutputType())
	}
	prg, err := e.Program(ast, cel.CostLimit(celCostLimit), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, fmt.Errorf("expr: %w", err)
	}
	return &program{rule: r, prg: prg}, nil
}

// eval runs the rule; an error (a missing field, a cost overrun) counts as a failure so a
// broken rule never lets a job through.
func (p *program) eval(vars map[string]any) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), celTimeout)
	defer cancel()
	out, _, err := p.prg.ContextEval(ctx, vars)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("result %v is not a bool", out)
	}
	return bool(b), nil
}

// celVars builds the rule inputs from a request. The manifest goes through its JSON form so
// rules use the same field names as the manifest; integral numbers become ints.
func celVars(r Request) (map[string]any, error) {
	jobVars := map[string]any{}
	if r.Manifest != nil {
		b, err := json.Marshal(r.Manifest)
		if err != nil {
			return nil, err
		}
		var raw any
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		jobVars = numbers(raw).(map[string]any)
		jobVars["image_repo"] = r.Manifest.ImageRepo()
		jobVars["image_digest"] = r.Manifest.ImageDigest()
		ds := []any{}
		for _, d := range r.Manifest.Datasets() {
			ds = append(ds, d)
		}
		jobVars["datasets"] = ds
		jobVars["max_duration_seconds"] = int64(r.Manifest.MaxDuration.Seconds())
	}
	price, gwei := "0", 0.0
	if r.PriceWei != nil {
		price = r.PriceWei.String()
		f, _ := new(big.Float).SetInt(r.PriceWei).Float64()
		gwei = f / 1e9
	}
	n := r.Node
	return map[string]any{
		"job":   jobVars,
		"offer": map[string]any{"sponsor": strings.ToLower(r.Sponsor), "price_wei": price, "price_gwei": gwei},
		"node": map[string]any{
			"gpu_model":       n.GPUModel,
			"gpus":            int64(n.GPUs),
			"gpus_free":       int64(n.GPUsFree),
			"max_gpu_temp_c":  n.MaxGPUTempC,
			"max_gpu_power_w": n.MaxGPUPowerW,
			"hour":            int64(n.Now.UTC().Hour()),
			"weekday":         strings.ToLower(n.Now.UTC().Weekday().String()[:3]),
			"time":            n.Now.UTC(),
		},
	}, nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
		return x
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}
